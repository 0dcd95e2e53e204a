//! The depthwise convolution kernel: direct, NHWC, vectorised over channels, written once over
//! [`SimdF32`] and compiled per instruction set by [`crate::gemm::microkernel!`].
//!
//! Two kernels, chosen per convolution by [`banded`]:
//!
//! - **Banded** ([`band`]), for undilated 3×3 with channel multiplier 1 and strides (1, 1),
//!   (2, 1), (1, 2) or (2, 2) (most depthwise layers of mobile CNNs; with vectors narrower than
//!   a cache line, only for few channels; at (2, 2) only for inputs that fit the last-level
//!   cache): two output rows at a time, one channel vector at a time, that vector's nine
//!   weights in registers for the whole band and each input column loaded once for every
//!   output pixel of both rows (2 × 4 pixels with 32 registers). Groups touching the padding
//!   read zeros for its taps.
//! - **Row by row** ([`rows`]), for everything else: each output pixel accumulates its kernel
//!   window into up to four channel vectors held in registers; taps that fall into the padding
//!   are skipped (their window bounds are computed per row and per pixel).
//!
//! Both apply bias, residual and activation before the single store, and sum every pixel's
//! taps in the same order (kernel row, then column).

use std::ops::Range;

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
    /// Whether the input is larger than half the last-level cache (it streams from memory):
    /// then the row kernel prefetches ([`prefetch_ahead`]) and [`banded`] leaves stride (2, 2)
    /// to it.
    pub streamed: bool,
}

impl DwGeom {
    /// The geometry of depthwise convolution `p` on `[h, w]` input maps with `ow` output
    /// columns, applying `activation` last.
    pub(crate) fn new(
        p: &crate::conv::ConvParams,
        [h, w]: [usize; 2],
        ow: usize,
        activation: Activation,
        streamed: bool,
    ) -> Self {
        DwGeom {
            h,
            w,
            c_in: p.c_in,
            mult: p.c_out_per_group(),
            c_out: p.c_out,
            kernel: p.kernel,
            stride: p.strides,
            dilation: p.dilations,
            pad: [p.pads[0], p.pads[1]],
            ow,
            activation,
            streamed,
        }
    }
}

/// Pointers for a band of consecutive output rows of one image.
#[derive(Clone, Copy)]
pub(crate) struct DwRow {
    /// The image's first input value.
    pub input: *const f32,
    /// Packed weights: `kh·kw` taps of `c_out` values.
    pub weights: *const f32,
    /// The band's first output value (`rows·ow` pixels of `c_out`).
    pub out: *mut f32,
    /// `c_out` bias values, or null.
    pub bias: *const f32,
    /// The band's first residual value, or null.
    pub residual: *const f32,
    /// Distance between residual pixels.
    pub residual_stride: usize,
    /// The band's first output row.
    pub oy: usize,
    /// Output rows in the band (at most [`BAND`]).
    pub rows: usize,
}

/// Output rows the driver hands to [`rows`] at a time.
pub(crate) const BAND: usize = 2;

impl DwRow {
    /// The band's `j`-th row alone.
    fn row(&self, j: usize, g: &DwGeom) -> DwRow {
        self.rows_from(j, 1, g)
    }

