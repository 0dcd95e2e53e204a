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
    // SAFETY: forwarded from this function's contract.
    unsafe {
        if g.mult == 1 {
            row_impl::<V, true>(g, r)
        } else {
            row_impl::<V, false>(g, r)
        }
    }
}

/// Output pixels computed together in the interior: their accumulators are independent FMA
/// chains (hiding FMA latency) and share each weight load.
const PIXELS: usize = 4;
/// Interior group size on unit column stride where the instruction set has 32 vector
/// registers (16 accumulators of two channel vectors, the weights and one column in
/// registers). Measured on Zen 4, AVX-512, against 4-pixel groups (2026-11-28, three rounds
/// each): 3×3 64ch @40 +6 %, 480ch @40 +6 %, 5×5 960ch @20 +18 %, 5×5 120ch @80 −5 %;
/// with column stride 2 it lost 22–37 %, so stride-2 rows keep 4-pixel groups. NEON (32
/// registers) takes the same path; it is checked for correctness under qemu, not timed.
const WIDE_PIXELS: usize = 8;

/// The row's geometry shared by every channel block.
struct RowWindow {
    iy0: isize,
    rows: (usize, usize),
    /// Output columns whose whole kernel window lies inside the input.
    interior: (usize, usize),
}

/// Runs `$body` once per channel block, with `$c` its first channel and the constants `$nv`
/// (vectors: 2, then 1) and `$full` (whole vectors, or the partial tail) set for it.
macro_rules! for_channel_blocks {
    ($g:expr, $lanes:expr, |$c:ident, $nv:ident, $full:ident| $body:block) => {{
        let full_end = $g.c_out / $lanes * $lanes;
        let mut $c = 0;
        while $c + 2 * $lanes <= full_end {
            {
                const $nv: usize = 2;
                const $full: bool = true;
                $body
            }
            $c += 2 * $lanes;
        }
        if $c < full_end {
            {
                const $nv: usize = 1;
                const $full: bool = true;
                $body
            }
            $c += $lanes;
        }
        if $c < $g.c_out {
            const $nv: usize = 1;
            const $full: bool = false;
            $body
        }
    }};
}

/// Runs `$body` for each group of output pixels of the row, with `$px` the group and the
/// constant `$p` its size: [`WIDE_PIXELS`] (when `$wide`) or [`PIXELS`] for interior groups,
/// 1 for the others.
macro_rules! for_pixel_groups {
    ($g:expr, $win:expr, $wide:expr, |$px:ident, $p:ident| $body:block) => {{
        let mut ox = 0;
        while ox < $g.ow {
            let ix0 = (ox * $g.stride[1]) as isize - $g.pad[1] as isize;
            if $wide && ox >= $win.interior.0 && ox + WIDE_PIXELS <= $win.interior.1 {
                let $px = Pixels { iy0: $win.iy0, ix0, rows: $win.rows, cols: (0, $g.kernel[1]), ox };
                const $p: usize = WIDE_PIXELS;
                $body
                ox += WIDE_PIXELS;
            } else if ox >= $win.interior.0 && ox + PIXELS <= $win.interior.1 {
                let $px = Pixels { iy0: $win.iy0, ix0, rows: $win.rows, cols: (0, $g.kernel[1]), ox };
                const $p: usize = PIXELS;
                $body
                ox += PIXELS;
            } else {
                let cols = window(ix0, $g.kernel[1], $g.dilation[1], $g.w);
                let $px = Pixels { iy0: $win.iy0, ix0, rows: $win.rows, cols, ox };
                const $p: usize = 1;
                $body
                ox += 1;
            }
        }
    }};
}

