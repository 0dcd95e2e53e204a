//! `Einsum`: explicit and implicit outputs, `...` broadcasting, repeated labels (diagonals)
//! and sums, evaluated over the joint index space of its labels (the cost the equation
//! itself states, no more).

use super::{checked_len, Arg, At};
use crate::error::Result;
use crate::tensor::Tensor;

/// A parsed equation: each operand's labels, the output's labels, each label's length.
struct Parsed {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
    dims: std::collections::BTreeMap<char, usize>,
}

/// Labels standing for the axes `...` covers (outside the ASCII letters an equation uses).
fn ellipsis_label(k: usize) -> char {
    char::from_u32(0x100 + k as u32).expect("small")
}

/// A term has letters and at most one `...`.
fn check_term(at: &At, what: &str, t: &str) -> Result<()> {
    if t.chars().any(|c| !(c.is_ascii_alphabetic() || c == '.')) {
        return Err(at.err(format!("{what} `{t}` has characters other than letters and `...`")));
    }
    if t.matches("...").count() > 1 {
        return Err(at.err(format!("{what} `{t}` has more than one `...`")));
    }
    if t.replace("...", "").contains('.') {
        return Err(at.err(format!("{what} `{t}` has a stray `.`")));
    }
    Ok(())
}

/// An input term's labels for an operand of shape `s`, the axes `...` covers as placeholder
/// labels (≥ 0x100, aligned by the caller).
fn term_labels(at: &At, t: &str, s: &[usize]) -> Result<Vec<char>> {
    check_term(at, "equation term", t)?;
    let n = t.replace("...", "").chars().count();
    let Some((before, after)) = t.split_once("...") else {
        if n != s.len() {
            return Err(at.err(format!("term `{t}` has {n} labels for shape {s:?}")));
        }
        return Ok(t.chars().collect());
    };
    let e = s.len().checked_sub(n).ok_or_else(|| at.err(format!("term `{t}` for shape {s:?}")))?;
    Ok(before.chars().chain((0..e).map(|k| ellipsis_label(k + 1000))).chain(after.chars()).collect())
}

fn parse(at: &At, eq: &str, shapes: &[&[usize]]) -> Result<Parsed> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != shapes.len() {
        return Err(at.err(format!("equation `{eq}` has {} operands, the node {}", terms.len(), shapes.len())));
    }
    let mut inputs: Vec<Vec<char>> =
        terms.iter().zip(shapes).map(|(t, s)| term_labels(at, t, s)).collect::<Result<_>>()?;
    let ell_rank = inputs.iter().map(|l| l.iter().filter(|c| **c as u32 >= 0x100).count()).max().unwrap_or(0);
    // Ellipsis labels are aligned to the right: an operand with e of them uses the last e.
    for (labels, s) in inputs.iter_mut().zip(shapes) {
        let e = labels.iter().filter(|c| **c as u32 >= 0x100).count();
        let mut k = ell_rank - e;
        for c in labels.iter_mut() {
            if *c as u32 >= 0x100 {
                *c = ellipsis_label(k);
                k += 1;
            }
        }
        debug_assert_eq!(labels.len(), s.len());
    }
    let ell: Vec<char> = (0..ell_rank).map(ellipsis_label).collect();
    let output: Vec<char> = match rhs {
        Some(r) => {
            check_term(at, "output", r)?;
            let (before, after) = r.split_once("...").unwrap_or((r, ""));
            let with_ell = r.contains("...");
            before.chars().chain(if with_ell { ell.clone() } else { Vec::new() }).chain(after.chars()).collect()
        }
        None => {
            let mut counts = std::collections::BTreeMap::new();
            for c in inputs.iter().flatten().filter(|c| c.is_ascii_alphabetic()) {
                *counts.entry(*c).or_insert(0) += 1;
            }
            ell.iter().copied().chain(counts.into_iter().filter(|(_, n)| *n == 1).map(|(c, _)| c)).collect()
        }
    };
    let mut dims = std::collections::BTreeMap::new();
    for (labels, s) in inputs.iter().zip(shapes) {
        for (&c, &d) in labels.iter().zip(s.iter()) {
            let e = dims.entry(c).or_insert(d);
            if *e == 1 {
                *e = d;
            } else if d != 1 && *e != d {
                return Err(at.err(format!("label `{c}` has lengths {e} and {d}")));
            }
        }
    }
    for (i, c) in output.iter().enumerate() {
        if output[..i].contains(c) {
            return Err(at.err(format!("output label `{c}` appears more than once")));
        }
        if !dims.contains_key(c) {
            return Err(at.err(format!("output label `{c}` is in no operand")));
        }
    }
    Ok(Parsed { inputs, output, dims })
}

fn shapes_of<'a>(at: &At, args: &'a [Option<Arg<'a>>]) -> Result<Vec<&'a [usize]>> {
    (0..args.len()).map(|i| at.arg(args, i).map(|a| a.shape)).collect()
}

pub(super) fn einsum_shape(at: &At, eq: &str, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let p = parse(at, eq, &shapes_of(at, args)?)?;
    let out: Vec<usize> = p.output.iter().map(|c| p.dims[c]).collect();
    checked_len(at, &out)?;
    Ok(vec![out])
}

pub(super) fn einsum(
    at: &At,
    eq: &str,
    ins: &[Option<&Tensor<f64>>],
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let tensors: Vec<&Tensor<f64>> = (0..ins.len()).map(|i| at.tensor(ins, i)).collect::<Result<_>>()?;
    let vals: Vec<&[f64]> = (0..ins.len()).map(|i| at.floats(ins, i)).collect::<Result<_>>()?;
    let p = parse(at, eq, &tensors.iter().map(|t| t.shape.as_slice()).collect::<Vec<_>>())?;
    let summed: Vec<char> = p.dims.keys().copied().filter(|c| !p.output.contains(c)).collect();
    let order: Vec<char> = p.output.iter().chain(&summed).copied().collect();
    let lens: Vec<usize> = order.iter().map(|c| p.dims[c]).collect();
    // Each operand's stride per label of `order` (0 where absent or broadcast; repeated
    // labels add up, which walks the diagonal).
    let strides: Vec<Vec<usize>> = tensors
        .iter()
        .zip(&p.inputs)
        .map(|(t, labels)| {
            let own = crate::tensor::strides(&t.shape);
            order
                .iter()
                .map(|c| {
                    labels
                        .iter()
                        .zip(&own)
                        .zip(&t.shape)
                        .filter(|((l, _), &d)| *l == c && d != 1)
                        .map(|((_, &s), _)| s)
                        .sum()
                })
                .collect()
        })
        .collect();
    let out_len: usize = shapes[0].iter().product();
    let inner: usize = lens[p.output.len()..].iter().product();
    let mut y = vec![0.0; out_len];
    let mut idx = vec![0usize; order.len()];
    let mut offs = vec![0usize; tensors.len()];
    for yv in y.iter_mut() {
        let mut acc = 0.0;
        for _ in 0..inner {
            acc += vals.iter().zip(&offs).map(|(v, &o)| v[o]).product::<f64>();
            // Odometer over all labels; the output labels roll over into the next element.
            for d in (0..order.len()).rev() {
                idx[d] += 1;
                for (o, s) in offs.iter_mut().zip(&strides) {
                    *o += s[d];
                }
                if idx[d] < lens[d] {
                    break;
                }
                for (o, s) in offs.iter_mut().zip(&strides) {
                    *o -= s[d] * idx[d];
                }
                idx[d] = 0;
            }
        }
        *yv = acc;
    }
    Ok(vec![Tensor::float(shapes[0].clone(), y)])
}
