//! Data movement and shape operators: transpose, split, gathers and scatters, squeeze and
//! unsqueeze, expand, tile, pad, depth/space rearrangements, range and constant fills.
//! Each computes, in one pass, the source offset of every output element.

use super::{broadcast_offsets, checked_len, select, strides, unravel, Arg, At, Generic, PadMode, Reduction};
use crate::error::Result;
use crate::tensor::{broadcast, DType, Data, Tensor};

fn perm(at: &At, p: &Option<Vec<i64>>, rank: usize) -> Result<Vec<usize>> {
    let p: Vec<usize> = match p {
        None => (0..rank).rev().collect(),
        Some(p) => p.iter().map(|&a| at.axis(a, rank)).collect::<Result<_>>()?,
    };
    let mut seen = vec![false; rank];
    if p.len() != rank || p.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
        return Err(at.err(format!("perm {p:?} is not a permutation of {rank} axes")));
    }
    Ok(p)
}

fn split_sizes(at: &At, op: &Generic, args: &[Option<Arg>]) -> Result<(usize, Vec<usize>)> {
    let Generic::Split { axis, sizes, outputs } = op else { unreachable!("split only") };
    let x = at.arg(args, 0)?;
    let ax = at.axis(*axis, x.shape.len())?;
    let d = x.shape[ax];
    let given = match args.get(1).and_then(Option::as_ref) {
        Some(_) => Some(at.ints(args, 1, "split")?.to_vec()),
        None => sizes.clone(),
    };
    let parts: Vec<usize> = match given {
        Some(s) => {
            if s.len() != *outputs || s.iter().any(|&v| v < 0) || s.iter().sum::<i64>() != d as i64 {
                return Err(at.err(format!("split {s:?} does not divide axis {ax} of length {d} into {outputs}")));
            }
            s.iter().map(|&v| v as usize).collect()
        }
        None => {
            let each = d.div_ceil((*outputs).max(1));
            (0..*outputs).map(|i| each.min(d.saturating_sub(i * each))).collect()
        }
    };
    Ok((ax, parts))
}

fn axes_list(at: &At, attr: &Option<Vec<i64>>, args: &[Option<Arg>], rank: usize) -> Result<Option<Vec<usize>>> {
    let raw = match (attr, args.get(1).and_then(Option::as_ref)) {
        (Some(a), _) => a.clone(),
        (None, Some(_)) => at.ints(args, 1, "axes")?.to_vec(),
        (None, None) => return Ok(None),
    };
    let mut v: Vec<usize> = raw.iter().map(|&a| at.axis(a, rank)).collect::<Result<_>>()?;
    v.sort_unstable();
    if v.windows(2).any(|w| w[0] == w[1]) {
        return Err(at.err(format!("axes {raw:?} repeat an axis")));
    }
    Ok(Some(v))
}

