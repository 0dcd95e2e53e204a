//! `MaxPool` / `AveragePool` of any spatial rank (1-D, 3-D, …), `MaxPool`'s `Indices`
//! output in either storage order: what the native 2-D pool kernels do not take. Each
//! output reads its window once.

use serde::{Deserialize, Serialize};

use super::{checked_len, Arg, At};
use crate::error::Result;
use crate::ir::AutoPad;
use crate::tensor::{DType, Tensor};

/// Attributes of an N-D pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolNd {
    /// Window per spatial axis.
    pub kernel: Vec<usize>,
    /// Strides (default 1).
    pub strides: Vec<usize>,
    /// Dilations (default 1).
    pub dilations: Vec<usize>,
    /// Begin pads then end pads (default 0).
    pub pads: Vec<usize>,
    /// `auto_pad`.
    pub auto_pad: AutoPad,
    /// `ceil_mode`.
    pub ceil_mode: bool,
    /// `None`: max; `Some(count_include_pad)`: average.
    pub average: Option<bool>,
    /// `storage_order = 1` (column-major indices).
    pub column_major: bool,
}

/// Pads (begin, end) per spatial axis.
type Pads = Vec<(usize, usize)>;

/// Resolved pads and output length per spatial axis.
fn geometry(at: &At, p: &PoolNd, spatial: &[usize]) -> Result<(Pads, Vec<usize>)> {
    let r = spatial.len();
    if p.kernel.len() != r || p.strides.len() != r || p.dilations.len() != r || p.pads.len() != 2 * r {
        return Err(at.err(format!("a {}-D window for {r} spatial axes", p.kernel.len())));
    }
    let mut pads = Vec::with_capacity(r);
    let mut out = Vec::with_capacity(r);
    for (a, &len) in spatial.iter().enumerate() {
        let eff = (p.kernel[a] - 1) * p.dilations[a] + 1;
        let s = p.strides[a];
        let (b, e, o) = match p.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = len.div_ceil(s);
                let total = ((o.max(1) - 1) * s + eff).saturating_sub(len);
                let small = total / 2;
                if p.auto_pad == AutoPad::SameUpper {
                    (small, total - small, o)
                } else {
                    (total - small, small, o)
                }
            }
            _ => {
                let (b, e) = if p.auto_pad == AutoPad::Valid { (0, 0) } else { (p.pads[a], p.pads[a + r]) };
                let span = len + b + e;
                if span < eff {
                    return Err(at.err(format!("the window ({eff}) is larger than the padded input ({span})")));
                }
                let o = if p.ceil_mode {
                    let o = (span - eff).div_ceil(s) + 1;
                    // The last window must start inside the input or its left pad.
                    if (o - 1) * s >= len + b {
                        o - 1
                    } else {
                        o
                    }
                } else {
                    (span - eff) / s + 1
                };
                (b, e, o)
            }
        };
        pads.push((b, e));
        out.push(o);
    }
    Ok((pads, out))
}

pub(super) fn infer(at: &At, p: &PoolNd, args: &[Option<Arg>], outputs: usize) -> Result<Vec<Vec<usize>>> {
    let s = at.arg(args, 0)?.shape;
    if s.len() < 3 {
        return Err(at.err(format!("input shape {s:?} has no spatial axes")));
    }
    let (_, o) = geometry(at, p, &s[2..])?;
    let shape: Vec<usize> = s[..2].iter().copied().chain(o).collect();
    checked_len(at, &shape)?;
    Ok(vec![shape; outputs])
}

pub(super) fn eval(
    at: &At,
    p: &PoolNd,
    ins: &[Option<&Tensor<f64>>],
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let x = at.tensor(ins, 0)?;
    let wide;
    let v = match (x.floats(), x.ints()) {
        (Some(f), _) => f,
        (_, Some(_)) => {
            wide = super::cast(x, DType::F32);
            wide.floats().expect("cast to float")
        }
        _ => unreachable!("float or int"),
    };
    let spatial = &x.shape[2..];
    let r = spatial.len();
    let (pads, out_sp) = geometry(at, p, spatial)?;
    let plane: usize = spatial.iter().product();
    let out_plane: usize = out_sp.iter().product();
    let windows: usize = p.kernel.iter().product();
    let planes = x.shape[0] * x.shape[1];
    let (mut y, mut idx) = (Vec::with_capacity(planes * out_plane), Vec::new());
    let (mut o, mut k, mut pos) = (vec![0usize; r], vec![0usize; r], vec![0i64; r]);
    for pl in 0..planes {
        for oi in 0..out_plane {
            super::unravel(oi, &out_sp, &mut o);
            let (mut best, mut best_at, mut sum, mut count, mut padded) =
                (f64::NEG_INFINITY, 0usize, 0.0, 0usize, 0usize);
            for w in 0..windows {
                super::unravel(w, &p.kernel, &mut k);
                let mut inside = true;
                let mut in_pads = true;
                for a in 0..r {
                    pos[a] = (o[a] * p.strides[a] + k[a] * p.dilations[a]) as i64 - pads[a].0 as i64;
                    inside &= pos[a] >= 0 && (pos[a] as usize) < spatial[a];
                    in_pads &= pos[a] < (spatial[a] + pads[a].1) as i64;
                }
                if inside {
                    let off: usize = pos.iter().zip(spatial).fold(0, |acc, (&q, &d)| acc * d + q as usize);
                    let val = v[pl * plane + off];
                    if val > best || (best_at == 0 && count == 0 && best == f64::NEG_INFINITY) {
                        best = val;
                        best_at = off;
                    }
                    sum += val;
                    count += 1;
                } else if in_pads {
                    padded += 1;
                }
            }
            y.push(match p.average {
                Some(true) => sum / (count + padded).max(1) as f64,
                Some(false) => sum / count.max(1) as f64,
                None => best,
            });
            if shapes.len() > 1 {
                let spatial_index = if p.column_major {
                    // Column-major over the spatial axes.
                    let mut coords = vec![0usize; r];
                    super::unravel(best_at, spatial, &mut coords);
                    coords.iter().zip(spatial).rev().fold(0, |acc, (&c, &d)| acc * d + c)
                } else {
                    best_at
                };
                idx.push((pl * plane + spatial_index) as i64);
            }
        }
    }
    let values = if x.dtype.is_int() {
        Tensor::int(shapes[0].clone(), x.dtype, y.iter().map(|&f| f as i64).collect())
    } else {
        Tensor::float(shapes[0].clone(), y)
    };
    let mut res = vec![values];
    if shapes.len() > 1 {
        res.push(Tensor::int(shapes[1].clone(), DType::I64, idx));
    }
    Ok(res)
}
