//! `Resize` in full (and `Upsample`): nearest with every rounding mode, linear and cubic
//! (with `antialias` and `exclude_outside`), every coordinate transformation, `axes`,
//! `keep_aspect_ratio_policy`, scales or sizes. Separable: one pass per resized axis,
//! innermost first (the order the ONNX reference composes its one-dimensional
//! interpolations in), each pass linear in its output times the kernel's width.

use serde::{Deserialize, Serialize};

use super::{checked_len, strides, Arg, At};
use crate::error::Result;
use crate::ir::{CoordinateMode, NearestMode};
use crate::tensor::Tensor;

/// Interpolation of a [`ResizeAttrs`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Interp {
    /// Nearest with a rounding mode.
    Nearest(NearestMode),
    /// Linear.
    Linear,
    /// Cubic with coefficient `a`.
    Cubic(f32),
}

/// Coordinate transformations beyond [`CoordinateMode`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Coordinates {
    /// One the native kernels also run.
    Native(CoordinateMode),
    /// `half_pixel_symmetric`.
    HalfPixelSymmetric,
    /// `tf_crop_and_resize` (roi, extrapolation value).
    TfCropAndResize,
}

/// `keep_aspect_ratio_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AspectPolicy {
    /// Each axis to its size.
    Stretch,
    /// One scale, the smaller.
    NotLarger,
    /// One scale, the larger.
    NotSmaller,
}

/// Every attribute of `Resize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResizeAttrs {
    /// Interpolation.
    pub interp: Interp,
    /// Coordinate transformation.
    pub coordinates: Coordinates,
    /// Axes the scales/sizes/roi name (default: all).
    pub axes: Option<Vec<i64>>,
    /// `antialias` (linear and cubic, when downsampling).
    pub antialias: bool,
    /// `exclude_outside`.
    pub exclude_outside: bool,
    /// `extrapolation_value` (tf_crop_and_resize).
    pub extrapolation: f32,
    /// `keep_aspect_ratio_policy` (with sizes).
    pub policy: AspectPolicy,
    /// Input index of `scales` (2 for Resize, 1 for Upsample).
    pub scales_input: usize,
}

impl ResizeAttrs {
    /// The native kernels' `Resize` when these attributes are within what they run.
    pub fn native(&self) -> Option<crate::ir::Resize> {
        let mode = match self.interp {
            Interp::Nearest(m) => crate::ir::ResizeMode::Nearest(m),
            Interp::Linear => crate::ir::ResizeMode::Linear,
            Interp::Cubic(_) => return None,
        };
        let Coordinates::Native(coordinates) = self.coordinates else { return None };
        let plain =
            self.axes.is_none() && !self.antialias && !self.exclude_outside && self.policy == AspectPolicy::Stretch;
        plain.then_some(crate::ir::Resize { mode, coordinates })
    }
}

