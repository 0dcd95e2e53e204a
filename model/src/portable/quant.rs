//! The quantization operators of QDQ and dynamically quantized exports, and the
//! `com.microsoft` ones ONNX Runtime's quantization tool writes, executed exactly as their
//! specifications define: integer arithmetic on zero-point-shifted values (exact in
//! float64 below 2⁵³), requantization with round-half-to-even and saturation.

use serde::{Deserialize, Serialize};

use super::{Arg, At, Generic};
use crate::error::Result;
use crate::tensor::{broadcast, DType, Tensor};

/// `QLinearAdd` / `QLinearMul`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QLinearBinary {
    /// `QLinearAdd`.
    Add,
    /// `QLinearMul`.
    Mul,
}

impl QLinearBinary {
    /// The operator name.
    pub fn name(self) -> &'static str {
        match self {
            QLinearBinary::Add => "QLinearAdd",
            QLinearBinary::Mul => "QLinearMul",
        }
    }
}

fn range(t: DType) -> (i64, i64) {
    match t {
        DType::U8 => (0, 255),
        DType::I8 => (-128, 127),
        DType::U16 => (0, 65535),
        DType::I16 => (-32768, 32767),
        DType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    }
}

/// `saturate(round_half_even(v / scale) + zero_point)` in type `t`; the division in
/// float32, as the operators define it (a tie can fall differently in float64).
fn quantize(v: f64, scale: f64, zp: i64, t: DType) -> i64 {
    let (lo, hi) = range(t);
    let q = f64::from((v as f32 / scale as f32).round_ties_even());
    let q = if q.is_nan() { 0.0 } else { q };
    ((q as i64).saturating_add(zp)).clamp(lo, hi)
}

/// A (scale, zero point) pair read per element along `axis` (per tensor when scalar).
struct Params<'a> {
    scale: &'a [f64],
    zp: Option<&'a [i64]>,
    /// (length along the axis, stride of the axis) for per-axis parameters.
    axis: Option<(usize, usize)>,
    dtype: DType,
}

impl Params<'_> {
    fn at(&self, i: usize) -> (f64, i64) {
        let k = match self.axis {
            Some((len, stride)) if self.scale.len() > 1 => (i / stride) % len,
            _ => 0,
        };
        (self.scale[k.min(self.scale.len() - 1)], self.zp.map_or(0, |z| z[k.min(z.len() - 1)]))
    }
}

/// Scale (input `s`), zero point (input `z`, optional) for tensor `x` along `axis`.
fn params<'a>(
    at: &At,
    ins: &'a [Option<&'a Tensor<f64>>],
    s: usize,
    z: usize,
    x_shape: &[usize],
    axis: i64,
) -> Result<Params<'a>> {
    let scale = at.floats(ins, s)?;
    let zp_t = ins.get(z).copied().flatten();
    let zp = match zp_t {
        Some(t) => Some(t.ints().ok_or_else(|| at.err(format!("zero point (input {z}) must be an integer tensor")))?),
        None => None,
    };
    let dtype = zp_t.map_or(DType::U8, |t| t.dtype);
    if scale.is_empty() || zp.is_some_and(|z| z.len() != scale.len()) {
        return Err(at.err("scale and zero point differ in length"));
    }
    let axis = if scale.len() > 1 {
        let ax = at.axis(axis, x_shape.len())?;
        if x_shape[ax] != scale.len() {
            return Err(at.err(format!("{} scales for axis {ax} of {x_shape:?}", scale.len())));
        }
        Some((x_shape[ax], x_shape[ax + 1..].iter().product()))
    } else {
        None
    };
    Ok(Params { scale, zp, axis, dtype })
}

