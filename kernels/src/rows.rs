//! Normalisations along the rows of a row-major matrix: `Softmax` and `LayerNormalization`
//! over the last axis (a ViT's attention scores and its every block's norms), and
//! `GroupNormalization` over rows of whole channels (a group of an NCHW image). Each row is
//! a few passes over its values, several vector accumulators per reduction (a single chain
//! would leave the adder idle for its latency), rows split across threads.

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
    /// `GroupNormalization` (and `InstanceNormalization`, one channel per group): each row
    /// is one group of whole channels, normalised as a whole like [`RowNorm::LayerNorm`],
    /// then each channel scaled and shifted by its own values; `channels` says where the
    /// row's channels lie.
    GroupNorm {
        /// One value per channel (`C`).
        scale: &'a [f32],
        /// One value per channel.
        bias: &'a [f32],
        /// The layout of the channels in a row.
        channels: Channels,
        /// Added to the variance.
        epsilon: f32,
    },
}

/// Where the channels of a [`RowNorm::GroupNorm`] row lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// One after another, this many values each (an NCHW image's planes): row `r` holds
    /// `k = len / n` channels from `r·k mod C` on — the groups of a batch, image after
    /// image. `C` is a multiple of `k`.
    Planes(usize),
    /// Interleaved (an NHWC image): value `i` of every row is in channel `i mod C`, each row
    /// one whole image normalised as one group. The row length is a multiple of `C`.
    Interleaved,
}

/// Elements below which the rows run on one thread.
const PARALLEL_MIN_ELEMENTS: usize = 16 * 1024;

/// Independent accumulators per reduction.
const ACCUMULATORS: usize = 4;

/// Checks a call: `input` and `out` of equal length, whole rows of `len > 0`; a layer norm's
/// scale and bias of `len` values; a group norm's rows of whole channels and scale and bias
/// of as many whole groups of channels.
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
    if let RowNorm::GroupNorm { scale, bias, channels, .. } = norm {
        let c = scale.len();
        let whole = match *channels {
            Channels::Planes(n) => n > 0 && len.is_multiple_of(n) && c.is_multiple_of(len / n),
            Channels::Interleaved => len.is_multiple_of(c),
        };
        if c == 0 || bias.len() != c || !whole {
            return Err(KernelError::Shape(format!(
                "group norm over rows of {len} in {channels:?} with {c} scales and {} biases: need as \
                 many scales as biases, rows of whole channels, whole groups of them",
                bias.len()
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
/// slices as long as it says); the CPU supports `V`'s features; nothing else writes those rows.
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
                RowNorm::GroupNorm { scale, bias, channels: Channels::Planes(n), epsilon } => {
                    // `check` made the scale a whole number of rows' channels.
                    let k = len / n;
                    let first = (r * k) % scale.len();
                    let params = (scale[first..first + k].as_ptr(), bias[first..first + k].as_ptr());
                    group_norm::<V>(src, dst, (len, n), params, epsilon)
                }
                RowNorm::GroupNorm { scale, bias, channels: Channels::Interleaved, epsilon } => {
                    interleaved_norm::<V>(src, dst, len, (scale, bias), epsilon)
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

/// The mean of a row of `len` values and the inverse of its standard deviation (the
/// variance biased, about the mean, plus `eps`).
#[inline(always)]
unsafe fn moments<V: SimdF32>(x: *const f32, len: usize, eps: f32) -> (f32, f32) {
    // SAFETY: the caller guarantees V's features and `len` values at x.
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
        (mean, 1.0 / (var + eps).sqrt())
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
        let (mean, inv) = moments::<V>(x, len, eps);
        let (neg_mean, inv) = (V::splat(-mean), V::splat(inv));
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

/// One group-norm row of `len` values in planes of `channel_len`, with the row's channels'
/// scales and biases: `(x − mean) · (inv · scale) + bias`, one multiply-add per value.
#[inline(always)]
unsafe fn group_norm<V: SimdF32>(
    x: *const f32,
    y: *mut f32,
    (len, channel_len): (usize, usize),
    (scale, bias): (*const f32, *const f32),
    eps: f32,
) {
    // SAFETY: the caller guarantees V's features, `len` values at x and y, and
    // `len / channel_len` at scale and bias.
    unsafe {
        let (mean, inv) = moments::<V>(x, len, eps);
        let neg_mean = V::splat(-mean);
        for c in 0..len / channel_len {
            let (a, b) = (V::splat(inv * *scale.add(c)), V::splat(*bias.add(c)));
            let (src, dst) = (x.add(c * channel_len), y.add(c * channel_len));
            let mut i = 0;
            while i < channel_len {
                let n = (channel_len - i).min(V::LANES);
                store_n(load_n::<V>(src.add(i), n).add(neg_mean).mul_add(a, b), dst.add(i), n);
                i += n;
            }
        }
    }
}

/// One group-norm row of `len` values whose channels interleave (`scale` and `bias` repeat
/// along the row): `(x − mean) · inv · scale + bias`.
#[inline(always)]
unsafe fn interleaved_norm<V: SimdF32>(
    x: *const f32,
    y: *mut f32,
    len: usize,
    (scale, bias): (&[f32], &[f32]),
    eps: f32,
) {
    // SAFETY: the caller guarantees V's features and `len` values at x and y, a multiple of
    // the scale's length, which the bias shares.
    unsafe {
        let (mean, inv) = moments::<V>(x, len, eps);
        let (neg_mean, inv) = (V::splat(-mean), V::splat(inv));
        let c = scale.len();
        for pixel in (0..len).step_by(c) {
            let (src, dst) = (x.add(pixel), y.add(pixel));
            let mut i = 0;
            while i < c {
                let n = (c - i).min(V::LANES);
                let d = load_n::<V>(src.add(i), n).add(neg_mean).mul(inv);
                store_n(
                    d.mul_add(load_n::<V>(scale.as_ptr().add(i), n), load_n::<V>(bias.as_ptr().add(i), n)),
                    dst.add(i),
                    n,
                );
                i += n;
            }
        }
    }
}