/// [`row`] for channel multiplier 1 (`SAME`: output channel c reads input channel c) or not.
///
/// Pixel groups are the outer loop, channel blocks the inner one: a group's kernel window is
/// loaded into L1 once and serves every channel block. (Channel blocks outer, for windows
/// over 16 KiB, measured slower on every layer tried, 2026-11-28: 120 channels 5×5 @80
/// 13 % against 19 % of peak, 480 channels 3×3 @40 6 % against 13–15 %, 960 channels 5×5
/// @20 13–16 % against 17–23 %.)
#[inline(always)]
unsafe fn row_impl<V: SimdF32, const SAME: bool>(g: &DwGeom, r: &DwRow) {
    let iy0 = (r.oy * g.stride[0]) as isize - g.pad[0] as isize;
    let span = (g.kernel[1] - 1) * g.dilation[1];
    let interior_lo = g.pad[1].div_ceil(g.stride[1]);
    let interior_hi = if g.w + g.pad[1] > span { ((g.w + g.pad[1] - span - 1) / g.stride[1] + 1).min(g.ow) } else { 0 };
    let win =
        RowWindow { iy0, rows: window(iy0, g.kernel[0], g.dilation[0], g.h), interior: (interior_lo, interior_hi) };
    // SAFETY (every `channels` call): forwarded from this function's contract. Interior
    // groups start in the interior and end at or before its end, and other pixels use their
    // clipped window, so every tap is inside the input; full-width channel blocks end at or
    // before c_out rounded down to whole vectors, and the tail uses partial loads and stores.
    let wide = V::REGISTERS >= 32 && g.stride[1] == 1;
    for_pixel_groups!(g, win, wide, |px, P| {
        for_channel_blocks!(g, V::LANES, |c, NV, FULL| {
            // SAFETY: see above.
            unsafe { channels::<V, NV, P, SAME, FULL>(g, r, &px, c) }
        })
    })
}

/// `P` consecutive output pixels sharing one column window (all interior when `P > 1`).
struct Pixels {
    iy0: isize,
    /// Window start of the first pixel; pixel `q` starts `q·stride` further.
    ix0: isize,
    rows: (usize, usize),
    cols: (usize, usize),
    ox: usize,
}

/// `NV` channel vectors of `P` output pixels from channel `c0`: all full (`FULL`), or one
/// partial vector holding the last `c_out − c0` channels.
#[inline(always)]
unsafe fn channels<V: SimdF32, const NV: usize, const P: usize, const SAME: bool, const FULL: bool>(
    g: &DwGeom,
    r: &DwRow,
    px: &Pixels,
    c0: usize,
) {
    let tail = g.c_out - c0; // used only when !FULL (then NV = 1 and tail < LANES)
    let step = g.stride[1] * g.c_in; // between the pixels' inputs
                                     // SAFETY: the caller guarantees V's features and the extents; every access below is
                                     // inside the image (window bounds), the weights (tap < kh·kw, channel < c_out) or the
                                     // output/residual pixels (channel < c_out), with partial vectors for the tail.
    unsafe {
        let load = |p: *const f32| if FULL { V::load(p) } else { load_n(p, tail) };
        let mut acc = [[V::splat(0.0); NV]; P];
        if !r.bias.is_null() {
            let bias: [V; NV] = std::array::from_fn(|j| load(r.bias.add(c0 + j * V::LANES)));
            acc = [bias; P];
        }
        // Interior groups of an undilated row over 3 or 5 columns with column stride 1 or 2
        // load each input column once per kernel row and use it for every pixel whose
        // window holds it.
        let reuse = P > 1 && SAME && g.dilation[1] == 1;
        match (g.kernel[1], g.stride[1]) {
            (3, 1) if reuse => taps_shared::<V, NV, P, FULL, 3, 1>(g, r, px, c0, &mut acc),
            (5, 1) if reuse => taps_shared::<V, NV, P, FULL, 5, 1>(g, r, px, c0, &mut acc),
            (3, 2) if reuse => taps_shared::<V, NV, P, FULL, 3, 2>(g, r, px, c0, &mut acc),
            (5, 2) if reuse => taps_shared::<V, NV, P, FULL, 5, 2>(g, r, px, c0, &mut acc),
            _ => {
                for kh in px.rows.0..px.rows.1 {
                    let iy = (px.iy0 + (kh * g.dilation[0]) as isize) as usize;
                    let src_row = r.input.add(iy * g.w * g.c_in);
                    let wt_row = r.weights.add(kh * g.kernel[1] * g.c_out + c0);
                    for kw in px.cols.0..px.cols.1 {
                        let ix = (px.ix0 + (kw * g.dilation[1]) as isize) as usize;
                        let src = src_row.add(ix * g.c_in);
                        let wt: [V; NV] = std::array::from_fn(|j| load(wt_row.add(kw * g.c_out + j * V::LANES)));
                        for (q, acc) in acc.iter_mut().enumerate() {
                            for (j, a) in acc.iter_mut().enumerate() {
                                let oc = c0 + j * V::LANES;
                                let src = src.add(q * step);
                                let x = if SAME {
                                    load(src.add(oc))
                                } else {
                                    gather::<V>(src, oc, if FULL { V::LANES } else { tail }, g.mult)
                                };
                                *a = x.mul_add(wt[j], *a);
                            }
                        }
                    }
                }
            }
        }
        for (q, acc) in acc.iter_mut().enumerate() {
            let pixel = px.ox + q;
            let out = r.out.add(pixel * g.c_out + c0);
            let residual = r.residual.wrapping_add(pixel * r.residual_stride + c0);
            for (j, a) in acc.iter_mut().enumerate() {
                if !r.residual.is_null() {
                    *a = a.add(load(residual.add(j * V::LANES)));
                }
                let y = g.activation.apply(*a);
                if FULL {
                    y.store(out.add(j * V::LANES));
                } else {
                    store_n(y, out, tail);
                }
            }
        }
    }
}

