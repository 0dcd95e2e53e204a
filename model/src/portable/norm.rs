//! Normalizations: `LayerNormalization`, `InstanceNormalization`, `GroupNormalization`,
//! `BatchNormalization` in training mode, `LpNormalization`, `MeanVarianceNormalization`;
//! two passes over each group (mean, then variance about it), in float64.

use super::{broadcast_offsets, Arg, At, Generic};
use crate::error::Result;
use crate::tensor::Tensor;

pub(super) fn infer(at: &At, op: &Generic, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let s = at.arg(args, 0)?.shape;
    match op {
        Generic::LayerNorm { axis, outputs, .. } => {
            let ax = at.axis(*axis, s.len())?;
            let stats: Vec<usize> = s.iter().enumerate().map(|(i, &d)| if i < ax { d } else { 1 }).collect();
            let mut v = vec![s.to_vec()];
            v.extend(std::iter::repeat_n(stats, outputs.saturating_sub(1)));
            Ok(v)
        }
        Generic::InstanceNorm(_) | Generic::GroupNorm { .. } => {
            if s.len() < 3 {
                return Err(at.err(format!("input shape {s:?} has no spatial axes")));
            }
            Ok(vec![s.to_vec()])
        }
        Generic::BatchNormTraining { outputs, .. } => {
            let Some(&c) = s.get(1) else {
                return Err(at.err(format!("input shape {s:?} has no channel axis")));
            };
            let mut v = vec![s.to_vec()];
            v.extend(std::iter::repeat_n(vec![c], outputs.saturating_sub(1)));
            Ok(v)
        }
        Generic::LpNorm(axis, _) => {
            at.axis(*axis, s.len())?;
            Ok(vec![s.to_vec()])
        }
        Generic::MeanVarianceNorm(axes) => {
            for &a in axes {
                at.axis(a, s.len())?;
            }
            Ok(vec![s.to_vec()])
        }
        _ => unreachable!("normalizations only"),
    }
}

/// Mean and variance of each group of `v`: element `i` belongs to group `group[i]`.
fn moments(v: &[f64], group: &[usize], groups: usize) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0; groups];
    let mut count = vec![0usize; groups];
    for (&x, &g) in v.iter().zip(group) {
        sum[g] += x;
        count[g] += 1;
    }
    let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, &c)| s / c.max(1) as f64).collect();
    let mut var = vec![0.0; groups];
    for (&x, &g) in v.iter().zip(group) {
        var[g] += (x - mean[g]) * (x - mean[g]);
    }
    var.iter_mut().zip(&count).for_each(|(s, &c)| *s /= c.max(1) as f64);
    (mean, var)
}