/// Pads as (begin, end) per axis, from input 1 (or the attribute) and optional axes.
fn pads(at: &At, op: &Generic, args: &[Option<Arg>], rank: usize) -> Result<Vec<(i64, i64)>> {
    let Generic::Pad { pads: attr, .. } = op else { unreachable!("pad only") };
    let p = match attr {
        Some(p) => p.clone(),
        None => at.ints(args, 1, "pads")?.to_vec(),
    };
    let axes: Vec<usize> = match args.get(3).and_then(Option::as_ref) {
        Some(_) => at.ints(args, 3, "axes")?.iter().map(|&a| at.axis(a, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    pad_pairs(&p, &axes, rank).ok_or_else(|| at.err(format!("pads {p:?} do not fit {} axes", axes.len())))
}

/// `Pad`'s amounts `p` (all begins, then all ends, for `axes`) as (begin, end) per axis of a
/// rank-`rank` input; `None` when they do not fit the axes. Shared with the planner
/// ([`crate::shape::pad_amounts`]).
pub(crate) fn pad_pairs(p: &[i64], axes: &[usize], rank: usize) -> Option<Vec<(i64, i64)>> {
    if p.len() != 2 * axes.len() {
        return None;
    }
    let mut out = vec![(0, 0); rank];
    for (k, &a) in axes.iter().enumerate() {
        out[a] = (p[k], p[k + axes.len()]);
    }
    Some(out)
}

pub(super) fn infer(at: &At, op: &Generic, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let x = at.arg(args, 0)?;
    let s = x.shape;
    let r = s.len();
    let one = |v: Vec<usize>| Ok(vec![v]);
    match op {
        Generic::Transpose(p) => one(perm(at, p, r)?.iter().map(|&a| s[a]).collect()),
        Generic::Split { .. } => {
            let (ax, parts) = split_sizes(at, op, args)?;
            Ok(parts
                .into_iter()
                .map(|p| s.iter().enumerate().map(|(d, &n)| if d == ax { p } else { n }).collect())
                .collect())
        }
        Generic::Gather(a) => {
            let ax = at.axis(*a, r)?;
            let idx = at.arg(args, 1)?;
            one(s[..ax].iter().chain(idx.shape).chain(&s[ax + 1..]).copied().collect())
        }
        Generic::GatherElements(a) => {
            at.axis(*a, r)?;
            let idx = at.arg(args, 1)?;
            if idx.shape.len() != r {
                return Err(at.err("indices and data differ in rank"));
            }
            one(idx.shape.to_vec())
        }
        Generic::GatherNd(b) => {
            let idx = at.arg(args, 1)?.shape;
            let b = usize::try_from(*b).map_err(|_| at.err("batch_dims is negative"))?;
            let last = *idx.last().ok_or_else(|| at.err("indices are a scalar"))?;
            if b >= idx.len() || b + last > r || idx[..b] != s[..b] {
                return Err(at.err(format!("indices {idx:?} do not fit data {s:?} with batch_dims {b}")));
            }
            one(idx[..idx.len() - 1].iter().chain(&s[b + last..]).copied().collect())
        }
        Generic::ScatterNd(_) | Generic::ScatterElements(..) => one(s.to_vec()),
        Generic::Squeeze(attr) => one(squeezed(at, s, axes_list(at, attr, args, r)?)?),
        Generic::Unsqueeze(attr) => one(unsqueezed(at, attr, args, s)?),
        Generic::Expand => {
            let target = at.ints(args, 1, "shape")?;
            if target.iter().any(|&d| d < 0) {
                return Err(at.err(format!("shape {target:?} has a negative dimension")));
            }
            let t: Vec<usize> = target.iter().map(|&d| d as usize).collect();
            let o = broadcast(s, &t).ok_or_else(|| at.err(format!("{s:?} does not expand to {t:?}")))?;
            checked_len(at, &o)?;
            one(o)
        }
        Generic::Tile => {
            let rep = at.ints(args, 1, "repeats")?;
            if rep.len() != r || rep.iter().any(|&v| v < 0) {
                return Err(at.err(format!("repeats {rep:?} do not fit rank {r}")));
            }
            let o: Vec<usize> = s.iter().zip(rep).map(|(&d, &k)| d.saturating_mul(k as usize)).collect();
            checked_len(at, &o)?;
            one(o)
        }
        Generic::Range => one(vec![range_len(at, args)?]),
        Generic::ConstantOfShape(_) => {
            let d = at.ints(args, 0, "shape")?;
            if d.iter().any(|&v| v < 0) {
                return Err(at.err(format!("shape {d:?} has a negative dimension")));
            }
            let o: Vec<usize> = d.iter().map(|&v| v as usize).collect();
            checked_len(at, &o)?;
            one(o)
        }
        Generic::Size => one(vec![]),
        Generic::Pad { .. } => one(padded(at, s, &pads(at, op, args, r)?)?),
        Generic::DepthToSpace(b, _) | Generic::SpaceToDepth(b) => {
            one(rearranged(at, s, *b, matches!(op, Generic::DepthToSpace(..)))?)
        }
        Generic::Dropout(outputs) => {
            inference_only(at, args)?;
            Ok(vec![s.to_vec(); *outputs])
        }
        _ => unreachable!("movement ops only"),
    }
}

/// `Squeeze`'s output shape: the given axes (each of length 1) removed, or every axis of 1.
fn squeezed(at: &At, s: &[usize], axes: Option<Vec<usize>>) -> Result<Vec<usize>> {
    let Some(a) = axes else { return Ok(s.iter().copied().filter(|&d| d != 1).collect()) };
    if let Some(&bad) = a.iter().find(|&&i| s[i] != 1) {
        return Err(at.err(format!("axis {bad} of {s:?} is not 1")));
    }
    Ok(s.iter().enumerate().filter(|(i, _)| !a.contains(i)).map(|(_, &d)| d).collect())
}

/// `Unsqueeze`'s output shape: axes of 1 inserted at the given positions of the output.
fn unsqueezed(at: &At, attr: &Option<Vec<i64>>, args: &[Option<Arg>], s: &[usize]) -> Result<Vec<usize>> {
    let raw = match (attr, args.get(1).and_then(Option::as_ref)) {
        (Some(a), _) => a.clone(),
        _ => at.ints(args, 1, "axes")?.to_vec(),
    };
    let out_rank = s.len() + raw.len();
    let mut axes: Vec<usize> = raw.iter().map(|&a| at.axis(a, out_rank)).collect::<Result<_>>()?;
    axes.sort_unstable();
    if axes.windows(2).any(|w| w[0] == w[1]) {
        return Err(at.err(format!("axes {raw:?} repeat an axis")));
    }
    let mut rest = s.iter();
    Ok((0..out_rank).map(|i| if axes.contains(&i) { 1 } else { *rest.next().expect("rank") }).collect())
}

/// `Range`'s length from constant start, limit and delta.
fn range_len(at: &At, args: &[Option<Arg>]) -> Result<usize> {
    let v: Vec<f64> = (0..3)
        .map(|i| {
            at.arg(args, i)?.reals().and_then(|v| v.first().copied()).ok_or_else(|| at.dynamic(format!("input {i}")))
        })
        .collect::<Result<_>>()?;
    if v[2] == 0.0 || !v.iter().all(|x| x.is_finite()) {
        return Err(at.err(format!("start, limit, delta = {v:?}")));
    }
    let n = ((v[1] - v[0]) / v[2]).ceil().max(0.0);
    if n > crate::specialize::MAX_ELEMENTS as f64 {
        return Err(at.refuse(format!("Range of {n} elements")));
    }
    Ok(n as usize)
}

/// `Pad`'s output shape; pads may be negative, but not below an empty axis.
fn padded(at: &At, s: &[usize], p: &[(i64, i64)]) -> Result<Vec<usize>> {
    let o: Vec<usize> = s
        .iter()
        .zip(p)
        .map(|(&d, &(b, e))| {
            usize::try_from(d as i64 + b + e).map_err(|_| at.err(format!("pads {p:?} remove more than {s:?} holds")))
        })
        .collect::<Result<_>>()?;
    checked_len(at, &o)?;
    Ok(o)
}

/// `DepthToSpace` (`to_space`) or `SpaceToDepth`'s output shape for blocksize `b`.
fn rearranged(at: &At, s: &[usize], b: usize, to_space: bool) -> Result<Vec<usize>> {
    let [n, c, h, w] = crate::shape::rank4(at.node, s, "the input")?;
    let bb = b * b;
    if b == 0 {
        return Err(at.err("blocksize is 0"));
    }
    if to_space {
        if c % bb != 0 {
            return Err(at.err(format!("{c} channels do not divide by blocksize² {bb}")));
        }
        return Ok(vec![n, c / bb, h * b, w * b]);
    }
    if h % b != 0 || w % b != 0 {
        return Err(at.err(format!("{h}×{w} does not divide by blocksize {b}")));
    }
    Ok(vec![n, c * bb, h / b, w / b])
}

/// `Dropout`'s `training_mode` (input 2), when given, is the constant false.
fn inference_only(at: &At, args: &[Option<Arg>]) -> Result<()> {
    let Some(a) = args.get(2).and_then(Option::as_ref) else { return Ok(()) };
    match a.ints {
        Some([0]) => Ok(()),
        Some(_) => Err(at.refuse("training_mode = true (random dropout) is not supported: inference only")),
        None if a.floats.is_none() => Err(at.refuse("training_mode must be a constant")),
        None => Ok(()),
    }
}

/// Index `v` (negative counts from the end) checked against an axis of `len`.
fn index(at: &At, v: i64, len: usize) -> Result<usize> {
    let i = if v < 0 { v + len as i64 } else { v };
    if i < 0 || i >= len as i64 {
        return Err(at.err(format!("index {v} is out of range for an axis of length {len}")));
    }
    Ok(i as usize)
}

pub(super) fn eval(
    at: &At,
    op: &Generic,
    ins: &[Option<&Tensor<f64>>],
    args: &[Option<Arg>],
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let x = at.tensor(ins, 0)?;
    let s = &x.shape;
    let r = s.len();
    let out = shapes[0].clone();
    let n: usize = out.iter().product();
    if let Some(o) = selection(at, op, x, ins, &out)? {
        return Ok(vec![select(x, out, &o)]);
    }
    match op {
        Generic::Split { .. } => {
            let (ax, parts) = split_sizes(at, op, args)?;
            let st = strides(s);
            let mut start = 0;
            let mut res = Vec::new();
            for (shape, len) in shapes.into_iter().zip(parts) {
                let o = offsets(&shape, &mut |ix| {
                    Ok(ix.iter().enumerate().map(|(d, &i)| (if d == ax { i + start } else { i }) * st[d]).sum())
                })?;
                res.push(select(x, shape, &o));
                start += len;
            }
            Ok(res)
        }
        Generic::ScatterNd(red) => scatter_nd(at, x, at.tensor(ins, 1)?, at.tensor(ins, 2)?, *red).map(|t| vec![t]),
        Generic::ScatterElements(a, red) => {
            let (ind, upd) = (at.tensor(ins, 1)?, at.tensor(ins, 2)?);
            if ind.shape != upd.shape || ind.shape.len() != r {
                return Err(at.err("indices and updates differ in shape"));
            }
            let targets = element_offsets(at, s, at.axis(*a, r)?, ind, &ind.shape)?;
            Ok(vec![scatter(at, x, upd, *red, targets.into_iter())?])
        }
        Generic::Squeeze(_) | Generic::Unsqueeze(_) | Generic::Dropout(_) => {
            let mut t = x.clone();
            t.shape = out;
            let mut res = vec![t];
            if shapes.len() > 1 {
                res.push(Tensor::int(shapes[1].clone(), DType::Bool, vec![1; n]));
            }
            Ok(res)
        }
        Generic::Range => {
            let v: Vec<f64> =
                (0..3).map(|i| at.arg(args, i).map(|a| a.reals().expect("checked")[0])).collect::<Result<_>>()?;
            Ok(vec![match &x.data {
                Data::Float(_) => Tensor::float(out, (0..n).map(|i| v[0] + i as f64 * v[2]).collect()),
                Data::Int(_) => {
                    Tensor::int(out, x.dtype, (0..n).map(|i| v[0] as i64 + i as i64 * v[2] as i64).collect())
                }
            }])
        }
        Generic::ConstantOfShape(v) => Ok(vec![match v {
            Some((t, val)) if t.is_int() => Tensor::int(out, *t, vec![*val as i64; n]),
            Some((_, val)) => Tensor::float(out, vec![*val; n]),
            None => Tensor::float(out, vec![0.0; n]),
        }]),
        Generic::Size => Ok(vec![Tensor::int(vec![], DType::I64, vec![x.len() as i64])]),
        Generic::Pad { mode, value, pads: attr } => {
            let fill = match (attr, ins.get(2).copied().flatten()) {
                (Some(_), _) => f64::from(*value),
                (None, Some(c)) => first_value(c),
                (None, None) => 0.0,
            };
            pad(at, x, &pads(at, op, args, r)?, *mode, fill, out).map(|t| vec![t])
        }
        _ => unreachable!("movement ops only"),
    }
}

/// For the operators whose output is a selection of the input's elements (one output, each
/// element copied from one source offset), those offsets; `None` for the others.
fn selection(
    at: &At,
    op: &Generic,
    x: &Tensor<f64>,
    ins: &[Option<&Tensor<f64>>],
    out: &[usize],
) -> Result<Option<Vec<usize>>> {
    let (s, r) = (&x.shape, x.shape.len());
    let st = strides(s);
    Ok(Some(match op {
        Generic::Transpose(p) => {
            let p = perm(at, p, r)?;
            offsets(out, &mut |ix| Ok(ix.iter().zip(&p).map(|(&i, &a)| i * st[a]).sum()))?
        }
        Generic::Gather(a) => gather_offsets(at, s, at.axis(*a, r)?, at.tensor(ins, 1)?, out)?,
        Generic::GatherElements(a) => element_offsets(at, s, at.axis(*a, r)?, at.tensor(ins, 1)?, out)?,
        Generic::GatherNd(b) => gather_nd_offsets(at, x, at.tensor(ins, 1)?, *b as usize, out.iter().product())?,
        Generic::Expand => broadcast_offsets(s, out),
        Generic::Tile => offsets(out, &mut |ix| Ok(ix.iter().zip(s).zip(&st).map(|((&i, &d), &t)| (i % d) * t).sum()))?,
        Generic::DepthToSpace(b, crd) => {
            let (b, co) = (*b, s[1] / (b * b));
            offsets(out, &mut |ix| {
                let (nn, oc, oy, ox) = (ix[0], ix[1], ix[2], ix[3]);
                let (by, bx) = (oy % b, ox % b);
                let ic = if *crd { oc * b * b + by * b + bx } else { (by * b + bx) * co + oc };
                Ok(nn * st[0] + ic * st[1] + (oy / b) * st[2] + (ox / b) * st[3])
            })?
        }
        Generic::SpaceToDepth(b) => {
            let (b, c) = (*b, s[1]);
            offsets(out, &mut |ix| {
                let (nn, oc, oy, ox) = (ix[0], ix[1], ix[2], ix[3]);
                let (by, bx) = ((oc / c) / b, (oc / c) % b);
                Ok(nn * st[0] + (oc % c) * st[1] + (oy * b + by) * st[2] + (ox * b + bx) * st[3])
            })?
        }
        _ => return Ok(None),
    }))
}

/// The first value of a (constant) tensor, 0 when it is empty.
fn first_value(c: &Tensor<f64>) -> f64 {
    c.floats()
        .map(|f| f.first().copied().unwrap_or(0.0))
        .unwrap_or_else(|| c.ints().and_then(|i| i.first()).map_or(0.0, |&i| i as f64))
}

/// `Gather`'s source offsets: output index `[before, indices…, after]` reads data
/// `[before, indices[…], after]` along `ax`.
fn gather_offsets(at: &At, s: &[usize], ax: usize, ind: &Tensor<f64>, out: &[usize]) -> Result<Vec<usize>> {
    let iv = ind.ints().ok_or_else(|| at.err("indices must be integers"))?;
    let (q, ist, st) = (ind.shape.len(), strides(&ind.shape), strides(s));
    offsets(out, &mut |ix| {
        let k: usize = ix[ax..ax + q].iter().zip(&ist).map(|(&i, &s)| i * s).sum();
        let j = index(at, iv[k], s[ax])?;
        let before: usize = ix[..ax].iter().zip(&st).map(|(&i, &s)| i * s).sum();
        let after: usize = ix[ax + q..].iter().zip(&st[ax + 1..]).map(|(&i, &s)| i * s).sum();
        Ok(before + j * st[ax] + after)
    })
}

/// `GatherElements` / `ScatterElements` offsets into data of shape `s`: at each index of
/// `shape` (the indices' own), the index along `ax` replaced by the indices' value there.
fn element_offsets(at: &At, s: &[usize], ax: usize, ind: &Tensor<f64>, shape: &[usize]) -> Result<Vec<usize>> {
    let iv = ind.ints().ok_or_else(|| at.err("indices must be integers"))?;
    let st = strides(s);
    let mut k = 0;
    offsets(shape, &mut |ix| {
        let j = index(at, iv[k], s[ax])?;
        k += 1;
        Ok(ix.iter().enumerate().map(|(d, &i)| (if d == ax { j } else { i }) * st[d]).sum())
    })
}

/// Offsets of the elements of an output of `shape` in its source, from a function of each
/// element's multi-index (in row-major order).
fn offsets(shape: &[usize], f: &mut dyn FnMut(&[usize]) -> Result<usize>) -> Result<Vec<usize>> {
    let len: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    (0..len)
        .map(|i| {
            unravel(i, shape, &mut idx);
            f(&idx)
        })
        .collect()
}

/// `GatherNd` with `b` batch axes: the offsets in `x` of the `n` output elements, a slice of
/// `x` per index tuple of `ind`.
fn gather_nd_offsets(at: &At, x: &Tensor<f64>, ind: &Tensor<f64>, b: usize, n: usize) -> Result<Vec<usize>> {
    let (s, st) = (&x.shape, strides(&x.shape));
    let iv = ind.ints().ok_or_else(|| at.err("indices must be integers"))?;
    let last = *ind.shape.last().expect("checked");
    let inner: usize = s[b + last..].iter().product();
    let tuples = ind.len() / last.max(1);
    let per_batch = tuples / ind.shape[..b].iter().product::<usize>().max(1);
    let batch_stride: usize = s[b..].iter().product();
    let mut o = Vec::with_capacity(n);
    for t in 0..tuples {
        let mut off = (t / per_batch.max(1)) * batch_stride;
        for k in 0..last {
            off += index(at, iv[t * last + k], s[b + k])? * st[b + k];
        }
        o.extend(off..off + inner);
    }
    Ok(o)
}

/// `ScatterNd`: `x` with the slices of `upd` written (or reduced) where the index tuples of
/// `ind` point.
fn scatter_nd(at: &At, x: &Tensor<f64>, ind: &Tensor<f64>, upd: &Tensor<f64>, red: Reduction) -> Result<Tensor<f64>> {
    let (s, st) = (&x.shape, strides(&x.shape));
    let iv = ind.ints().ok_or_else(|| at.err("indices must be integers"))?;
    let last = *ind.shape.last().ok_or_else(|| at.err("indices are a scalar"))?;
    if last > s.len() {
        return Err(at.err("index tuples longer than the data's rank"));
    }
    let inner: usize = s[last..].iter().product();
    let tuples = ind.len() / last.max(1);
    if upd.len() != tuples * inner {
        return Err(at.err(format!("updates {:?} do not fit indices {:?}", upd.shape, ind.shape)));
    }
    let mut targets = Vec::with_capacity(tuples);
    for t in 0..tuples {
        let mut off = 0;
        for k in 0..last {
            off += index(at, iv[t * last + k], s[k])? * st[k];
        }
        targets.push(off);
    }
    scatter(at, x, upd, red, targets.iter().flat_map(|&o| o..o + inner))
}

/// `Pad`: `x` grown by `p` (before, after) per axis into `out`, the new elements `fill`
/// (constant) or taken from `x` (edge, wrap, reflect).
fn pad(at: &At, x: &Tensor<f64>, p: &[(i64, i64)], mode: PadMode, fill: f64, out: Vec<usize>) -> Result<Tensor<f64>> {
    let (s, st) = (&x.shape, strides(&x.shape));
    if mode != PadMode::Constant && s.contains(&0) && out.iter().product::<usize>() > 0 {
        return Err(at.err("cannot reflect, edge or wrap pad an empty axis"));
    }
    // usize::MAX marks a padded (constant) element.
    let o = offsets(&out, &mut |ix| {
        let mut off = 0usize;
        for d in 0..s.len() {
            let len = s[d] as i64;
            let mut i = ix[d] as i64 - p[d].0;
            if i < 0 || i >= len {
                i = match mode {
                    PadMode::Constant => return Ok(usize::MAX),
                    PadMode::Edge => i.clamp(0, len - 1),
                    PadMode::Wrap => i.rem_euclid(len),
                    PadMode::Reflect => {
                        if len == 1 {
                            0
                        } else {
                            let period = 2 * (len - 1);
                            let m = i.rem_euclid(period);
                            if m < len {
                                m
                            } else {
                                period - m
                            }
                        }
                    }
                };
            }
            off += i as usize * st[d];
        }
        Ok(off)
    })?;
    Ok(match &x.data {
        Data::Float(v) => Tensor::float(out, o.iter().map(|&k| if k == usize::MAX { fill } else { v[k] }).collect()),
        Data::Int(v) => {
            Tensor::int(out, x.dtype, o.iter().map(|&k| if k == usize::MAX { fill as i64 } else { v[k] }).collect())
        }
    })
}

/// `data` with `updates` written (or reduced) at `targets`, in order.
fn scatter(
    at: &At,
    data: &Tensor<f64>,
    upd: &Tensor<f64>,
    red: Reduction,
    targets: impl Iterator<Item = usize>,
) -> Result<Tensor<f64>> {
    let mut y = data.clone();
    match (&mut y.data, &upd.data) {
        (Data::Float(v), Data::Float(u)) => {
            for (t, &val) in targets.zip(u) {
                v[t] = match red {
                    Reduction::None => val,
                    Reduction::Add => v[t] + val,
                    Reduction::Mul => v[t] * val,
                    Reduction::Max => v[t].max(val),
                    Reduction::Min => v[t].min(val),
                };
            }
        }
        (Data::Int(v), Data::Int(u)) => {
            for (t, &val) in targets.zip(u) {
                v[t] = match red {
                    Reduction::None => val,
                    Reduction::Add => v[t].wrapping_add(val),
                    Reduction::Mul => v[t].wrapping_mul(val),
                    Reduction::Max => v[t].max(val),
                    Reduction::Min => v[t].min(val),
                };
            }
        }
        _ => return Err(at.err("data and updates differ in type")),
    }
    Ok(y)
}
