//! Max and average pooling of NHWC images (`MaxPool`, `AveragePool`, 2-D, any window, stride,
//! dilation and padding, ceil mode included): each output pixel reads only the taps of its
//! window that lie inside the input (their ranges computed once per row and column, no test
//! per tap), channels a few vectors at a time, output rows split across threads.

use std::ops::Range;

use crate::conv::{ImageMut, ImageRef};
use crate::error::{KernelError, Result};
use crate::simd::{load_n, store_n, SimdF32};
use crate::threads::{self, SharedMut};
use crate::Parallelism;

/// What a window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// The largest value of the window's taps inside the input (`MaxPool`).
    Max,
    /// The mean of the window's taps (`AveragePool`): over the taps inside the input, or with
    /// `count_include_pad` over the taps inside the padded input (not those past the end pads
    /// that ceil mode adds).
    Average {
        /// ONNX's `count_include_pad`.
        count_include_pad: bool,
    },
}

/// A 2-D pooling window and how it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    /// Window rows and columns.
    pub kernel: [usize; 2],
    /// Strides (rows, columns).
    pub strides: [usize; 2],
    /// Dilations (rows, columns).
    pub dilations: [usize; 2],
    /// Pads: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Max or average.
    pub mode: PoolMode,
}

impl PoolParams {
    /// The mean over a whole `[h, w]` image (ONNX `GlobalAveragePool`).
    pub fn global_average([h, w]: [usize; 2]) -> Self {
        Self {
            kernel: [h, w],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            mode: PoolMode::Average { count_include_pad: false },
        }
    }
}

/// A checked pooling call's geometry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolGeom {
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
    p: PoolParams,
}

/// Output elements below which a pool runs on one thread.
const PARALLEL_MIN_OUTPUTS: usize = 8 * 1024;

/// Vectors of channels one window pass accumulates.
const CHANNEL_VECTORS: usize = 4;

/// Checks a pooling call: positive window, strides and dilations; input and output with the
/// same images and channels; every output window starting inside the input or its top/left
/// pad (what floor and ceil mode produce).
pub(crate) fn check(input: &ImageRef<'_>, output: &ImageMut<'_>, p: &PoolParams) -> Result<PoolGeom> {
    let [n, h, w, c] = input.dims();
    let [on, oh, ow, oc] = output.dims();
    if p.kernel.contains(&0) || p.strides.contains(&0) || p.dilations.contains(&0) {
        return Err(KernelError::Shape(format!(
            "pool window {:?}, strides {:?}, dilations {:?}: all must be positive",
            p.kernel, p.strides, p.dilations
        )));
    }
    if on != n || oc != c {
        return Err(KernelError::Shape(format!("pool of a {n}×{h}×{w}×{c} input into a {on}×{oh}×{ow}×{oc} output")));
    }
    for (axis, (out, len, s, pad)) in
        [(oh, h, p.strides[0], p.pads[0]), (ow, w, p.strides[1], p.pads[1])].into_iter().enumerate()
    {
        if out > 0 && (out - 1) * s >= len + pad {
            return Err(KernelError::Shape(format!(
                "pool output of {out} along spatial axis {axis}: its last window starts past the input ({len} + pad {pad}) at stride {s}"
            )));
        }
    }
    Ok(PoolGeom { h, w, c, oh, ow, p: *p })
}

/// Runs a checked pool: output rows (over images × rows) split across threads when asked.
pub(crate) fn run(
    g: &PoolGeom,
    input: &ImageRef<'_>,
    mut output: ImageMut<'_>,
    par: Parallelism,
    rows_fn: unsafe fn(&PoolGeom, *const f32, *mut f32, Range<usize>),
) {
    let rows = output.dims()[0] * g.oh;
    let (x, y) = (input.data(), SharedMut(output.as_mut_ptr()));
    let parallel = par == Parallelism::Threads && rows * g.ow * g.c >= PARALLEL_MIN_OUTPUTS;
    threads::for_ranges(rows, 4, parallel, |range| {
        // SAFETY: `check` validated the dims of both images; the ranges are disjoint, so each
        // output value is written by one item only; the caller reached this through a kernel
        // set whose instruction set the CPU has.
        unsafe { rows_fn(g, x.as_ptr(), y.get(), range) };
    });
}

