//! Grouped convolutions whose groups are narrower than the register tile (RegNet's group
//! width 8, ResNeXt's 4 to 32): a direct kernel on an indirection table.
//!
//! The implicit GEMM runs one `pixels × (taps·cg_in) × cg_out` product per group; with
//! `cg_out` below the tile's width most of every tile is padding, and packing A costs as much
//! as the product itself. Here, for each block of `MR` output pixels (consecutive in the
//! flattened `(image, row, column)` order, so blocks run across rows and small maps waste
//! nothing), a table holds every (tap, pixel)'s input pixel (a zero pixel for the padding);
//! then for `GB` groups at a time the register tile `MR pixels × GB groups × NV vectors`
//! accumulates `input[pixel, tap, ci] · w[group, tap, ci, 0..cg_out]`, broadcasting the input
//! straight from the image. The epilogue (bias, residual, activation) is applied before the
//! one store.
//!
//! Whether a convolution runs this way is decided when packing, from its attributes and the
//! set's tile width alone ([`suits`]).

use super::params::{ConvKind, ConvParams};
use crate::epilogue::Activation;
use crate::simd::{load_n, store_n, SimdF32};

/// Output pixels a job should cover (a multiple of every tile's `MR`), so that only the last
/// job ends in a partial block.
pub(crate) const PIXEL_UNIT: usize = 24;

/// Whether convolution `p` runs on the grouped direct kernel of a set whose main tile is `nr`
/// columns wide: a grouped (not depthwise) `Conv` whose groups have fewer output channels
/// than the tile, so the implicit GEMM would pad every tile.
pub(crate) fn suits(p: &ConvParams, nr: usize) -> bool {
    p.kind == ConvKind::Forward && p.groups > 1 && !p.is_depthwise() && p.c_out_per_group() < nr
}

/// Packs ONNX `[c_out, cg_in, kh, kw]` weights as `[group][tap][ci][co]`: one tap's input
/// channel is a contiguous row of the group's output channels.
pub(crate) fn pack_weights(p: &ConvParams, weights: &[f32]) -> Vec<f32> {
    let (taps, cg_in, cg_out) = (p.taps(), p.c_in_per_group(), p.c_out_per_group());
    let mut out = vec![0.0; weights.len()];
    for g in 0..p.groups {
        for o in 0..cg_out {
            for c in 0..cg_in {
                for t in 0..taps {
                    out[((g * taps + t) * cg_in + c) * cg_out + o] = weights[((g * cg_out + o) * cg_in + c) * taps + t];
                }
            }
        }
    }
    out
}

/// A checked convolution's geometry and operands, as the kernel sees them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    /// Input images (NHWC, `[n, h, w, c_in]`).
    pub input: *const f32,
    pub h: usize,
    pub w: usize,
    pub c_in: usize,
    /// `c_in` zeros: the padding's pixel.
    pub zeros: *const f32,
    /// Weights as [`pack_weights`] lays them out.
    pub weights: *const f32,
    pub groups: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Top and left padding.
    pub pad: [usize; 2],
    /// Output images (NHWC, `[n, oh, ow, c_out]`).
    pub out: *mut f32,
    pub oh: usize,
    pub ow: usize,
    pub c_out: usize,
    /// `c_out` values, or null.
    pub bias: *const f32,
    /// The residual image (NHWC, pixels `residual_stride` apart), or null.
    pub residual: *const f32,
    pub residual_stride: usize,
    pub activation: Activation,
}

impl Geom {
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    fn cg_in(&self) -> usize {
        self.c_in / self.groups
    }

    fn cg_out(&self) -> usize {
        self.c_out / self.groups
    }
}