/// The taps of `P` interior pixels of an undilated row with `KW` kernel columns and column
/// stride `S` (channel multiplier 1): per kernel row, the `KW` weight vectors are loaded once
/// and each of the `(P − 1)·S + KW` input columns once, feeding every pixel whose window
/// holds it (`P·KW` multiply-adds per `(P − 1)·S + 2·KW` loads, against `P·KW + KW` tap by
/// tap).
///
/// # Safety
/// As [`channels`], for an interior group (`px.cols` is the whole `0..KW`).
#[inline(always)]
unsafe fn taps_shared<
    V: SimdF32,
    const NV: usize,
    const P: usize,
    const FULL: bool,
    const KW: usize,
    const S: usize,
>(
    g: &DwGeom,
    r: &DwRow,
    px: &Pixels,
    c0: usize,
    acc: &mut [[V; NV]; P],
) {
    let tail = g.c_out - c0;
    // SAFETY: forwarded from the caller's contract: the group's windows lie inside the input
    // (columns ix0 .. ix0 + (P − 1)·S + KW), taps < kh·KW, channels < c_out (partial tail).
    unsafe {
        let load = |p: *const f32| if FULL { V::load(p) } else { load_n(p, tail) };
        for kh in px.rows.0..px.rows.1 {
            let iy = (px.iy0 + (kh * g.dilation[0]) as isize) as usize;
            let src = r.input.add((iy * g.w) * g.c_in + c0).offset(px.ix0 * g.c_in as isize);
            let wt_row = r.weights.add(kh * KW * g.c_out + c0);
            let wt: [[V; NV]; KW] =
                std::array::from_fn(|t| std::array::from_fn(|j| load(wt_row.add(t * g.c_out + j * V::LANES))));
            for col in 0..(P - 1) * S + KW {
                let x: [V; NV] = std::array::from_fn(|j| load(src.add(col * g.c_in + j * V::LANES)));
                for (q, acc) in acc.iter_mut().enumerate() {
                    if col >= q * S && col - q * S < KW {
                        for (j, a) in acc.iter_mut().enumerate() {
                            *a = x[j].mul_add(wt[col - q * S][j], *a);
                        }
                    }
                }
            }
        }
    }
}

/// The input values that output channels `oc..oc+n` read (channel `oc/mult` each), for a
/// channel multiplier above 1.
#[inline(always)]
unsafe fn gather<V: SimdF32>(src: *const f32, oc: usize, n: usize, mult: usize) -> V {
    let mut lanes = [0.0f32; 64];
    for (l, v) in lanes.iter_mut().enumerate().take(n) {
        // SAFETY: the caller guarantees channels (oc+n-1)/mult < c_in are readable at src.
        *v = unsafe { *src.add((oc + l) / mult) };
    }
    // SAFETY: `lanes` holds 64 ≥ LANES values; the caller guarantees V's features.
    unsafe { V::load(lanes.as_ptr()) }
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
