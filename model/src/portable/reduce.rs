//! Reductions along axes: `Reduce*`, `ArgMax`/`ArgMin`, `LogSoftmax`, `Hardmax`,
//! `GlobalMaxPool`, `TopK` and the running sums of `CumSum`. Each input element is visited
//! once (twice for the numerically stable log-sum-exp); `TopK` selects before it sorts.

use serde::{Deserialize, Serialize};

use super::{broadcast_offsets, Arg, At, Generic};
use crate::error::Result;
use crate::tensor::{DType, Data, Tensor};

/// Which reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ReduceKind {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

impl ReduceKind {
    /// The ONNX operator name.
    pub fn name(self) -> &'static str {
        use ReduceKind::*;
        match self {
            Mean => "ReduceMean",
            Sum => "ReduceSum",
            Max => "ReduceMax",
            Min => "ReduceMin",
            Prod => "ReduceProd",
            L1 => "ReduceL1",
            L2 => "ReduceL2",
            SumSquare => "ReduceSumSquare",
            LogSum => "ReduceLogSum",
            LogSumExp => "ReduceLogSumExp",
        }
    }
}

/// The reduced axes (sorted) of a `Reduce*` node, `None` when it reduces nothing.
fn reduced_axes(at: &At, op: &Generic, args: &[Option<Arg>]) -> Result<Option<Vec<usize>>> {
    let Generic::Reduce { axes, noop_with_empty_axes, .. } = op else { unreachable!("reduce only") };
    let r = at.arg(args, 0)?.shape.len();
    let raw: Vec<i64> = match (axes, args.get(1).and_then(Option::as_ref)) {
        (Some(a), _) => a.clone(),
        (None, Some(_)) => at.ints(args, 1, "axes")?.to_vec(),
        (None, None) => Vec::new(),
    };
    if raw.is_empty() {
        return Ok(if *noop_with_empty_axes { None } else { Some((0..r).collect()) });
    }
    let mut v: Vec<usize> = raw.iter().map(|&a| at.axis(a, r)).collect::<Result<_>>()?;
    v.sort_unstable();
    v.dedup();
    Ok(Some(v))
}

/// (outer, len, inner) around axis `axis`, or flattened from it for opset < 13 semantics.
fn around(at: &At, shape: &[usize], axis: i64, coerce_2d: bool) -> Result<(usize, usize, usize)> {
    let ax = at.axis(axis, shape.len())?;
    let outer = shape[..ax].iter().product();
    Ok(if coerce_2d {
        (outer, shape[ax..].iter().product(), 1)
    } else {
        (outer, shape[ax], shape[ax + 1..].iter().product())
    })
}

pub(super) fn infer(at: &At, op: &Generic, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let s = at.arg(args, 0)?.shape;
    match op {
        Generic::Reduce { keepdims, .. } => Ok(vec![match reduced_axes(at, op, args)? {
            None => s.to_vec(),
            Some(axes) => s
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| match (axes.contains(&i), keepdims) {
                    (true, true) => Some(1),
                    (true, false) => None,
                    _ => Some(d),
                })
                .collect(),
        }]),
        Generic::ArgExtreme { axis, keepdims, .. } => {
            let ax = at.axis(*axis, s.len())?;
            if s[ax] == 0 {
                return Err(at.err("ArgMax/ArgMin over an empty axis"));
            }
            let mut o = s.to_vec();
            if *keepdims {
                o[ax] = 1;
            } else {
                o.remove(ax);
            }
            Ok(vec![o])
        }
        Generic::LogSoftmax { axis, .. } | Generic::Hardmax { axis, .. } => {
            at.axis(*axis, s.len())?;
            Ok(vec![s.to_vec()])
        }
        Generic::GlobalMaxPool => {
            if s.len() < 3 {
                return Err(at.err(format!("input shape {s:?} has no spatial axes")));
            }
            Ok(vec![s.iter().enumerate().map(|(i, &d)| if i < 2 { d } else { 1 }).collect()])
        }
        Generic::TopK { axis, .. } => {
            let ax = at.axis(*axis, s.len())?;
            let k = match at.ints(args, 1, "k")? {
                [k] if *k >= 0 && *k as usize <= s[ax] => *k as usize,
                k => return Err(at.err(format!("k = {k:?} for an axis of length {}", s[ax]))),
            };
            let mut o = s.to_vec();
            o[ax] = k;
            Ok(vec![o.clone(), o])
        }
        Generic::CumSum { .. } => {
            // The axis only matters to the values; the shape is the input's either way.
            if let Some(a) = args.get(1).and_then(Option::as_ref).and_then(|a| a.ints) {
                cumsum_axis(at, a, s.len())?;
            }
            Ok(vec![s.to_vec()])
        }
        _ => unreachable!("reductions only"),
    }
}