/// Bytes of input one part of a global average pool sums: a map is summed in parts of whole
/// pixels of about this size (at least one pixel), then the parts are summed in order. The
/// parts depend on the map alone, never on the threads, so results do not depend on the thread
/// count, and they let two cores share a 7×7 map of a few hundred channels.
const GLOBAL_PART_BYTES: usize = 16 * 1024;

impl PoolGeom {
    /// Whether this pool averages each image's whole map into one pixel (`GlobalAveragePool`,
    /// or an `AveragePool` whose window is the unpadded map).
    pub(crate) fn is_global_average(&self) -> bool {
        let p = &self.p;
        matches!(p.mode, PoolMode::Average { .. })
            && p.kernel == [self.h, self.w]
            && p.dilations == [1, 1]
            && p.pads == [0; 4]
            && (self.oh, self.ow) == (1, 1)
    }
}

/// Runs a checked global average pool ([`PoolGeom::is_global_average`]): each image's map in
/// parts of [`GLOBAL_PART_BYTES`] (split across threads when asked), each part's sum written
/// to a row of partial sums, then those rows summed in order and scaled; a map of one part is
/// summed and scaled straight into the output. `sum_fn` is the set's [`sum_pixels`].
pub(crate) fn run_global(
    g: &PoolGeom,
    input: &ImageRef<'_>,
    mut output: ImageMut<'_>,
    par: Parallelism,
    sum_fn: unsafe fn(*const f32, usize, usize, f32, *mut f32),
) {
    let (n, pixels, c) = (output.dims()[0], g.h * g.w, g.c);
    if c == 0 {
        return;
    }
    let per_part = (GLOBAL_PART_BYTES / (c * std::mem::size_of::<f32>())).clamp(1, pixels.max(1));
    let parts = pixels.div_ceil(per_part);
    let scale = 1.0 / pixels as f32;
    let x = input.data();
    let parallel = par == Parallelism::Threads && n * pixels * c >= PARALLEL_MIN_OUTPUTS && n * parts > 1;
    // One part per image: the part's sum, scaled, is the output; else a row of partial sums.
    let mut partial = vec![0.0f32; if parts > 1 { n * parts * c } else { 0 }];
    let (sums, item_scale) = match parts {
        1 => (SharedMut(output.as_mut_ptr()), scale),
        _ => (SharedMut(partial.as_mut_ptr()), 1.0),
    };
    let item = |i: usize| {
        let (b, part) = (i / parts, i % parts);
        let first = part * per_part;
        let count = per_part.min(pixels - first);
        let src = x.as_ptr().wrapping_add((b * pixels + first) * c);
        // SAFETY: `check` validated both images: pixels `first..first + count` of image b lie
        // inside the input, and row `i` (of the partial sums, or image b's `c` outputs when
        // parts = 1) inside its buffer and is written by this item only; the caller reached
        // this through a kernel set whose instruction set the CPU has.
        unsafe { sum_fn(src, c, count, item_scale, sums.get().wrapping_add(i * c)) };
    };
    match parallel {
        true => threads::for_each(n * parts, item),
        false => (0..n * parts).for_each(item),
    }
    if parts == 1 {
        return;
    }
    for b in 0..n {
        // SAFETY: image b's `parts` rows of partial sums and its `c` outputs; the set's
        // instruction set is the CPU's (as above).
        unsafe { sum_fn(partial.as_ptr().add(b * parts * c), c, parts, scale, output.as_mut_ptr().add(b * c)) };
    }
}

/// Sums `pixels` consecutive pixels of `c` channels from `x` and stores the sums times
/// `scale` at `out` (`c` values): channels four vectors at a time, each block's pixels spread
/// over independent accumulators (pixel `p` into accumulator `p mod U`, added in order at the
/// end), so that the additions do not wait on one another.
///
/// # Safety
/// `x` holds `pixels·c` readable values and `out` `c` writable ones; the CPU supports `V`'s
/// features.
#[inline(always)]
pub(crate) unsafe fn sum_pixels<V: SimdF32>(x: *const f32, c: usize, pixels: usize, scale: f32, out: *mut f32) {
    let group = CHANNEL_VECTORS * V::LANES;
    let mut c0 = 0;
    // SAFETY: forwarded; each call covers channels inside `c0..c`.
    unsafe {
        while c0 + group <= c {
            sum_block::<V, CHANNEL_VECTORS, 2, true>((x, c, pixels), (c0, group), scale, out);
            c0 += group;
        }
        let rest = c - c0;
        match rest.div_ceil(V::LANES) {
            0 => {}
            1 => sum_block::<V, 1, 4, false>((x, c, pixels), (c0, rest), scale, out),
            2 => sum_block::<V, 2, 4, false>((x, c, pixels), (c0, rest), scale, out),
            3 => sum_block::<V, 3, 2, false>((x, c, pixels), (c0, rest), scale, out),
            _ => sum_block::<V, CHANNEL_VECTORS, 2, false>((x, c, pixels), (c0, rest), scale, out),
        }
    }
}

