//! The depthwise convolution kernel: direct, NHWC, vectorised over channels, written once over
//! [`SimdF32`] and compiled per instruction set by [`crate::gemm::microkernel!`].
//!
//! Each output pixel accumulates its kernel window into up to four channel vectors held in
//! registers, with bias, residual and activation applied before the single store. Taps that
//! fall into the padding are skipped (their window bounds are computed per row and per pixel),
//! never multiplied by zero.

use crate::epilogue::Activation;
use crate::simd::{load_n, store_n, SimdF32};

/// The shape of one depthwise convolution (one input channel per group, `mult` outputs each).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DwGeom {
    /// Input rows.
    pub h: usize,
    /// Input columns.
    pub w: usize,
    /// Input channels (= groups).
    pub c_in: usize,
    /// Output channels per input channel.
    pub mult: usize,
    /// Output channels, `c_in·mult`.
    pub c_out: usize,
    /// Kernel rows and columns.
    pub kernel: [usize; 2],
    /// Strides.
    pub stride: [usize; 2],
    /// Dilations.
    pub dilation: [usize; 2],
    /// Top and left pads.
    pub pad: [usize; 2],
    /// Output columns.
    pub ow: usize,
    /// Activation applied last.
    pub activation: Activation,
}

/// Pointers for one output row.
pub(crate) struct DwRow {
    /// The image's first input value.
    pub input: *const f32,
    /// Packed weights: `kh·kw` taps of `c_out` values.
    pub weights: *const f32,
    /// The row's first output value (`ow` pixels of `c_out`).
    pub out: *mut f32,
    /// `c_out` bias values, or null.
    pub bias: *const f32,
    /// The row's first residual value, or null.
    pub residual: *const f32,
    /// Distance between residual pixels.
    pub residual_stride: usize,
    /// The output row.
    pub oy: usize,
}

/// Valid kernel indices `lo..hi` on one axis for an output position whose window starts at
/// input coordinate `start` (may be negative), for an input of `extent` values.
#[inline(always)]
fn window(start: isize, kernel: usize, dilation: usize, extent: usize) -> (usize, usize) {
    let d = dilation as isize;
    let lo = if start < 0 { ((-start) + d - 1) / d } else { 0 } as usize;
    let room = extent as isize - start; // taps must satisfy start + k·d < extent
    let hi = if room <= 0 { 0 } else { (((room - 1) / d) + 1).min(kernel as isize) as usize };
    (lo.min(hi), hi)
}

/// Computes one output row.
///
/// # Safety
/// The CPU supports `V`'s features; the pointers cover the extents [`DwRow`] describes for the
/// geometry `g` (input: the image's `h·w·c_in` values; output and residual: `ow` pixels).
#[inline(always)]
pub(crate) unsafe fn row<V: SimdF32>(g: &DwGeom, r: &DwRow) {
    let iy0 = (r.oy * g.stride[0]) as isize - g.pad[0] as isize;
    let rows = window(iy0, g.kernel[0], g.dilation[0], g.h);
    for ox in 0..g.ow {
        let ix0 = (ox * g.stride[1]) as isize - g.pad[1] as isize;
        let cols = window(ix0, g.kernel[1], g.dilation[1], g.w);
        let px = Pixel { iy0, ix0, rows, cols, ox };
        let mut c = 0;
        // SAFETY: forwarded from this function's contract; c + NV·LANES ≤ c_out in the first
        // two loops, and the last covers the tail with partial loads and stores.
        unsafe {
            while c + 4 * V::LANES <= g.c_out {
                channels::<V, 4>(g, r, &px, c);
                c += 4 * V::LANES;
            }
            while c + 2 * V::LANES <= g.c_out {
                channels::<V, 2>(g, r, &px, c);
                c += 2 * V::LANES;
            }
            while c < g.c_out {
                channels::<V, 1>(g, r, &px, c);
                c += V::LANES;
            }
        }
    }
}

/// One output pixel's window.
struct Pixel {
    iy0: isize,
    ix0: isize,
    rows: (usize, usize),
    cols: (usize, usize),
    ox: usize,
}

/// `NV` channel vectors of one output pixel, from channel `c0` (the last may be partial).
#[inline(always)]
unsafe fn channels<V: SimdF32, const NV: usize>(g: &DwGeom, r: &DwRow, px: &Pixel, c0: usize) {
    let width = |j: usize| (g.c_out - c0).saturating_sub(j * V::LANES).min(V::LANES);
    // SAFETY: the caller guarantees V's features and the extents; every access below is
    // inside the image (window bounds), the weights (tap < kh·kw, channel < c_out) or the
    // output/residual pixel (channel < c_out), with partial vectors for the tail.
    unsafe {
        let mut acc: [V; NV] = std::array::from_fn(|j| {
            if r.bias.is_null() {
                V::splat(0.0)
            } else {
                load_n(r.bias.add(c0 + j * V::LANES), width(j))
            }
        });
        for kh in px.rows.0..px.rows.1 {
            let iy = (px.iy0 + (kh * g.dilation[0]) as isize) as usize;
            for kw in px.cols.0..px.cols.1 {
                let ix = (px.ix0 + (kw * g.dilation[1]) as isize) as usize;
                let src = r.input.add((iy * g.w + ix) * g.c_in);
                let wt = r.weights.add((kh * g.kernel[1] + kw) * g.c_out + c0);
                for (j, a) in acc.iter_mut().enumerate() {
                    let x = load_input::<V>(src, c0 + j * V::LANES, width(j), g.mult);
                    *a = x.mul_add(load_n(wt.add(j * V::LANES), width(j)), *a);
                }
            }
        }
        let out = r.out.add(px.ox * g.c_out + c0);
        for (j, a) in acc.iter_mut().enumerate() {
            if !r.residual.is_null() {
                *a = a.add(load_n(r.residual.add(px.ox * r.residual_stride + c0 + j * V::LANES), width(j)));
            }
            store_n(g.activation.apply(*a), out.add(j * V::LANES), width(j));
        }
    }
}

/// The input values that output channels `oc..oc+n` read: channel `oc/mult` each.
#[inline(always)]
unsafe fn load_input<V: SimdF32>(src: *const f32, oc: usize, n: usize, mult: usize) -> V {
    // SAFETY: the caller guarantees channels (oc+n-1)/mult < c_in are readable at src.
    unsafe {
        if mult == 1 {
            return load_n(src.add(oc), n);
        }
        let mut lanes = [0.0f32; 64];
        for (l, v) in lanes.iter_mut().enumerate().take(n) {
            *v = *src.add((oc + l) / mult);
        }
        V::load(lanes.as_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn window_bounds_match_brute_force() {
        for start in -9isize..9 {
            for kernel in 1..6 {
                for d in 1..4 {
                    for extent in 0..8 {
                        let valid: Vec<usize> = (0..kernel)
                            .filter(|&k| (0..extent as isize).contains(&(start + (k * d) as isize)))
                            .collect();
                        let (lo, hi) = window(start, kernel, d, extent);
                        assert_eq!((lo..hi).collect::<Vec<_>>(), valid, "start={start} k={kernel} d={d} e={extent}");
                    }
                }
            }
        }
    }
}