/// Output shape and per-axis scales.
pub(super) fn geometry(at: &At, r: &ResizeAttrs, args: &[Option<Arg>]) -> Result<(Vec<usize>, Vec<f64>)> {
    let x = at.arg(args, 0)?.shape;
    let rank = x.len();
    let axes: Vec<usize> = match &r.axes {
        Some(a) => a.iter().map(|&v| at.axis(v, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    let present = |i: usize| args.get(i).and_then(Option::as_ref).filter(|a| !a.is_empty());
    let mut scales = vec![1.0f64; rank];
    let mut out = x.to_vec();
    if let Some(sz) = present(r.scales_input + 1).filter(|_| r.scales_input == 2) {
        let s = sz.ints.ok_or_else(|| at.dynamic("sizes"))?;
        if s.len() != axes.len() || s.iter().any(|&v| v < 0) {
            return Err(at.err(format!("sizes {s:?} do not fit {} axes", axes.len())));
        }
        let ratios: Vec<f64> = axes.iter().zip(s).map(|(&a, &v)| v as f64 / x[a] as f64).collect();
        match r.policy {
            AspectPolicy::Stretch => {
                for ((&a, &v), &q) in axes.iter().zip(s).zip(&ratios) {
                    out[a] = v as usize;
                    scales[a] = q;
                }
            }
            p => {
                let fold = if p == AspectPolicy::NotLarger { f64::min } else { f64::max };
                let q = ratios.iter().copied().reduce(fold).unwrap_or(1.0);
                for &a in &axes {
                    out[a] = (q * x[a] as f64 + 0.5).floor() as usize;
                    scales[a] = q;
                }
            }
        }
    } else if let Some(sc) = present(r.scales_input) {
        let s = sc.reals().ok_or_else(|| at.dynamic("scales"))?;
        if s.len() != axes.len() || s.iter().any(|&v| !(v > 0.0 && v < 1e6)) {
            return Err(at.err(format!("scales {s:?} do not fit {} axes", axes.len())));
        }
        for (&a, &q) in axes.iter().zip(&s) {
            // The ONNX reference computes the size in float32.
            out[a] = ((q as f32) * x[a] as f32).floor() as usize;
            scales[a] = q;
        }
    } else {
        return Err(at.err("Resize needs scales or sizes"));
    }
    checked_len(at, &out)?;
    Ok((out, scales))
}

/// The source coordinate of output index `x` on an axis.
#[allow(clippy::too_many_arguments)]
fn source(r: &ResizeAttrs, x: usize, scale: f64, len_in: usize, len_out: usize, roi: (f64, f64)) -> f64 {
    let xf = x as f64;
    let resized = scale * len_in as f64;
    match r.coordinates {
        Coordinates::Native(m) => crate::shape::resize_source(m, x, scale, len_in),
        Coordinates::HalfPixelSymmetric => {
            let adjustment = len_out as f64 / resized;
            let center = len_in as f64 / 2.0;
            center * (1.0 - adjustment) + (xf + 0.5) / scale - 0.5
        }
        Coordinates::TfCropAndResize => {
            if resized > 1.0 {
                roi.0 * (len_in as f64 - 1.0) + xf * (roi.1 - roi.0) * (len_in as f64 - 1.0) / (resized - 1.0)
            } else {
                0.5 * (roi.0 + roi.1) * (len_in as f64 - 1.0)
            }
        }
    }
}

fn cubic(a: f64, x: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// Taps for source coordinate `c`: (first index relative to `ceil(c) − 1`, weights).
fn taps(r: &ResizeAttrs, c: f64, scale: f64) -> (i64, Vec<f64>) {
    let base = c.ceil() - 1.0;
    let ratio = c - base; // in (0, 1]
    let anti = r.antialias && scale < 1.0;
    let s = if anti { scale } else { 1.0 };
    match r.interp {
        Interp::Nearest(m) => {
            let second = match m {
                _ if ratio == 1.0 => true,
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
            (0, vec![f64::from(u8::from(!second)), f64::from(u8::from(second))])
        }
        Interp::Linear => {
            let start = (-1.0 / s).floor() as i64 + 1;
            let n = 2 - 2 * start;
            let w = (start..start + n).map(|k| (1.0 - ((k as f64 - ratio) * s).abs()).clamp(0.0, 1.0)).collect();
            (start, w)
        }
        Interp::Cubic(a) => {
            let start = (-2.0 / s).floor() as i64 + 1;
            let end = 2 - start;
            let w = (start..end).map(|k| cubic(f64::from(a), s * (k as f64 - ratio))).collect();
            (start, w)
        }
    }
}

pub(super) fn eval(
    at: &At,
    r: &ResizeAttrs,
    ins: &[Option<&Tensor<f64>>],
    out: Vec<usize>,
) -> Result<Vec<Tensor<f64>>> {
    let x = at.tensor(ins, 0)?;
    let args: Vec<Option<Arg>> = ins.iter().map(|t| t.map(Arg::of)).collect();
    let (_, scales) = geometry(at, r, &args)?;
    let rank = x.shape.len();
    let axes: Vec<usize> = match &r.axes {
        Some(a) => a.iter().map(|&v| at.axis(v, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    let roi: Vec<(f64, f64)> = match (r.coordinates, ins.get(1).copied().flatten().filter(|t| !t.is_empty())) {
        (Coordinates::TfCropAndResize, Some(t)) => {
            let v: Vec<f64> = match (t.floats(), t.ints()) {
                (Some(f), _) => f.to_vec(),
                (_, Some(i)) => i.iter().map(|&q| q as f64).collect(),
                _ => Vec::new(),
            };
            if v.len() != 2 * axes.len() {
                return Err(at.err(format!("roi {v:?} does not fit {} axes", axes.len())));
            }
            let mut roi = vec![(0.0, 1.0); rank];
            for (k, &a) in axes.iter().enumerate() {
                roi[a] = (v[k], v[k + axes.len()]);
            }
            roi
        }
        _ => vec![(0.0, 1.0); rank],
    };
    let mut cur = x.floats().ok_or_else(|| at.err("input 0 must be a float tensor"))?.to_vec();
    let mut shape = x.shape.clone();
    for a in (0..rank).rev() {
        if out[a] == shape[a] && scales[a] == 1.0 && r.coordinates != Coordinates::TfCropAndResize {
            continue;
        }
        let (len_in, len_out) = (shape[a], out[a]);
        if len_in == 0 && len_out > 0 {
            return Err(at.err(format!("cannot resize an empty axis {a} to {len_out}")));
        }
        let st = strides(&shape);
        let (outer, inner) = (shape[..a].iter().product::<usize>(), st[a]);
        let mut next = vec![0.0; outer * len_out * inner];
        for o in 0..len_out {
            let c = source(r, o, scales[a], len_in, len_out, roi[a]);
            let outside = r.coordinates == Coordinates::TfCropAndResize && (c < 0.0 || c > len_in as f64 - 1.0);
            let (start, mut w) = taps(r, c, scales[a]);
            let base = c.ceil() as i64 - 1 + start;
            let idx: Vec<usize> =
                (0..w.len()).map(|k| (base + k as i64).clamp(0, len_in as i64 - 1) as usize).collect();
            if r.exclude_outside {
                for (k, wk) in w.iter_mut().enumerate() {
                    let i = base + k as i64;
                    if i < 0 || i >= len_in as i64 {
                        *wk = 0.0;
                    }
                }
            }
            let sum: f64 = w.iter().sum();
            if !matches!(r.interp, Interp::Nearest(_))
                && sum != 0.0
                && (r.exclude_outside || (r.antialias && scales[a] < 1.0))
            {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            for p in 0..outer {
                for q in 0..inner {
                    let dst = (p * len_out + o) * inner + q;
                    next[dst] = if outside {
                        f64::from(r.extrapolation)
                    } else {
                        w.iter().zip(&idx).map(|(wk, &i)| wk * cur[(p * len_in + i) * inner + q]).sum()
                    };
                }
            }
        }
        cur = next;
        shape[a] = len_out;
    }
    Ok(vec![Tensor::float(out, cur)])
}
