//! Normalisations along the rows of a row-major matrix: `Softmax` and `LayerNormalization`
//! over the last axis (a ViT's attention scores and its every block's norms). Each row is a
//! few passes over values that stay in L1, several vector accumulators per reduction (a single
//! chain would leave the adder idle for its latency), rows split across threads.

use std::ops::Range;

use crate::error::{KernelError, Result};
use crate::simd::{load_n, store_n, SimdF32};
use crate::threads::{self, SharedMut};
use crate::Parallelism;

/// What [`crate::KernelSet::normalize_rows`] computes on each row.
#[derive(Debug, Clone, Copy)]
pub enum RowNorm<'a> {
    /// `exp(x − max) / Σ exp(x − max)`.
    Softmax,
    /// `(x − mean) / sqrt(var + epsilon) · scale (+ bias)`, the variance biased (over the
    /// row's length), both moments accumulated in float32 in two passes.
    LayerNorm {
        /// One value per column.
        scale: &'a [f32],
        /// One value per column, or none.
        bias: Option<&'a [f32]>,
        /// Added to the variance.
        epsilon: f32,
    },
}

/// Elements below which the rows run on one thread.
const PARALLEL_MIN_ELEMENTS: usize = 16 * 1024;

/// Independent accumulators per reduction.
const ACCUMULATORS: usize = 4;

/// Checks a call: `input` and `out` of equal length, whole rows of `len > 0`, scale and bias
/// of `len` values.
pub(crate) fn check(norm: &RowNorm<'_>, input: &[f32], len: usize, out: &[f32]) -> Result<()> {
    if len == 0 || input.len() != out.len() || !input.len().is_multiple_of(len) {
        return Err(KernelError::Shape(format!(
            "row normalisation of {} values into {} in rows of {len}: need equal lengths, whole rows, len > 0",
            input.len(),
            out.len()
        )));
    }
    if let RowNorm::LayerNorm { scale, bias, .. } = norm {
        if scale.len() != len || bias.is_some_and(|b| b.len() != len) {
            return Err(KernelError::Shape(format!(
                "layer norm over rows of {len} with {} scales and {} biases",
                scale.len(),
                bias.map_or(0, <[f32]>::len)
            )));
        }
    }
    Ok(())
}

/// Runs a checked call: rows split across threads when asked and worth it.
pub(crate) fn run(
    norm: &RowNorm<'_>,
    input: &[f32],
    len: usize,
    out: &mut [f32],
    par: Parallelism,
    rows_fn: unsafe fn(&RowNorm<'_>, *const f32, *mut f32, usize, Range<usize>),
) {
    let parallel = par == Parallelism::Threads && input.len() >= PARALLEL_MIN_ELEMENTS;
    let y = SharedMut(out.as_mut_ptr());
    threads::for_ranges(input.len() / len, 4, parallel, |range| {
        // SAFETY: `check` validated the lengths; the ranges are disjoint rows; the caller
        // reached this through a kernel set whose instruction set the CPU has.
        unsafe { rows_fn(norm, input.as_ptr(), y.get(), len, range) };
    });
}

/// Normalises rows `rows` of `len` values from `x` into `y`.
///
/// # Safety
/// `x` and `y` hold at least `rows.end · len` values (checked by [`check`], with the norm's
/// slices `len` long); the CPU supports `V`'s features; nothing else writes those rows.
#[inline(always)]
pub(crate) unsafe fn rows<V: SimdF32>(norm: &RowNorm<'_>, x: *const f32, y: *mut f32, len: usize, rows: Range<usize>) {
    for r in rows {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            let (src, dst) = (x.add(r * len), y.add(r * len));
            match *norm {
                RowNorm::Softmax => softmax::<V>(src, dst, len),
                RowNorm::LayerNorm { scale, bias, epsilon } => {
                    layer_norm::<V>(src, dst, len, scale.as_ptr(), bias.map(<[f32]>::as_ptr), epsilon)
                }
            }
        }
    }
}

/// A vector's lanes, in the first `LANES` values.
#[inline(always)]
unsafe fn lanes<V: SimdF32>(v: V) -> [f32; 64] {
    let mut buf = [0.0f32; 64];
    // SAFETY: the caller guarantees V's features; `buf` holds 64 ≥ LANES values.
    unsafe { v.store(buf.as_mut_ptr()) };
    buf
}