/// `CumSum`'s axis: one integer (a scalar or a one-element tensor), resolved against `rank`.
fn cumsum_axis(at: &At, axis: &[i64], rank: usize) -> Result<usize> {
    match axis {
        [a] => at.axis(*a, rank),
        _ => Err(at.err(format!("axis must hold one value, not {}", axis.len()))),
    }
}

pub(super) fn eval(
    at: &At,
    op: &Generic,
    ins: &[Option<&Tensor<f64>>],
    args: &[Option<Arg>],
    mut shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let x = at.tensor(ins, 0)?;
    let out = shapes.remove(0);
    match op {
        Generic::Reduce { kind, .. } => {
            let Some(axes) = reduced_axes(at, op, args)? else { return Ok(vec![x.clone()]) };
            // Output offsets of every input element: the kept shape broadcast to the input's.
            let kept: Vec<usize> =
                x.shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
            let dest = broadcast_offsets(&kept, &x.shape);
            let n: usize = kept.iter().product();
            let count = (x.len() / n.max(1)).max(1) as f64;
            match &x.data {
                Data::Float(v) => Ok(vec![Tensor::float(out, reduce_floats(*kind, v, &dest, n, count))]),
                Data::Int(v) => {
                    let acc = reduce_ints(at, *kind, v, &dest, n, count as i64)?;
                    Ok(vec![Tensor::int(out, x.dtype, acc.into_iter().map(|a| x.dtype.wrap(a)).collect())])
                }
            }
        }
        Generic::ArgExtreme { max, axis, select_last_index, .. } => {
            let y = arg_extreme(&x.reals(), around(at, &x.shape, *axis, false)?, *max, *select_last_index);
            Ok(vec![Tensor::int(out, DType::I64, y)])
        }
        Generic::LogSoftmax { axis, coerce_2d } | Generic::Hardmax { axis, coerce_2d } => {
            let dims = around(at, &x.shape, *axis, *coerce_2d)?;
            let y = log_softmax_or_hardmax(at.floats(ins, 0)?, dims, matches!(op, Generic::Hardmax { .. }));
            Ok(vec![Tensor::float(out, y)])
        }
        Generic::GlobalMaxPool => {
            let v = at.floats(ins, 0)?;
            let inner: usize = x.shape[2..].iter().product();
            Ok(vec![Tensor::float(
                out,
                v.chunks(inner.max(1)).map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max)).collect(),
            )])
        }
        Generic::TopK { axis, largest } => {
            let k = out[at.axis(*axis, x.shape.len())?];
            let (vals, idx) = top_k(&x.reals(), around(at, &x.shape, *axis, false)?, k, *largest);
            let values = match &x.data {
                Data::Float(_) => Tensor::float(out.clone(), vals),
                Data::Int(_) => Tensor::int(out.clone(), x.dtype, vals.iter().map(|&v| v as i64).collect()),
            };
            Ok(vec![values, Tensor::int(out, DType::I64, idx)])
        }
        Generic::CumSum { exclusive, reverse } => {
            let axis = cumsum_axis(at, at.ints(args, 1, "axis")?, x.shape.len())?;
            let dims = around(at, &x.shape, axis as i64, false)?;
            let scan = Scan { dims, exclusive: *exclusive, reverse: *reverse };
            Ok(vec![match &x.data {
                Data::Float(v) => Tensor::float(out, scan.run(v, 0.0, |a, b| a + b)),
                Data::Int(v) => {
                    let sums = scan.run(v, 0, i64::wrapping_add);
                    Tensor::int(out, x.dtype, sums.into_iter().map(|a| x.dtype.wrap(a)).collect())
                }
            }])
        }
        _ => unreachable!("reductions only"),
    }
}

/// A running sum along the middle axis of `(outer, len, inner)`.
struct Scan {
    dims: (usize, usize, usize),
    /// Each sum leaves out its own element (the first is zero).
    exclusive: bool,
    /// From the end of the axis to its start.
    reverse: bool,
}