fn ints<'a>(at: &At, ins: &'a [Option<&'a Tensor<f64>>], i: usize) -> Result<&'a [i64]> {
    at.tensor(ins, i)?.ints().ok_or_else(|| at.err(format!("input {i} must be an integer tensor")))
}

/// `(x − zero_point)` as float64 (exact), per tensor or along `axis`.
fn shifted(
    at: &At,
    ins: &[Option<&Tensor<f64>>],
    x: usize,
    z: Option<usize>,
    axis: Option<usize>,
) -> Result<Tensor<f64>> {
    let t = at.tensor(ins, x)?;
    let v = ints(at, ins, x)?;
    let zp: &[i64] = match z.and_then(|z| ins.get(z).copied().flatten()) {
        Some(_) => ints(at, ins, z.expect("present"))?,
        None => &[0],
    };
    let (len, stride) = match (axis, zp.len()) {
        (Some(a), n) if n > 1 && a < t.shape.len() && t.shape[a] == n => (n, t.shape[a + 1..].iter().product()),
        (_, 1) => (1, 1),
        _ => return Err(at.err(format!("{} zero points for shape {:?}", zp.len(), t.shape))),
    };
    let vals = v.iter().enumerate().map(|(i, &q)| (q - zp[(i / stride) % len]) as f64).collect();
    Ok(Tensor::float(t.shape.clone(), vals))
}

pub(super) fn infer(at: &At, op: &Generic, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let shape = |i: usize| at.arg(args, i).map(|a| a.shape);
    let one = |v: Vec<usize>| Ok(vec![v]);
    match op {
        Generic::Quantize(..) | Generic::Dequantize(_) | Generic::QLinearSigmoid => one(shape(0)?.to_vec()),
        Generic::DynamicQuantize => Ok(vec![shape(0)?.to_vec(), vec![], vec![]]),
        Generic::QLinearMatMul => one(crate::shape::matmul_shape(at.node, shape(0)?, shape(3)?)?),
        Generic::MatMulInteger | Generic::DynamicQuantizeMatMul => {
            one(crate::shape::matmul_shape(at.node, shape(0)?, shape(1)?)?)
        }
        Generic::QLinearConv(c) => one(crate::shape::conv_params(at.node, c, shape(0)?, shape(3)?)?.1.to_vec()),
        Generic::ConvInteger(c) => one(crate::shape::conv_params(at.node, c, shape(0)?, shape(1)?)?.1.to_vec()),
        Generic::QLinearBinary(_) => {
            let (a, b) = (shape(0)?, shape(3)?);
            one(broadcast(a, b).ok_or_else(|| at.err(format!("shapes {a:?} and {b:?} do not broadcast")))?)
        }
        Generic::QLinearConcat(axis) => {
            let first = shape(2)?;
            let ax = at.axis(*axis, first.len())?;
            let mut out = first.to_vec();
            out[ax] = 0;
            for i in (2..args.len()).step_by(3) {
                let s = shape(i)?;
                if s.len() != first.len() || s.iter().zip(first).enumerate().any(|(k, (a, b))| k != ax && a != b) {
                    return Err(at.err(format!("input {i} has shape {s:?}, incompatible with {first:?}")));
                }
                out[ax] += s[ax];
            }
            one(out)
        }
        Generic::QLinearGlobalAveragePool(channels_last) => {
            let s = shape(0)?;
            if s.len() < 3 {
                return Err(at.err(format!("input shape {s:?} has no spatial axes")));
            }
            let c_axis = if *channels_last { s.len() - 1 } else { 1 };
            one(s.iter().enumerate().map(|(i, &d)| if i == 0 || i == c_axis { d } else { 1 }).collect())
        }
        Generic::QGemm(_, ta, tb) => {
            let (a, b) = (shape(0)?, shape(3)?);
            let ([a0, a1], [b0, b1]) = (a, b) else { return Err(at.err("QGemm needs 2-D inputs")) };
            let (m, k) = if *ta { (*a1, *a0) } else { (*a0, *a1) };
            let (k2, n) = if *tb { (*b1, *b0) } else { (*b0, *b1) };
            if k != k2 {
                return Err(at.err(format!("inner dimensions differ: {a:?} · {b:?}")));
            }
            one(vec![m, n])
        }
        _ => unreachable!("quantization ops only"),
    }
}

pub(super) fn eval(
    at: &At,
    op: &Generic,
    ins: &[Option<&Tensor<f64>>],
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let out = shapes[0].clone();
    match op {
        Generic::Quantize(axis, dtype) => {
            let x = at.floats(ins, 0)?;
            let mut p = params(at, ins, 1, 2, &out, *axis)?;
            if ins.get(2).copied().flatten().is_none() {
                p.dtype = *dtype;
            }
            let q = x.iter().enumerate().map(|(i, &v)| {
                let (sc, zp) = p.at(i);
                quantize(v, sc, zp, p.dtype)
            });
            Ok(vec![Tensor::int(out, p.dtype, q.collect())])
        }
        Generic::Dequantize(axis) => {
            let x = ints(at, ins, 0)?;
            let p = params(at, ins, 1, 2, &out, *axis)?;
            let y = x.iter().enumerate().map(|(i, &q)| {
                let (sc, zp) = p.at(i);
                (q - zp) as f64 * sc
            });
            Ok(vec![Tensor::float(out, y.collect())])
        }
        Generic::DynamicQuantize => {
            let (y, scale, zp) = dynamic_quantize(at.floats(ins, 0)?);
            Ok(vec![
                Tensor::int(out, DType::U8, y),
                Tensor::float(vec![], vec![scale]),
                Tensor::int(vec![], DType::U8, vec![zp]),
            ])
        }
        Generic::MatMulInteger => {
            let a = shifted(at, ins, 0, Some(2), Some(at.tensor(ins, 0)?.shape.len().saturating_sub(2)))?;
            let b = shifted(at, ins, 1, Some(3), Some(at.tensor(ins, 1)?.shape.len().saturating_sub(1)))?;
            let y = crate::reference::matmul(at.node, &a, &b, &out)?;
            Ok(vec![Tensor::int(out, DType::I32, y.iter().map(|&v| v as i64).collect())])
        }
        Generic::QLinearMatMul => qlinear_matmul(at, ins, out),
        Generic::ConvInteger(c) | Generic::QLinearConv(c) => {
            conv(at, ins, c, matches!(op, Generic::QLinearConv(_)), out)
        }
        Generic::QLinearBinary(kind) => {
            let deq = |x: usize, s: usize, z: usize| -> Result<(Vec<f64>, Vec<usize>)> {
                let shape = &at.tensor(ins, x)?.shape;
                Ok((dequantized(at, ins, x, s, z)?, super::broadcast_offsets(shape, &out)))
            };
            let ((a, oa), (b, ob)) = (deq(0, 1, 2)?, deq(3, 4, 5)?);
            let real = oa
                .iter()
                .zip(&ob)
                .map(|(&i, &j)| match kind {
                    QLinearBinary::Add => a[i] + b[j],
                    QLinearBinary::Mul => a[i] * b[j],
                })
                .collect();
            Ok(vec![requantize(at, ins, real, 6, 7, &out)?])
        }
        Generic::QLinearSigmoid => {
            let real = dequantized(at, ins, 0, 1, 2)?.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
            Ok(vec![requantize(at, ins, real, 3, 4, &out)?])
        }
        Generic::QLinearConcat(axis) => qlinear_concat(at, ins, *axis, out),
        Generic::QLinearGlobalAveragePool(channels_last) => qlinear_global_average_pool(at, ins, *channels_last, out),
        Generic::QGemm(alpha, ta, tb) => qgemm(at, ins, *alpha, *ta, *tb, out),
        Generic::DynamicQuantizeMatMul => dynamic_quantize_matmul(at, ins, out),
        _ => unreachable!("quantization ops only"),
    }
}

/// `DynamicQuantizeLinear` in float32 arithmetic, as the operator's definition computes it
/// (the quantized values depend on the rounding of the scale): the values, scale and zero point.
fn dynamic_quantize(x: &[f64]) -> (Vec<i64>, f64, i64) {
    let hi = x.iter().copied().fold(0.0f64, f64::max) as f32;
    let lo = x.iter().copied().fold(0.0f64, f64::min) as f32;
    let scale = (hi - lo) / 255.0;
    let zp = if scale == 0.0 { 0 } else { (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i64 };
    let q = |v: f64| ((v as f32 / scale).round_ties_even() as i64).saturating_add(zp).clamp(0, 255);
    (x.iter().map(|&v| if scale == 0.0 { zp } else { q(v) }).collect(), f64::from(scale), zp)
}

/// `QLinearMatMul`: the integer product, rescaled per row of A and per column of B, requantized.
fn qlinear_matmul(at: &At, ins: &[Option<&Tensor<f64>>], out: Vec<usize>) -> Result<Vec<Tensor<f64>>> {
    let a = shifted(at, ins, 0, Some(2), Some(at.tensor(ins, 0)?.shape.len().saturating_sub(2)))?;
    let b = shifted(at, ins, 3, Some(5), Some(at.tensor(ins, 3)?.shape.len().saturating_sub(1)))?;
    let acc = crate::reference::matmul(at.node, &a, &b, &out)?;
    let (sa, sb) = (at.floats(ins, 1)?, at.floats(ins, 4)?);
    let n = *out.last().unwrap_or(&1);
    let m = if out.len() >= 2 { out[out.len() - 2] } else { 1 };
    let real = acc
        .iter()
        .enumerate()
        .map(|(i, &v)| v * sa[if sa.len() > 1 { (i / n) % m } else { 0 }] * sb[if sb.len() > 1 { i % n } else { 0 }])
        .collect();
    Ok(vec![requantize(at, ins, real, 6, 7, &out)?])
}

/// `QLinearConcat` (`com.microsoft`): inputs in triples (value, scale, zero point) from
/// input 2, dequantized, joined along `axis`, requantized with inputs 0 and 1.
fn qlinear_concat(at: &At, ins: &[Option<&Tensor<f64>>], axis: i64, out: Vec<usize>) -> Result<Vec<Tensor<f64>>> {
    let ax = at.axis(axis, out.len())?;
    let outer: usize = out[..ax].iter().product();
    let mut parts = Vec::new();
    for i in (2..ins.len()).step_by(3) {
        let inner = at.tensor(ins, i)?.shape[ax..].iter().product::<usize>();
        parts.push((dequantized(at, ins, i, i + 1, i + 2)?, inner));
    }
    let mut real = Vec::with_capacity(out.iter().product());
    for o in 0..outer {
        for (v, k) in &parts {
            real.extend_from_slice(&v[o * k..(o + 1) * k]);
        }
    }
    Ok(vec![requantize(at, ins, real, 0, 1, &out)?])
}

/// `QLinearGlobalAveragePool` (`com.microsoft`), channels first or last.
fn qlinear_global_average_pool(
    at: &At,
    ins: &[Option<&Tensor<f64>>],
    channels_last: bool,
    out: Vec<usize>,
) -> Result<Vec<Tensor<f64>>> {
    let s = &at.tensor(ins, 0)?.shape;
    let p = params(at, ins, 1, 2, s, 1)?;
    let q = ints(at, ins, 0)?;
    let (c, spatial) = if channels_last {
        (s[s.len() - 1], s[1..s.len() - 1].iter().product::<usize>())
    } else {
        (s[1], s[2..].iter().product::<usize>())
    };
    let mut sum = vec![0.0; s[0] * c];
    for (i, &v) in q.iter().enumerate() {
        let ch = if channels_last { i % c } else { (i / spatial) % c };
        let (sc, zp) = p.at(0);
        sum[i / (spatial * c) * c + ch] += (v - zp) as f64 * sc;
    }
    let real = sum.iter().map(|v| v / spatial.max(1) as f64).collect();
    Ok(vec![requantize(at, ins, real, 3, 4, &out)?])
}

/// `real` quantized with the scale and zero point of inputs `s` and `z` (per tensor).
fn requantize(
    at: &At,
    ins: &[Option<&Tensor<f64>>],
    real: Vec<f64>,
    s: usize,
    z: usize,
    shape: &[usize],
) -> Result<Tensor<f64>> {
    let p = params(at, ins, s, z, shape, 1)?;
    let q = real.iter().enumerate().map(|(i, &v)| {
        let (sc, zp) = p.at(i);
        quantize(v, sc, zp, p.dtype)
    });
    Ok(Tensor::int(shape.to_vec(), p.dtype, q.collect()))
}

/// The real values of integer input `x` with the scale and zero point of inputs `s` and `z`.
fn dequantized(at: &At, ins: &[Option<&Tensor<f64>>], x: usize, s: usize, z: usize) -> Result<Vec<f64>> {
    let p = params(at, ins, s, z, &at.tensor(ins, x)?.shape, 1)?;
    let v = ints(at, ins, x)?.iter().enumerate().map(|(i, &q)| {
        let (sc, zp) = p.at(i);
        (q - zp) as f64 * sc
    });
    Ok(v.collect())
}

/// `ConvInteger` (the INT32 accumulators) or, `ql`, `QLinearConv` (rescaled, biased and
/// requantized).
fn conv(
    at: &At,
    ins: &[Option<&Tensor<f64>>],
    c: &crate::ir::Conv,
    ql: bool,
    out: Vec<usize>,
) -> Result<Vec<Tensor<f64>>> {
    let (xi, wi) = if ql { (0, 3) } else { (0, 1) };
    let x = shifted(at, ins, xi, Some(2), None)?;
    let w = shifted(at, ins, wi, Some(if ql { 5 } else { 3 }), Some(0))?;
    let (p, o) = crate::shape::conv_params(at.node, c, &x.shape, &w.shape)?;
    let acc = crate::reference::conv(&p, x.floats().expect("float"), &x.shape, w.floats().expect("float"), o);
    if !ql {
        return Ok(vec![Tensor::int(out, DType::I32, acc.iter().map(|&v| v as i64).collect())]);
    }
    let (sx, sw) = (at.floats(ins, 1)?[0], at.floats(ins, 4)?);
    let hw = o[2] * o[3];
    let bias = match ins.get(8).copied().flatten() {
        Some(_) => Some(ints(at, ins, 8)?),
        None => None,
    };
    let real = acc
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / hw) % o[1];
            let b = bias.map_or(0.0, |b| b[ch] as f64);
            (v + b) * sx * sw[if sw.len() > 1 { ch } else { 0 }]
        })
        .collect();
    Ok(vec![requantize(at, ins, real, 6, 7, &out)?])
}