/// The sum of a vector's lanes.
#[inline(always)]
unsafe fn lanes_sum<V: SimdF32>(v: V) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { lanes(v)[..V::LANES].iter().sum() }
}

/// Folds `f(acc, chunk)` over the row's whole vectors with [`ACCUMULATORS`] accumulators
/// combined by `join`; returns the combined vector and where the whole vectors end.
#[inline(always)]
unsafe fn reduce<V: SimdF32>(
    x: *const f32,
    len: usize,
    init: V,
    f: impl Fn(V, V) -> V,
    join: impl Fn(V, V) -> V,
) -> (V, usize) {
    let step = ACCUMULATORS * V::LANES;
    // SAFETY: the caller guarantees V's features and `len` values at x.
    unsafe {
        let mut acc = [init; ACCUMULATORS];
        let mut i = 0;
        while i + step <= len {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = f(*a, V::load(x.add(i + j * V::LANES)));
            }
            i += step;
        }
        while i + V::LANES <= len {
            acc[0] = f(acc[0], V::load(x.add(i)));
            i += V::LANES;
        }
        let v = acc[1..].iter().fold(acc[0], |s, &a| join(s, a));
        (v, i)
    }
}

/// One softmax row.
#[inline(always)]
unsafe fn softmax<V: SimdF32>(x: *const f32, y: *mut f32, len: usize) {
    // SAFETY: the caller guarantees V's features and `len` values at x and y.
    unsafe {
        let (m, tail) = reduce::<V>(x, len, V::splat(f32::NEG_INFINITY), |a, v| v.max(a), |a, b| b.max(a));
        let max = lanes(m)[..V::LANES]
            .iter()
            .chain(std::slice::from_raw_parts(x.add(tail), len - tail))
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let shift = V::splat(-max);
        let mut i = 0;
        while i < len {
            let n = (len - i).min(V::LANES);
            store_n(crate::math::exp(load_n::<V>(x.add(i), n).add(shift)), y.add(i), n);
            i += n;
        }
        // Partial vectors load zeros past the row: they add nothing.
        let mut sum = [V::splat(0.0); ACCUMULATORS];
        let mut i = 0;
        while i < len {
            let n = (len - i).min(V::LANES);
            let k = (i / V::LANES) % ACCUMULATORS;
            sum[k] = sum[k].add(load_n::<V>(y.add(i), n));
            i += n;
        }
        let total = lanes_sum(sum[1..].iter().fold(sum[0], |s, &a| s.add(a)));
        let inv = V::splat(1.0 / total);
        let mut i = 0;
        while i < len {
            let n = (len - i).min(V::LANES);
            store_n(load_n::<V>(y.add(i), n).mul(inv), y.add(i), n);
            i += n;
        }
    }
}

/// One layer-norm row.
#[inline(always)]
unsafe fn layer_norm<V: SimdF32>(
    x: *const f32,
    y: *mut f32,
    len: usize,
    scale: *const f32,
    bias: Option<*const f32>,
    eps: f32,
) {
    // SAFETY: the caller guarantees V's features and `len` values at x, y, scale and bias.
    unsafe {
        let (s, tail) = reduce::<V>(x, len, V::splat(0.0), |a, v| a.add(v), |a, b| a.add(b));
        let rest = std::slice::from_raw_parts(x.add(tail), len - tail);
        let mean = (lanes_sum(s) + rest.iter().sum::<f32>()) / len as f32;
        let neg_mean = V::splat(-mean);
        let (q, _) = reduce::<V>(
            x,
            len,
            V::splat(0.0),
            |a, v| {
                let d = v.add(neg_mean);
                d.mul_add(d, a)
            },
            |a, b| a.add(b),
        );
        let var = (lanes_sum(q) + rest.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()) / len as f32;
        let inv = V::splat(1.0 / (var + eps).sqrt());
        let mut i = 0;
        while i < len {
            let n = (len - i).min(V::LANES);
            let d = load_n::<V>(x.add(i), n).add(neg_mean).mul(inv);
            let v = match bias {
                Some(b) => d.mul_add(load_n::<V>(scale.add(i), n), load_n::<V>(b.add(i), n)),
                None => d.mul(load_n::<V>(scale.add(i), n)),
            };
            store_n(v, y.add(i), n);
            i += n;
        }
    }
}