impl Scan {
    /// The running sums of `v` (`add` from `zero`), one pass in memory order.
    fn run<T: Copy>(&self, v: &[T], zero: T, add: impl Fn(T, T) -> T) -> Vec<T> {
        let (outer, len, inner) = self.dims;
        let mut y = vec![zero; v.len()];
        let mut acc = vec![zero; inner];
        for o in 0..outer {
            acc.fill(zero);
            for step in 0..len {
                let k = if self.reverse { len - 1 - step } else { step };
                let row = (o * len + k) * inner;
                for (i, a) in acc.iter_mut().enumerate() {
                    let x = v[row + i];
                    if self.exclusive {
                        y[row + i] = *a;
                        *a = add(*a, x);
                    } else {
                        *a = add(*a, x);
                        y[row + i] = *a;
                    }
                }
            }
        }
        y
    }
}

/// An integer reduction of `v` into `n` groups (`dest[i]` is element i's group), wrapping
/// on overflow; `Mean` divides by `count`.
fn reduce_ints(at: &At, kind: ReduceKind, v: &[i64], dest: &[usize], n: usize, count: i64) -> Result<Vec<i64>> {
    let init = match kind {
        ReduceKind::Max => i64::MIN,
        ReduceKind::Min => i64::MAX,
        ReduceKind::Prod => 1,
        _ => 0,
    };
    let mut acc = vec![init; n];
    for (&val, &o) in v.iter().zip(dest) {
        acc[o] = match kind {
            ReduceKind::Max => acc[o].max(val),
            ReduceKind::Min => acc[o].min(val),
            ReduceKind::Prod => acc[o].wrapping_mul(val),
            ReduceKind::L1 => acc[o].wrapping_add(val.wrapping_abs()),
            ReduceKind::SumSquare => acc[o].wrapping_add(val.wrapping_mul(val)),
            ReduceKind::Sum | ReduceKind::Mean => acc[o].wrapping_add(val),
            _ => return Err(at.refuse(format!("{} of integers", kind.name()))),
        };
    }
    if kind == ReduceKind::Mean {
        acc.iter_mut().for_each(|a| *a /= count);
    }
    Ok(acc)
}

/// `ArgMax` / `ArgMin` along the middle axis of `(outer, len, inner)`: the first extreme,
/// or the last with `select_last_index`.
fn arg_extreme(reals: &[f64], (outer, len, inner): (usize, usize, usize), max: bool, last: bool) -> Vec<i64> {
    let mut y = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at_k = |k: usize| reals[(o * len + k) * inner + i];
            let mut best = 0;
            for k in 1..len {
                let (a, b) = (at_k(k), at_k(best));
                let better = if max { a > b } else { a < b };
                if better || (last && a == b) {
                    best = k;
                }
            }
            y.push(best as i64);
        }
    }
    y
}

/// `LogSoftmax` (or `Hardmax`: one-hot of the first maximum) along the middle axis.
fn log_softmax_or_hardmax(v: &[f64], (outer, len, inner): (usize, usize, usize), hard: bool) -> Vec<f64> {
    let mut y = v.to_vec();
    for o in 0..outer {
        for i in 0..inner {
            let ix = |k: usize| (o * len + k) * inner + i;
            let (mut m, mut arg) = (f64::NEG_INFINITY, 0);
            for k in 0..len {
                if v[ix(k)] > m {
                    (m, arg) = (v[ix(k)], k);
                }
            }
            if hard {
                for k in 0..len {
                    y[ix(k)] = f64::from(u8::from(k == arg));
                }
            } else {
                let lse = m + (0..len).map(|k| (v[ix(k)] - m).exp()).sum::<f64>().ln();
                for k in 0..len {
                    y[ix(k)] = v[ix(k)] - lse;
                }
            }
        }
    }
    y
}