/// `com.microsoft.QGemm`: `alpha·A·B + C` on zero-point-shifted operands, rescaled, and
/// requantized when the output has a scale.
fn qgemm(
    at: &At,
    ins: &[Option<&Tensor<f64>>],
    alpha: f32,
    ta: bool,
    tb: bool,
    out: Vec<usize>,
) -> Result<Vec<Tensor<f64>>> {
    let a = shifted(at, ins, 0, Some(2), None)?;
    let b = shifted(at, ins, 3, Some(5), Some(if tb { 0 } else { 1 }))?;
    let (m, n) = (out[0], out[1]);
    let k = if ta { a.shape[0] } else { a.shape[1] };
    let (av, bv) = (a.floats().expect("float"), b.floats().expect("float"));
    let (sa, sb) = (at.floats(ins, 1)?[0], at.floats(ins, 4)?);
    let c = match ins.get(6).copied().flatten() {
        Some(t) => Some((ints(at, ins, 6)?, super::broadcast_offsets(&t.shape, &out))),
        None => None,
    };
    let mut real = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for p in 0..k {
                let x = if ta { av[p * m + i] } else { av[i * k + p] };
                let y = if tb { bv[j * k + p] } else { bv[p * n + j] };
                s += x * y;
            }
            let bias = c.as_ref().map_or(0.0, |(c, o)| c[o[i * n + j]] as f64);
            real[i * n + j] = (f64::from(alpha) * s + bias) * sa * sb[if sb.len() > 1 { j } else { 0 }];
        }
    }
    if ins.get(7).copied().flatten().is_some() {
        Ok(vec![requantize(at, ins, real, 7, 8, &out)?])
    } else {
        Ok(vec![Tensor::float(out, real)])
    }
}