/// Computes output pixels `first..first + pixels` (flattened over images, rows and columns)
/// of every group. `REGS` is the vector registers the kernel may use (an AVX-512 CPU has 32
/// of 256-bit ones too).
///
/// The register tile is `MR pixels × GB groups × NV vectors` accumulators, chosen per group
/// width. LLVM loads all of a step's `MR·GB` broadcasts before its multiply-adds, so with one
/// vector per group the tile needs about twice its accumulators in registers: on AVX2's 16,
/// 8 pixels × 1 group spilled and shuffled registers every step (25 % of the FMA peak on a
/// grouped 3×3 convolution, Zen 3) where 6 × 1 runs clean (45–51 %). The 32-register tiles
/// are the ones measured on Zen 4.
///
/// # Safety
/// `V`'s features are available; `g`'s pointers cover its images, weights, bias and residual;
/// the pixels lie inside the output and nothing else writes them during the call; every
/// group's outputs fit in 4 vectors (`cg_out ≤ 4·LANES`).
#[inline(always)]
pub(crate) unsafe fn run<V: SimdF32, const REGS: usize>(g: &Geom, first: usize, pixels: usize) {
    let nv = g.cg_out().div_ceil(V::LANES);
    // SAFETY: forwarded from this function's contract; nv vectors hold a group's outputs.
    unsafe {
        match (REGS >= 32, nv) {
            (true, 1) => blocks::<V, 6, 4, 1>(g, first, pixels),
            (true, 2) => blocks::<V, 6, 2, 2>(g, first, pixels),
            (true, 3) => blocks::<V, 6, 1, 3>(g, first, pixels),
            (true, _) => blocks::<V, 6, 1, 4>(g, first, pixels),
            (false, 1) => blocks::<V, 6, 1, 1>(g, first, pixels),
            (false, 2) => blocks::<V, 4, 1, 2>(g, first, pixels),
            (false, 3) => blocks::<V, 3, 1, 3>(g, first, pixels),
            (false, _) => blocks::<V, 2, 1, 4>(g, first, pixels),
        }
    }
}

/// [`run`] with tiles of `MR` pixels, `GB` groups (the last ones one at a time) and `NV`
/// vectors per group; a group of exactly `NV` vectors loads and stores whole vectors.
#[inline(always)]
unsafe fn blocks<V: SimdF32, const MR: usize, const GB: usize, const NV: usize>(g: &Geom, first: usize, pixels: usize) {
    let full = g.cg_out() == NV * V::LANES;
    let taps = g.taps();
    let mut table = vec![g.zeros; taps * MR];
    let end = first + pixels;
    let mut p0 = first;
    while p0 < end {
        let mr = (end - p0).min(MR);
        fill_table(g, &mut table, MR, p0, mr);
        let mut g0 = 0;
        while g0 < g.groups {
            let n = if g.groups - g0 >= GB { GB } else { 1 };
            // SAFETY: the table points at input pixels or the zero pixel, each with c_in
            // channels; groups g0..g0+n exist; pixels p0..p0+mr are ours (the caller's
            // contract); NV vectors hold a group's outputs (whole ones when `full`).
            unsafe {
                match (n == GB, full) {
                    (true, true) => tile::<V, MR, GB, NV, true>(g, &table, g0, p0, mr),
                    (true, false) => tile::<V, MR, GB, NV, false>(g, &table, g0, p0, mr),
                    (false, true) => tile::<V, MR, 1, NV, true>(g, &table, g0, p0, mr),
                    (false, false) => tile::<V, MR, 1, NV, false>(g, &table, g0, p0, mr),
                }
            }
            g0 += n;
        }
        p0 += mr;
    }
}