/// Optional input `i` read at `idx(e)` for each of the `n` elements (`None` when absent).
fn param(
    at: &At,
    ins: &[Option<&Tensor<f64>>],
    i: usize,
    n: usize,
    idx: &dyn Fn(usize) -> usize,
) -> Result<Option<Vec<f64>>> {
    if ins.get(i).copied().flatten().is_none() {
        return Ok(None);
    }
    let p = at.floats(ins, i)?;
    (0..n)
        .map(|e| p.get(idx(e)).copied().ok_or_else(|| at.err(format!("input {i} is too short"))))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

pub(super) fn eval(
    at: &At,
    op: &Generic,
    ins: &[Option<&Tensor<f64>>],
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let x = at.tensor(ins, 0)?;
    let v = at.floats(ins, 0)?;
    let s = &x.shape;
    let n = v.len();
    let out = shapes[0].clone();
    match op {
        Generic::LayerNorm { axis, epsilon, outputs } => {
            let (y, mean, inv) = layer_norm(at, ins, at.axis(*axis, s.len())?, f64::from(*epsilon))?;
            let mut res = vec![Tensor::float(out, y)];
            if *outputs > 1 {
                res.push(Tensor::float(shapes[1].clone(), mean));
            }
            if *outputs > 2 {
                res.push(Tensor::float(shapes[2].clone(), inv));
            }
            Ok(res)
        }
        Generic::InstanceNorm(eps) | Generic::GroupNorm { epsilon: eps, .. } => {
            let groups = match op {
                Generic::GroupNorm { groups, .. } => *groups,
                _ => s[1],
            };
            Ok(vec![Tensor::float(out, group_norm(at, ins, groups, f64::from(*eps))?)])
        }
        Generic::BatchNormTraining { epsilon, momentum, outputs } => {
            let (c, inner) = (s[1], s[2..].iter().product::<usize>());
            let group: Vec<usize> = (0..n).map(|i| (i / inner.max(1)) % c).collect();
            let (mean, var) = moments(v, &group, c);
            let p = |k: usize| -> Result<&[f64]> {
                let p = at.floats(ins, k)?;
                match p.len() == c {
                    true => Ok(p),
                    false => Err(at.err(format!("input {k} has {} values for {c} channels", p.len()))),
                }
            };
            let (scale, bias, eps) = (p(1)?, p(2)?, f64::from(*epsilon));
            let y = (0..n)
                .map(|i| (v[i] - mean[group[i]]) / (var[group[i]] + eps).sqrt() * scale[group[i]] + bias[group[i]]);
            let mut res = vec![Tensor::float(out, y.collect())];
            let m = f64::from(*momentum);
            for (k, current) in [(3, mean), (4, var)].into_iter().take(outputs - 1) {
                let running = p(k)?.iter().zip(current).map(|(&r, c)| r * m + c * (1.0 - m)).collect();
                res.push(Tensor::float(vec![c], running));
            }
            Ok(res)
        }
        Generic::LpNorm(axis, p) => {
            let ax = at.axis(*axis, s.len())?;
            let (len, inner) = (s[ax], s[ax + 1..].iter().product::<usize>());
            let mut y = v.to_vec();
            for o in 0..n / (len * inner).max(1) {
                for i in 0..inner {
                    let ix = |k: usize| (o * len + k) * inner + i;
                    let norm = if *p == 1 {
                        (0..len).map(|k| v[ix(k)].abs()).sum::<f64>()
                    } else {
                        (0..len).map(|k| v[ix(k)] * v[ix(k)]).sum::<f64>().sqrt()
                    };
                    for k in 0..len {
                        y[ix(k)] = if norm == 0.0 { 0.0 } else { v[ix(k)] / norm };
                    }
                }
            }
            Ok(vec![Tensor::float(out, y)])
        }
        Generic::MeanVarianceNorm(axes) => {
            let axes: Vec<usize> = axes.iter().map(|&a| at.axis(a, s.len())).collect::<Result<_>>()?;
            let kept: Vec<usize> = s.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
            let group = broadcast_offsets(&kept, s);
            let (mean, var) = moments(v, &group, kept.iter().product());
            let y = (0..n).map(|i| (v[i] - mean[group[i]]) / (var[group[i]].sqrt() + 1e-9)).collect();
            Ok(vec![Tensor::float(out, y)])
        }
        _ => unreachable!("normalizations only"),
    }
}

/// `LayerNormalization` over the axes from `ax` on: the output, each group's mean and its
/// inverse standard deviation; scale (and bias) broadcast to the normalized shape.
fn layer_norm(at: &At, ins: &[Option<&Tensor<f64>>], ax: usize, eps: f64) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let (v, s) = (at.floats(ins, 0)?, &at.tensor(ins, 0)?.shape);
    let n = v.len();
    let inner: usize = s[ax..].iter().product::<usize>().max(1);
    let group: Vec<usize> = (0..n).map(|i| i / inner).collect();
    let (mean, var) = moments(v, &group, n / inner);
    let inv: Vec<f64> = var.iter().map(|&q| 1.0 / (q + eps).sqrt()).collect();
    let norm_shape = &s[ax..];
    let scale_shape = &at.tensor(ins, 1)?.shape;
    if crate::tensor::broadcast(scale_shape, norm_shape).as_deref() != Some(norm_shape) {
        return Err(at.err(format!("scale {scale_shape:?} does not broadcast to {norm_shape:?}")));
    }
    let so = broadcast_offsets(scale_shape, norm_shape);
    let bo = match ins.get(2).copied().flatten() {
        Some(b) => broadcast_offsets(&b.shape, norm_shape),
        None => Vec::new(),
    };
    let scale = param(at, ins, 1, n, &|e| so[e % inner])?.expect("required");
    let bias = param(at, ins, 2, n, &|e| bo.get(e % inner).copied().unwrap_or(0))?;
    let y = (0..n)
        .map(|i| (v[i] - mean[group[i]]) * inv[group[i]] * scale[i] + bias.as_ref().map_or(0.0, |b| b[i]))
        .collect();
    Ok((y, mean, inv))
}

/// `GroupNormalization` (`InstanceNormalization`: one group per channel), with scale and
/// bias per channel or per group (GroupNormalization-18).
fn group_norm(at: &At, ins: &[Option<&Tensor<f64>>], groups: usize, eps: f64) -> Result<Vec<f64>> {
    let (v, s) = (at.floats(ins, 0)?, &at.tensor(ins, 0)?.shape);
    let (n, c) = (v.len(), s[1]);
    let spatial: usize = s[2..].iter().product::<usize>().max(1);
    if groups == 0 || c % groups != 0 {
        return Err(at.err(format!("{c} channels do not divide into {groups} groups")));
    }
    let per = c / groups;
    let chan = |i: usize| (i / spatial) % c;
    let group: Vec<usize> = (0..n).map(|i| (i / spatial / c) * groups + chan(i) / per).collect();
    let (mean, var) = moments(v, &group, (n / spatial / c) * groups);
    let which = |len: usize| -> Result<Box<dyn Fn(usize) -> usize>> {
        if len == c {
            Ok(Box::new(chan))
        } else if len == groups {
            Ok(Box::new(move |i| chan(i) / per))
        } else {
            Err(at.err(format!("scale/bias of {len} values for {c} channels in {groups} groups")))
        }
    };
    let scale = param(at, ins, 1, n, &*which(at.floats(ins, 1)?.len())?)?.expect("required");
    let bias = param(at, ins, 2, n, &*which(at.floats(ins, 2)?.len())?)?.expect("required");
    Ok((0..n).map(|i| (v[i] - mean[group[i]]) / (var[group[i]] + eps).sqrt() * scale[i] + bias[i]).collect())
}