    /// The band's rows `j..j + n`.
    fn rows_from(&self, j: usize, n: usize, g: &DwGeom) -> DwRow {
        let pixel = j * g.ow;
        DwRow {
            out: self.out.wrapping_add(pixel * g.c_out),
            residual: self.residual.wrapping_add(pixel * self.residual_stride),
            oy: self.oy + j,
            rows: n,
            ..*self
        }
    }
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

/// The strides of a convolution that [`band`] computes on vectors `V` (undilated 3×3, channel
/// multiplier 1, strides (1, 1), (2, 1), (1, 2), or (2, 2) when the input is not
/// [`DwGeom::streamed`]), or `None` for [`rows`].
///
/// With column stride 2 the banded groups take 2 pixels per row (4 pixels and 9 columns
/// spilled their column addresses); so at strides (1, 2) they beat the row kernel on every
/// channel count measured. At (2, 2) they win on inputs that L3 holds and lose on inputs from
/// memory, where the row kernel prefetches (figures:
/// `docs/perf-log/2026-11-28-design-figures.md`).
/// Vectors narrower than a cache line band only pixels of at most four vectors: each vector's
/// pass over the band touches part of every pixel's lines, so with many vectors per pixel the
/// passes fetch the same lines from L2 again (AVX2, 72 channels @160: 34 → 24 % of peak; 16
/// channels @320: 34 → 46 %, 32 channels equal).
pub(crate) fn banded<V: SimdF32>(g: &DwGeom) -> Option<[usize; 2]> {
    let regular = g.mult == 1 && g.kernel == [3, 3] && g.dilation == [1, 1];
    let vectors_fit = V::LANES * 4 >= 64 || g.c_out <= 4 * V::LANES;
    let strides = match g.stride {
        [1, 1] | [2, 1] | [1, 2] => true,
        [2, 2] => !g.streamed,
        _ => false,
    };
    (regular && vectors_fit && strides).then_some(g.stride)
}

/// Computes the band of `r.rows` output rows, row by row.
///
/// # Safety
/// The CPU supports `V`'s features; the pointers cover the extents [`DwRow`] describes for the
/// geometry `g` (input: the image's `h·w·c_in` values; output and residual: `rows·ow` pixels).
#[inline(always)]
pub(crate) unsafe fn rows<V: SimdF32>(g: &DwGeom, r: &DwRow) {
    for j in 0..r.rows {
        // SAFETY: forwarded from this function's contract; each row alone covers a subset of
        // the band.
        unsafe { row::<V>(g, &r.row(j, g)) }
    }
}

/// Computes the single output row `r`.
///
/// # Safety
/// As [`rows`], with `r.rows == 1`.
#[inline(always)]
unsafe fn row<V: SimdF32>(g: &DwGeom, r: &DwRow) {
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
/// registers). Faster than 4-pixel groups on all but one layer measured, slower on every one
/// with column stride 2, so stride-2 rows keep 4-pixel groups (figures:
/// `docs/perf-log/2026-11-28-design-figures.md`). NEON (32
/// registers) takes the same path; it is checked for correctness under qemu, not timed.
const WIDE_PIXELS: usize = 8;

/// Output columns `lo..hi` whose whole kernel window lies inside the input columns.
fn interior_columns(g: &DwGeom) -> (usize, usize) {
    let span = (g.kernel[1] - 1) * g.dilation[1];
    let lo = g.pad[1].div_ceil(g.stride[1]);
    let hi = if g.w + g.pad[1] > span { ((g.w + g.pad[1] - span - 1) / g.stride[1] + 1).min(g.ow) } else { 0 };
    (lo, hi)
}

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
/// over 16 KiB, measured slower on every layer tried: `docs/perf-log/2026-11-28-design-figures.md`.)
#[inline(always)]
unsafe fn row_impl<V: SimdF32, const SAME: bool>(g: &DwGeom, r: &DwRow) {
    let iy0 = (r.oy * g.stride[0]) as isize - g.pad[0] as isize;
    let win = RowWindow { iy0, rows: window(iy0, g.kernel[0], g.dilation[0], g.h), interior: interior_columns(g) };
    // SAFETY (every `channels` call): forwarded from this function's contract. Interior
    // groups start in the interior and end at or before its end, and other pixels use their
    // clipped window, so every tap is inside the input; full-width channel blocks end at or
    // before c_out rounded down to whole vectors, and the tail uses partial loads and stores.
    let wide = V::REGISTERS >= 32 && g.stride[1] == 1;
    // The rows this output row is the first to read (the last `stride` rows of its window);
    // the others were read for the row above.
    let fresh = win.rows.1 - g.stride[0].min(win.rows.1 - win.rows.0)..win.rows.1;
    for_pixel_groups!(g, win, wide, |px, P| {
        if g.streamed {
            // SAFETY: prefetches never fault.
            unsafe { prefetch_ahead::<V>(g, r, win.iy0, fresh.clone(), px.ox + P, P) };
        }
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
        let load = |p: *const f32| load_vector::<V, FULL>(p, tail);
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
        for (q, acc) in acc.iter().enumerate() {
            for (j, a) in acc.iter().enumerate() {
                finish::<V, FULL, { Activation::RUNTIME }>(g, r, *a, px.ox + q, c0 + j * V::LANES);
            }
        }
    }
}

/// How far ahead of the pixels being computed the row kernel prefetches its input (in input
/// columns) and output (in output pixels). Distances from 8 to 32 columns helped alike.
const PREFETCH_AHEAD: usize = 16;

/// Hints L2 to fetch what the row kernel reads and writes [`PREFETCH_AHEAD`] past the group of
/// `p` pixels from output column `ox`: the input rows `fresh` of the row's window (those the
/// row above did not read), every channel, and the output pixels.
///
/// The row kernel reads a few pixels at a time from several rows of tens of KiB, a pattern
/// the hardware prefetchers follow poorly when the input comes from memory: the driver turns
/// this on ([`DwGeom::streamed`]) for inputs over half the last-level cache: there it doubled
/// the speed, on inputs that L3 holds the results were mixed. Prefetching the input into L1
/// instead gained less, prefetching the output for writing (`prefetchw`) nothing, and the same
/// hints slowed the banded kernel, so that one does not prefetch (figures:
/// `docs/perf-log/2026-11-28-design-figures.md`).
///
/// # Safety
/// `V`'s features are available (prefetches never fault).
#[inline(always)]
unsafe fn prefetch_ahead<V: SimdF32>(g: &DwGeom, r: &DwRow, iy0: isize, fresh: Range<usize>, ox: usize, p: usize) {
    // SAFETY: prefetches never fault; the caller guarantees V's features.
    unsafe {
        let x = ox * g.stride[1] + PREFETCH_AHEAD;
        for kh in fresh {
            let iy = iy0 + (kh * g.dilation[0]) as isize;
            if (0..g.h as isize).contains(&iy) {
                let row = r.input.wrapping_add(iy as usize * g.w * g.c_in);
                prefetch_span::<V>(row, x.min(g.w) * g.c_in, (x + p * g.stride[1]).min(g.w) * g.c_in);
            }
        }
        let o = ox + PREFETCH_AHEAD;
        prefetch_span::<V>(r.out, o.min(g.ow) * g.c_out, (o + p).min(g.ow) * g.c_out);
    }
}

/// Hints L2 to fetch the lines holding values `from..to` after `base`.
///
/// # Safety
/// `V`'s features are available (prefetches never fault).
#[inline(always)]
unsafe fn prefetch_span<V: SimdF32>(base: *const f32, from: usize, to: usize) {
    const LINE: usize = 64 / std::mem::size_of::<f32>();
    for i in (from..to).step_by(LINE) {
        // SAFETY: prefetches never fault; the caller guarantees V's features.
        unsafe { V::prefetch_l2(base.wrapping_add(i)) };
    }
}

/// A whole vector at `p` (`FULL`), or its first `tail` values (`0 < tail < LANES`) and zeros.
///
/// # Safety
/// `V`'s features are available; the values read are readable.
#[inline(always)]
unsafe fn load_vector<V: SimdF32, const FULL: bool>(p: *const f32, tail: usize) -> V {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        if FULL {
            V::load(p)
        } else {
            load_n(p, tail)
        }
    }
}

/// Adds the residual to the accumulator `a` of output pixel `pixel` (counted from the row's
/// first), channels from `c`, applies the activation (of kind `ACT`, see
/// [`Activation::apply_as`]) and stores it: a whole vector (`FULL`) or the last `c_out − c`
/// channels.
///
/// # Safety
/// As [`channels`]: the pixel and channels lie inside the output (and residual) `r` covers.
#[inline(always)]
unsafe fn finish<V: SimdF32, const FULL: bool, const ACT: u8>(g: &DwGeom, r: &DwRow, mut a: V, pixel: usize, c: usize) {
    let tail = g.c_out - c;
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        if !r.residual.is_null() {
            let residual = r.residual.add(pixel * r.residual_stride + c);
            a = a.add(load_vector::<V, FULL>(residual, tail));
        }
        let y = g.activation.apply_as::<V, ACT>(a);
        let out = r.out.add(pixel * g.c_out + c);
        if FULL {
            y.store(out);
        } else {
            store_n(y, out, tail);
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
        let load = |p: *const f32| load_vector::<V, FULL>(p, tail);
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

/// A band of up to [`BAND`] rows of an undilated 3×3 depthwise convolution (channel
/// multiplier 1) with row stride `SH` and column stride `SW`, channel vector by channel vector:
/// the vector's nine weights stay in registers over the whole band, and each input column is
/// loaded once for every output pixel of both rows whose window holds it. Groups whose windows
/// touch the padding read zeros for those taps, and store only the pixels inside the band.
///
/// # Safety
/// As [`rows`], for a convolution [`banded`] accepts with strides `[SH, SW]`.
#[inline(always)]
pub(crate) unsafe fn band<V: SimdF32, const SH: usize, const SW: usize>(g: &DwGeom, r: &DwRow) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        // Pixels per band row in a group: with 32 registers and column stride 1, 2 rows × 4
        // pixels of accumulators, 9 weights and the loaded column (measured on Zen 4 against
        // 2 × 6 and 2 × 8: equal or faster on 16, 64 and 480 channels); otherwise 2 × 2 (at
        // column stride 2, 3 pixels per row ran 11–36 % slower than 2 on three of four layers).
        // (A constant condition: only the branch taken is compiled for each `V` and `SW`.)
        if const { V::REGISTERS >= 32 && SW == 1 } {
            band_vectors::<V, 4, SH, SW>(g, r)
        } else {
            band_vectors::<V, 2, SH, SW>(g, r)
        }
    }
}

/// [`band`] with `P` pixels per row in a group: every channel vector (the tail partial), one
/// instance per activation kind (a run-time dispatch in the group loop would keep every kind's
/// constants in registers and spill the weights).
///
/// # Safety
/// As [`band`].
#[inline(always)]
unsafe fn band_vectors<V: SimdF32, const P: usize, const SH: usize, const SW: usize>(g: &DwGeom, r: &DwRow) {
    let full_end = g.c_out / V::LANES * V::LANES;
    // SAFETY: forwarded from the caller's contract; channel vectors end inside c_out.
    unsafe {
        macro_rules! channel_vectors {
            ($act:literal) => {{
                for c0 in (0..full_end).step_by(V::LANES) {
                    band_vector::<V, P, SH, SW, true, $act>(g, r, c0);
                }
                if full_end < g.c_out {
                    band_vector::<V, P, SH, SW, false, $act>(g, r, full_end);
                }
            }};
        }
        // (Constant conditions: only the branch taken is compiled for each `V`.)
        if const { !V::PER_ACTIVATION } {
            channel_vectors!(255)
        } else {
            match g.activation.kind() {
                0 => channel_vectors!(0),
                1 => channel_vectors!(1),
                2 => channel_vectors!(2),
                3 => channel_vectors!(3),
                4 => channel_vectors!(4),
                5 => channel_vectors!(5),
                _ => channel_vectors!(255),
            }
        }
    }
}

/// One channel vector from `c0` (whole, or the partial tail when not `FULL`) of the whole
/// band, in groups of `P` pixels per row; `ACT` is the activation's kind.
///
/// # Safety
/// As [`band`]; `c0` inside `c_out`.
#[inline(always)]
unsafe fn band_vector<V: SimdF32, const P: usize, const SH: usize, const SW: usize, const FULL: bool, const ACT: u8>(
    g: &DwGeom,
    band: &DwRow,
    c0: usize,
) {
    let tail = g.c_out - c0;
    // SAFETY: forwarded from the caller's contract; `c0` lies inside c_out.
    unsafe {
        let load = |p: *const f32| load_vector::<V, FULL>(p, tail);
        let wt: [V; 9] = std::array::from_fn(|t| load(band.weights.add(t * g.c_out + c0)));
        let bias = if band.bias.is_null() { V::splat(0.0) } else { load(band.bias.add(c0)) };
        if SW == 2 {
            // Column stride 2 takes the band's rows a pair at a time through a copy of their
            // pointers. The band is one pair, but this form compiles to faster code, while at
            // column stride 1 it was slower (figures: docs/perf-log/2026-11-28-design-figures.md).
            for pair in (0..band.rows).step_by(BAND) {
                let r = band.rows_from(pair, BAND.min(band.rows - pair), g);
                band_rows::<V, P, SH, SW, FULL, ACT>(g, &r, wt, bias, c0);
            }
        } else {
            band_rows::<V, P, SH, SW, FULL, ACT>(g, band, wt, bias, c0);
        }
    }
}

/// [`band_vector`]'s groups for the rows of `r` (at most [`BAND`]), with `wt` and `bias` the
/// vector's weights and bias.
///
/// # Safety
/// As [`band_vector`].
#[inline(always)]
unsafe fn band_rows<V: SimdF32, const P: usize, const SH: usize, const SW: usize, const FULL: bool, const ACT: u8>(
    g: &DwGeom,
    r: &DwRow,
    wt: [V; 9],
    bias: V,
    c0: usize,
) {
    let (lo, hi) = interior_columns(g);
    let iy0 = (r.oy * SH) as isize - g.pad[0] as isize;
    let inside = r.rows == BAND && iy0 >= 0 && iy0 as usize + (BAND - 1) * SH + 3 <= g.h;
    let args = (wt, bias, iy0, c0);
    for ox in (0..g.ow).step_by(P) {
        // SAFETY: forwarded from the caller's contract; interior groups of a band inside the
        // input rows read only inside the input, and the others check every tap and pixel.
        unsafe {
            if inside && ox >= lo && ox + P <= hi {
                band_group::<V, P, SH, SW, FULL, ACT>(g, r, args, ox, false);
            } else {
                band_group::<V, P, SH, SW, FULL, ACT>(g, r, args, ox, true);
            }
        }
    }
}

/// Zeros that [`band_group`] reads for taps in the padding (as many as any vector's lanes).
static ZEROS: [f32; 64] = [0.0; 64];

/// The `BAND × P` output pixels from column `ox` of [`band_vector`]'s vector, with `args` its
/// weights, bias, first input row and first channel. `edge` groups read zeros for the taps
/// outside the input (the same instructions as inside, with their addresses switched to
/// [`ZEROS`]) and store only the pixels inside the band; the others have none of either.
///
/// # Safety
/// As [`band_vector`]; without `edge`, the group's windows lie inside the input and its
/// pixels inside the band. Always inlined with a constant `edge`, so each kind of group
/// compiles without the other's checks.
#[inline(always)]
unsafe fn band_group<V: SimdF32, const P: usize, const SH: usize, const SW: usize, const FULL: bool, const ACT: u8>(
    g: &DwGeom,
    r: &DwRow,
    (wt, bias, iy0, c0): ([V; 9], V, isize, usize),
    ox: usize,
    edge: bool,
) {
    let tail = g.c_out - c0;
    let ix0 = (ox * SW) as isize - g.pad[1] as isize;
    let zeros = ZEROS.as_ptr();
    // SAFETY: forwarded from the caller's contract; every load is of an input position inside
    // the image (checked here for edge groups, which read ZEROS elsewhere), every store of a
    // pixel inside the band.
    unsafe {
        let load = |p: *const f32| load_vector::<V, FULL>(p, tail);
        let mut acc = [[bias; P]; BAND];
        for rr in 0..(BAND - 1) * SH + 3 {
            let iy = iy0 + rr as isize;
            let src = r.input.wrapping_offset((iy * g.w as isize + ix0) * g.c_in as isize).wrapping_add(c0);
            let row_ok = !edge || (0..g.h as isize).contains(&iy);
            for col in 0..(P - 1) * SW + 3 {
                let ok = row_ok && (!edge || (0..g.w as isize).contains(&(ix0 + col as isize)));
                let x = load(if ok { src.wrapping_add(col * g.c_in) } else { zeros });
                for (j, acc) in acc.iter_mut().enumerate() {
                    if rr >= j * SH && rr - j * SH < 3 {
                        for (q, a) in acc.iter_mut().enumerate() {
                            if col >= q * SW && col - q * SW < 3 {
                                *a = x.mul_add(wt[(rr - j * SH) * 3 + col - q * SW], *a);
                            }
                        }
                    }
                }
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            for (q, a) in acc.iter().enumerate() {
                if !edge || (j < r.rows && ox + q < g.ow) {
                    finish::<V, FULL, ACT>(g, r, *a, j * g.ow + ox + q, c0);
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