/// Channels `c0..c0+n` (`n ≤ NV·LANES`; `FULL`: `n = NV·LANES`) of [`sum_pixels`], pixels
/// spread over `U` accumulators.
///
/// # Safety
/// As [`sum_pixels`], with `c0 + n ≤ c`.
#[inline(always)]
unsafe fn sum_block<V: SimdF32, const NV: usize, const U: usize, const FULL: bool>(
    (x, c, pixels): (*const f32, usize, usize),
    (c0, n): (usize, usize),
    scale: f32,
    out: *mut f32,
) {
    let width = |j: usize| vector_width::<V, FULL>(n, j);
    // SAFETY: the caller guarantees V's features, `pixels·c` values at `x` and `c0 + n ≤ c`
    // values at `out`; every load reads channels below `c0 + n` of a pixel below `pixels`.
    unsafe {
        let load = |p: usize, j: usize| -> V {
            let at = x.add(p * c + c0 + j * V::LANES);
            if FULL {
                V::load(at)
            } else {
                load_n::<V>(at, width(j))
            }
        };
        let mut acc = [[V::splat(0.0); NV]; U];
        let whole = pixels / U * U;
        for p in (0..whole).step_by(U) {
            for (u, acc) in acc.iter_mut().enumerate() {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = a.add(load(p + u, j));
                }
            }
        }
        for (u, p) in (whole..pixels).enumerate() {
            for (j, a) in acc[u].iter_mut().enumerate() {
                *a = a.add(load(p, j));
            }
        }
        for j in 0..NV {
            let mut sum = acc[0][j];
            for acc in &acc[1..] {
                sum = sum.add(acc[j]);
            }
            store_n(sum.mul(V::splat(scale)), out.add(c0 + j * V::LANES), width(j));
        }
    }
}

/// The taps `[first, last)` of a window axis that read inside the input, and how many read
/// inside the padded input (for `count_include_pad`), for output position `o`.
#[inline(always)]
fn span(
    o: usize,
    len: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
) -> (usize, usize, usize) {
    let start = o * stride; // input position + pad_begin of tap 0
    let first = pad_begin.saturating_sub(start).div_ceil(dilation).min(kernel);
    let last = match (len + pad_begin).checked_sub(start + 1) {
        Some(reach) => (reach / dilation + 1).min(kernel),
        None => 0,
    };
    let padded = (len + pad_begin + pad_end).saturating_sub(start).div_ceil(dilation).min(kernel);
    (first, last.max(first), padded)
}

/// Computes output rows `rows` (indices over images × output rows).
///
/// # Safety
/// `g` came from [`check`] on an input at `x` and an output at `y` that cover `rows`; the
/// CPU supports `V`'s features; nothing else writes those output rows during the call.
#[inline(always)]
pub(crate) unsafe fn rows<V: SimdF32>(g: &PoolGeom, x: *const f32, y: *mut f32, rows: Range<usize>) {
    let p = &g.p;
    let (max, include_pad) = match p.mode {
        PoolMode::Max => (true, false),
        PoolMode::Average { count_include_pad } => (false, count_include_pad),
    };
    let cols: Vec<(usize, usize, usize)> =
        (0..g.ow).map(|ox| span(ox, g.w, p.kernel[1], p.strides[1], p.dilations[1], p.pads[1], p.pads[3])).collect();
    for r in rows {
        let (b, oy) = (r / g.oh, r % g.oh);
        let (ky0, ky1, ky_padded) = span(oy, g.h, p.kernel[0], p.strides[0], p.dilations[0], p.pads[0], p.pads[2]);
        // Input row of tap 0 plus the top pad (taps before ky0 are not read).
        let iy0 = oy * p.strides[0];
        for (ox, &(kx0, kx1, kx_padded)) in cols.iter().enumerate() {
            let taps = (ky1 - ky0) * (kx1 - kx0);
            let divisor = if include_pad { ky_padded * kx_padded } else { taps.max(1) };
            let win = Window {
                // SAFETY (offsets): rows ky0..ky1 and columns kx0..kx1 lie inside the image
                // (`span`), so every tap's pixel is inside input image b.
                x: x.wrapping_add(b * g.h * g.w * g.c),
                rows: (ky0..ky1).map(move |ky| (iy0 + ky * p.dilations[0] - p.pads[0]) * g.w),
                cols: kx0..kx1,
                ix0: ox * p.strides[1],
                dx: p.dilations[1],
                pad_left: p.pads[1],
                c: g.c,
            };
            let out = y.wrapping_add(((b * g.oh + oy) * g.ow + ox) * g.c);
            let scale = 1.0 / divisor as f32;
            // SAFETY: forwarded from this function's contract; `out` holds `c` values.
            unsafe {
                if max {
                    pixel::<V, true>(&win, scale, out);
                } else {
                    pixel::<V, false>(&win, scale, out);
                }
            }
        }
    }
}