/// `TopK` along the middle axis: the `k` largest (or smallest) values, sorted, ties to the
/// lower index, and their indices.
fn top_k(reals: &[f64], (outer, len, inner): (usize, usize, usize), k: usize, largest: bool) -> (Vec<f64>, Vec<i64>) {
    let n = outer * k * inner;
    let (mut vals, mut idx) = (vec![0.0; n], vec![0i64; n]);
    let mut cand: Vec<(f64, usize)> = Vec::with_capacity(len);
    let order = |a: &(f64, usize), b: &(f64, usize)| {
        let c = if largest { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
        c.then(a.1.cmp(&b.1))
    };
    for o in 0..outer {
        for i in 0..inner {
            cand.clear();
            cand.extend((0..len).map(|j| (reals[(o * len + j) * inner + i], j)));
            if k > 0 && k < len {
                cand.select_nth_unstable_by(k - 1, order);
            }
            cand[..k].sort_by(order);
            for (j, &(v, p)) in cand[..k].iter().enumerate() {
                vals[(o * k + j) * inner + i] = v;
                idx[(o * k + j) * inner + i] = p as i64;
            }
        }
    }
    (vals, idx)
}

fn reduce_floats(kind: ReduceKind, v: &[f64], dest: &[usize], n: usize, count: f64) -> Vec<f64> {
    use ReduceKind::*;
    let init = match kind {
        Max => f64::NEG_INFINITY,
        Min => f64::INFINITY,
        Prod => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![init; n];
    // log-sum-exp subtracts each group's maximum first.
    let shift = if kind == LogSumExp {
        let mut m = vec![f64::NEG_INFINITY; n];
        for (&x, &o) in v.iter().zip(dest) {
            m[o] = m[o].max(x);
        }
        m.iter_mut().for_each(|x| {
            if !x.is_finite() {
                *x = 0.0;
            }
        });
        m
    } else {
        Vec::new()
    };
    for (&x, &o) in v.iter().zip(dest) {
        acc[o] = match kind {
            Max if x.is_nan() || acc[o].is_nan() => f64::NAN,
            Min if x.is_nan() || acc[o].is_nan() => f64::NAN,
            Max => acc[o].max(x),
            Min => acc[o].min(x),
            Prod => acc[o] * x,
            L1 => acc[o] + x.abs(),
            L2 | SumSquare => acc[o] + x * x,
            LogSumExp => acc[o] + (x - shift[o]).exp(),
            Sum | Mean | LogSum => acc[o] + x,
        };
    }
    for (o, a) in acc.iter_mut().enumerate() {
        *a = match kind {
            Mean => *a / count,
            L2 => a.sqrt(),
            LogSum => a.ln(),
            LogSumExp => a.ln() + shift[o],
            _ => *a,
        };
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::{eval, Generic};
    use crate::ir::{Node, Op};
    use crate::tensor::{DType, Tensor};

    fn cumsum(x: &Tensor<f64>, axis: &[i64], exclusive: bool, reverse: bool) -> crate::error::Result<Vec<i64>> {
        let op = Generic::CumSum { exclusive, reverse };
        let node = Node { name: "scan".into(), op: Op::Generic(op.clone()), inputs: Vec::new(), outputs: Vec::new() };
        let axis = Tensor::int(if axis.len() == 1 { vec![] } else { vec![axis.len()] }, DType::I64, axis.to_vec());
        let y = eval(&node, &op, &[Some(x), Some(&axis)])?.remove(0);
        assert_eq!(y.shape, x.shape);
        Ok(y.ints().expect("integer input, integer output").to_vec())
    }

    /// Exact integer sums along the middle axis of a [2, 3, 2] tensor (so that the axis has
    /// both an outer and an inner stride), every direction and mode, worked out by hand.
    #[test]
    fn cumsum_runs_along_an_inner_axis_both_ways() {
        let x = Tensor::int(vec![2, 3, 2], DType::I64, (1..=12).collect());
        #[rustfmt::skip]
        let cases: [(bool, bool, [i64; 12]); 4] = [
            (false, false, [1, 2, 4, 6, 9, 12, 7, 8, 16, 18, 27, 30]),
            (true, false, [0, 0, 1, 2, 4, 6, 0, 0, 7, 8, 16, 18]),
            (false, true, [9, 12, 8, 10, 5, 6, 27, 30, 20, 22, 11, 12]),
            (true, true, [8, 10, 5, 6, 0, 0, 20, 22, 11, 12, 0, 0]),
        ];
        for (exclusive, reverse, want) in cases {
            for axis in [1, -2] {
                assert_eq!(
                    cumsum(&x, &[axis], exclusive, reverse).unwrap(),
                    want,
                    "exclusive {exclusive} reverse {reverse}"
                );
            }
        }
    }

    #[test]
    fn cumsum_wraps_in_its_integer_type_and_refuses_bad_axes() {
        let x = Tensor::int(vec![3], DType::I32, vec![i64::from(i32::MAX), 1, 1]);
        assert_eq!(
            cumsum(&x, &[0], false, false).unwrap(),
            [i64::from(i32::MAX), i64::from(i32::MIN), i64::from(i32::MIN) + 1]
        );
        let err = cumsum(&x, &[1], false, false).unwrap_err().to_string();
        assert!(err.contains("axis 1 is out of range for rank 1") && err.contains("scan"), "{err}");
        let err = cumsum(&x, &[0, 0], false, false).unwrap_err().to_string();
        assert!(err.contains("axis must hold one value, not 2"), "{err}");
    }
}