/// Points `table[tap·mr_max + i]` at output pixel `p0 + i`'s input pixel under `tap` (channel
/// 0), or at the zero pixel where the tap falls in the padding or `i ≥ mr`.
fn fill_table(g: &Geom, table: &mut [*const f32], mr_max: usize, p0: usize, mr: usize) {
    let [kh, kw] = g.kernel;
    for i in 0..mr_max {
        let pixel = p0 + i;
        let (img, oy, ox) = (pixel / (g.oh * g.ow), pixel / g.ow % g.oh, pixel % g.ow);
        for ky in 0..kh {
            let iy = (oy * g.stride[0] + ky * g.dilation[0]).wrapping_sub(g.pad[0]);
            for kx in 0..kw {
                let ix = (ox * g.stride[1] + kx * g.dilation[1]).wrapping_sub(g.pad[1]);
                let inside = i < mr && iy < g.h && ix < g.w;
                table[(ky * kw + kx) * mr_max + i] = match inside {
                    true => g.input.wrapping_add(((img * g.h + iy) * g.w + ix) * g.c_in),
                    false => g.zeros,
                };
            }
        }
    }
}

/// Groups `g0..g0 + GB` of pixels `p0..p0 + mr` (`mr ≤ MR`; the table's other rows point at
/// the zero pixel), `NV` vectors per group; `FULL`: the group's channels fill them.
///
/// # Safety
/// As [`blocks`]' call: `V`'s features, a table of `taps·MR` pointers at `c_in` readable
/// values, groups and pixels inside the output, `cg_out ≤ NV·LANES` (`=` when `FULL`).
#[inline(always)]
unsafe fn tile<V: SimdF32, const MR: usize, const GB: usize, const NV: usize, const FULL: bool>(
    g: &Geom,
    table: &[*const f32],
    g0: usize,
    p0: usize,
    mr: usize,
) {
    let (taps, cg_in, cg_out) = (g.taps(), g.cg_in(), g.cg_out());
    let group_w = taps * cg_in * cg_out;
    // Lanes of each vector: full ones, then what is left of the group's channels.
    let lanes: [usize; NV] = match FULL {
        true => [V::LANES; NV],
        false => std::array::from_fn(|v| (cg_out - (v * V::LANES).min(cg_out)).min(V::LANES)),
    };
    // SAFETY: the caller's contract covers every pointer formed below: table entries plus
    // (g0 + gb)·cg_in + ci < c_in; weights of groups g0..g0+GB; output, bias and residual
    // channels (g0 + gb)·cg_out + v·LANES + lanes[v] ≤ c_out of pixels p0..p0+mr.
    unsafe {
        let mut acc = [[[V::splat(0.0); NV]; GB]; MR];
        let w0 = g.weights.add(g0 * group_w);
        for t in 0..taps {
            let px: [*const f32; MR] = std::array::from_fn(|i| table[t * MR + i].add(g0 * cg_in));
            let wt = w0.add(t * cg_in * cg_out);
            for ci in 0..cg_in {
                let w: [[V; NV]; GB] = std::array::from_fn(|gb| {
                    std::array::from_fn(|v| load_n(wt.add(gb * group_w + ci * cg_out + v * V::LANES), lanes[v]))
                });
                for (i, row) in acc.iter_mut().enumerate() {
                    for (gb, cell) in row.iter_mut().enumerate() {
                        let a = V::splat(*px[i].add(gb * cg_in + ci));
                        for (v, x) in cell.iter_mut().enumerate() {
                            *x = a.mul_add(w[gb][v], *x);
                        }
                    }
                }
            }
        }
        for (i, row) in acc.iter().enumerate().take(mr) {
            let pixel = p0 + i;
            for (gb, cell) in row.iter().enumerate() {
                for (v, &x) in cell.iter().enumerate() {
                    let c = (g0 + gb) * cg_out + v * V::LANES;
                    let n = lanes[v];
                    let mut y = x;
                    if !g.bias.is_null() {
                        y = y.add(load_n(g.bias.add(c), n));
                    }
                    if !g.residual.is_null() {
                        y = y.add(load_n(g.residual.add(pixel * g.residual_stride + c), n));
                    }
                    store_n(g.activation.apply(y), g.out.add(pixel * g.c_out + c), n);
                }
            }
        }
    }
}