/// Every channel of one output pixel: whole groups of `CHANNEL_VECTORS` vectors, then the
/// rest in one pass over the window (fewer than `CHANNEL_VECTORS` vectors' worth, the last
/// vector partial).
///
/// # Safety
/// As [`window`], for all `win.c` channels.
#[inline(always)]
unsafe fn pixel<V: SimdF32, const MAX: bool>(
    win: &Window<impl Iterator<Item = usize> + Clone>,
    scale: f32,
    out: *mut f32,
) {
    let group = CHANNEL_VECTORS * V::LANES;
    let mut c0 = 0;
    // SAFETY: forwarded; each call covers channels inside `c0..win.c`.
    unsafe {
        while c0 + group <= win.c {
            window::<V, CHANNEL_VECTORS, MAX, true>(win, c0, group, scale, out);
            c0 += group;
        }
        let rest = win.c - c0;
        match rest.div_ceil(V::LANES) {
            0 => {}
            1 => window::<V, 1, MAX, false>(win, c0, rest, scale, out),
            2 => window::<V, 2, MAX, false>(win, c0, rest, scale, out),
            3 => window::<V, 3, MAX, false>(win, c0, rest, scale, out),
            _ => window::<V, CHANNEL_VECTORS, MAX, false>(win, c0, rest, scale, out),
        }
    }
}

/// One output pixel's window: the input rows (pixel offsets of their first column) and
/// columns its taps read.
struct Window<I> {
    x: *const f32,
    rows: I,
    cols: Range<usize>,
    ix0: usize,
    dx: usize,
    pad_left: usize,
    c: usize,
}

/// Channels `c0..c0+n` (`n ≤ NV·LANES`; `FULL`: `n = NV·LANES`, whole-vector loads) of one
/// output pixel: the max (`MAX`) or the scaled sum of its taps.
#[inline(always)]
unsafe fn window<V: SimdF32, const NV: usize, const MAX: bool, const FULL: bool>(
    win: &Window<impl Iterator<Item = usize> + Clone>,
    c0: usize,
    n: usize,
    scale: f32,
    out: *mut f32,
) {
    let width = |j: usize| vector_width::<V, FULL>(n, j);
    // SAFETY: the caller guarantees V's features, the taps' pixels inside the input and
    // `c0 + n ≤ c` values at `out`.
    unsafe {
        let mut acc = [V::splat(if MAX { f32::NEG_INFINITY } else { 0.0 }); NV];
        for row in win.rows.clone() {
            for kx in win.cols.clone() {
                let px = win.x.add((row + win.ix0 + kx * win.dx - win.pad_left) * win.c + c0);
                for (j, a) in acc.iter_mut().enumerate() {
                    let v = load_n::<V>(px.add(j * V::LANES), width(j));
                    // `v.max(a)`: on x86 (and portable vectors) a NaN tap yields the running
                    // maximum, as `f32::max` does; NEON's max returns the NaN.
                    *a = if MAX { v.max(*a) } else { a.add(v) };
                }
            }
        }
        for (j, a) in acc.into_iter().enumerate() {
            let v = if MAX { a } else { a.mul(V::splat(scale)) };
            store_n(v, out.add(c0 + j * V::LANES), width(j));
        }
    }
}

/// The values vector `j` of a block of `n` channels holds: a whole vector (`FULL`), or what
/// is left of `n` (0 past the end).
#[inline(always)]
fn vector_width<V: SimdF32, const FULL: bool>(n: usize, j: usize) -> usize {
    if FULL {
        V::LANES
    } else {
        n.saturating_sub(j * V::LANES)
    }
}