/// `com.microsoft.DynamicQuantizeMatMul`: A quantized to UINT8 on the fly (as
/// `DynamicQuantizeLinear`), an integer product with B, rescaled; plus the optional bias.
fn dynamic_quantize_matmul(at: &At, ins: &[Option<&Tensor<f64>>], out: Vec<usize>) -> Result<Vec<Tensor<f64>>> {
    let a = at.tensor(ins, 0)?;
    let dq = eval(at, &Generic::DynamicQuantize, &[Some(a)], vec![a.shape.clone(), vec![], vec![]])?;
    let (sa, za) = (dq[1].floats().expect("float")[0], dq[2].ints().expect("int")[0]);
    let aq = Tensor::float(a.shape.clone(), dq[0].ints().expect("int").iter().map(|&q| (q - za) as f64).collect());
    let b = shifted(at, ins, 1, Some(3), Some(at.tensor(ins, 1)?.shape.len().saturating_sub(1)))?;
    let acc = crate::reference::matmul(at.node, &aq, &b, &out)?;
    let sb = at.floats(ins, 2)?;
    let n = *out.last().unwrap_or(&1);
    let bias = match ins.get(4).copied().flatten() {
        Some(_) => Some(at.floats(ins, 4)?),
        None => None,
    };
    let y = acc
        .iter()
        .enumerate()
        .map(|(i, &v)| v * sa * sb[if sb.len() > 1 { i % n } else { 0 }] + bias.map_or(0.0, |b| b[i % n]))
        .collect();
    Ok(vec![Tensor::float(out, y)])
}
