//! Winograd F(4×4, 3×3): 3×3 stride-1 convolutions with 36 multiplies per 16 outputs and
//! input channel instead of 144.
//!
//! Each 4×4 block of output pixels (a *tile*) comes from the 6×6 input patch under it: the
//! patch is transformed (`V = Bᵀ·d·B`, per channel), multiplied point by point with the
//! transformed weights (`U = G·g·Gᵀ`, computed once in float64 when packing) and summed over
//! input channels, then transformed back (`Y = Aᵀ·M·A`). For each of the 36 points ξ of the
//! transform domain the sum over channels is a GEMM, `M_ξ (tiles × c_out) = V_ξ (tiles ×
//! c_in) · U_ξ (c_in × c_out)`, which runs on the set's register tile; the transforms are
//! written once over [`SimdF32`], vectorised along channels (NHWC keeps them contiguous).
//! Bias, residual and activation are applied in the inverse transform, before the one store.
//!
//! The matrices are Lavin and Gray's (interpolation points 0, ±1, ±2, ∞), computed with shared
//! sums. The transforms amplify rounding errors: [`ERROR_GROWTH`] states by how much against
//! the direct sum, and the parity suites test it.
//!
//! Whether a convolution runs this way is decided when packing, from its attributes and its
//! input size alone ([`suits`]), so packages do not depend on the host.

use super::params::{ConvKind, ConvParams};
use crate::epilogue::Activation;
use crate::mat::MatRef;
use crate::pack::PackedB;
use crate::simd::{load_n, store_n, SimdF32};

/// Output tile side.
pub(crate) const TILE: usize = 4;
/// Transform-domain side (`TILE + 3 − 1`).
pub(crate) const ALPHA: usize = 6;
/// Points of the transform domain: one GEMM each.
pub(crate) const POINTS: usize = ALPHA * ALPHA;

/// Bound on the error of a Winograd output against float64, as a multiple of
/// `(k+2)·eps·Σ_c P_c·W_c,o`, where `P_c` is the largest |input| of channel `c` in the tile's
/// 6×6 patch and `W_c,o` the sum of |weights| from `c` to output channel `o` (the direct sum's
/// bound has `Σ|x·w|` there instead). First-order worst case: the forward transform's rows
/// have absolute sums up to 10 (so |V| ≤ 100·P, with a few roundings), `G`'s rows up to 1 (so
/// |U| ≤ W), the channel sum adds `c_in ≈ k/9` roundings, and the inverse transform's rows
/// have absolute sums up to 19 (361 for both axes): 100 · 361 · (c_in + 17)/(k + 2) ≤ 8192 for
/// `c_in ≥ 16`. Random operands stay far below it (the parity suite reports how far, and
/// holds the transforms to a few times the direct sum's error).
pub const ERROR_GROWTH: f64 = 8192.0;

/// Fewest input and output channels a convolution needs for the transforms to pay.
const MIN_CHANNELS: usize = 16;
/// Fewest output tiles per image (a 13×13 map). The 36 transformed weight matrices (4× the
/// direct weights) are read once per call, from memory in a whole model: with fewer tiles than
/// this, streaming them takes longer than the multiply-adds they save (ResNet-18's 512-channel
/// layers at 7×7, 4 tiles: 0.75× the direct GEMM's speed even with the weights in L3).
const MIN_TILES: usize = 16;
/// ...unless the weights are small: up to this many `c_in·c_out` (590 KB transformed),
/// [`MIN_TILES_SMALL`] tiles (a 9×9 map) suffice.
const SMALL_WEIGHTS: usize = 64 * 64;
/// See [`SMALL_WEIGHTS`].
const MIN_TILES_SMALL: usize = 9;

/// `G` (6×3): the weight transform.
const G: [[f64; 3]; ALPHA] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Whether convolution `p` on `input_hw` images runs as Winograd F(4×4, 3×3): a dense 3×3
/// `Conv` with unit strides and dilations, padding at most 2, enough channels, and a map of
/// enough tiles for the size of its weights.
pub(crate) fn suits(p: &ConvParams, input_hw: [usize; 2]) -> bool {
    let Ok([oh, ow]) = p.output_hw(input_hw[0], input_hw[1]) else { return false };
    let tiles = oh.div_ceil(TILE) * ow.div_ceil(TILE);
    let min_tiles = if p.c_in * p.c_out <= SMALL_WEIGHTS { MIN_TILES_SMALL } else { MIN_TILES };
    attributes_suit(p) && tiles >= min_tiles
}

/// Whether `p`'s attributes allow Winograd F(4×4, 3×3) on some input (see [`suits`]).
pub(crate) fn attributes_suit(p: &ConvParams) -> bool {
    p.kind == ConvKind::Forward
        && p.groups == 1
        && p.kernel == [3, 3]
        && p.strides == [1, 1]
        && p.dilations == [1, 1]
        && p.pads.iter().all(|&x| x <= 2)
        && p.c_in >= MIN_CHANNELS
        && p.c_out >= MIN_CHANNELS
}

/// Packs the transformed weights of a 3×3 `Conv` (`[c_out, c_in, 3, 3]`): one `c_in × c_out`
/// matrix per transform point, each at panel width `nr`.
pub(crate) fn pack_weights(kernel: &str, nr: usize, p: &ConvParams, weights: &[f32]) -> Vec<PackedB> {
    let (c_in, c_out) = (p.c_in, p.c_out);
    let mut u = vec![0.0f32; POINTS * c_in * c_out];
    for o in 0..c_out {
        for c in 0..c_in {
            let g = &weights[(o * c_in + c) * 9..][..9];
            // G·g (6×3), then (G·g)·Gᵀ (6×6), in float64.
            let mut gg = [[0.0f64; 3]; ALPHA];
            for (i, row) in gg.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|k| G[i][k] * g[k * 3 + j] as f64).sum();
                }
            }
            for i in 0..ALPHA {
                for l in 0..ALPHA {
                    let v: f64 = (0..3).map(|j| gg[i][j] * G[l][j]).sum();
                    u[((i * ALPHA + l) * c_in + c) * c_out + o] = v as f32;
                }
            }
        }
    }
    u.chunks_exact(c_in * c_out)
        .map(|m| PackedB::pack(kernel, nr, &MatRef::row_major(m, c_in, c_out).expect("sized above")))
        .collect()
}

/// A checked convolution's geometry, as the transforms see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub h: usize,
    pub w: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub oh: usize,
    pub ow: usize,
    /// Top and left padding.
    pub pad: [usize; 2],
}

impl Geom {
    /// Tiles across one output row.
    pub fn tiles_w(&self) -> usize {
        self.ow.div_ceil(TILE)
    }

    /// Tiles per image.
    pub fn tiles(&self) -> usize {
        self.oh.div_ceil(TILE) * self.tiles_w()
    }

    /// `(image, first output row, first output column)` of tile `t`.
    fn origin(&self, t: usize) -> (usize, usize, usize) {
        let (img, r) = (t / self.tiles(), t % self.tiles());
        (img, r / self.tiles_w() * TILE, r % self.tiles_w() * TILE)
    }
}

/// One stage of a block of tiles `first..first + rows`. The transform domain is laid out as
/// `POINTS` matrices, point ξ's at `ξ·point_stride`, one row per tile.
pub(crate) enum Stage {
    /// Input images (NHWC, every image) → `v` (rows of `c_in`).
    Input { input: *const f32, v: *mut f32, point_stride: usize },
    /// `m` (rows of `c_out`) → the output images, with the epilogue.
    Output {
        m: *const f32,
        point_stride: usize,
        out: *mut f32,
        /// `c_out` values, or null.
        bias: *const f32,
        /// The residual image (NHWC, pixels `residual_stride` apart), or null.
        residual: *const f32,
        residual_stride: usize,
        activation: Activation,
    },
}

/// Runs `stage` for tiles `first..first + rows` of geometry `g`.
///
/// # Safety
/// `V`'s features are available; the pointers cover `g`'s images and `rows` rows of every
/// transform point, and nothing else writes what this stage writes during the call.
#[inline(always)]
pub(crate) unsafe fn run<V: SimdF32>(g: &Geom, stage: &Stage, first: usize, rows: usize) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match *stage {
            Stage::Input { input, v, point_stride } => {
                for row in 0..rows {
                    input_tile::<V>(g, input, v.add(row * g.c_in), point_stride, first + row);
                }
            }
            Stage::Output { .. } => {
                for row in 0..rows {
                    output_tile::<V>(g, stage, row, first + row);
                }
            }
        }
    }
}

/// `Bᵀ·d` along one axis (d: 6 values → 6).
#[inline(always)]
unsafe fn forward_1d<V: SimdF32>(d: [V; ALPHA]) -> [V; ALPHA] {
    // SAFETY: the caller guarantees V's features.
    unsafe {
        let s = V::splat;
        let neg = |x: V| x.mul(s(-1.0));
        // v0 = 4d0 − 5d2 + d4; v5 = 4d1 − 5d3 + d5
        let v0 = d[0].mul_add(s(4.0), d[2].mul_add(s(-5.0), d[4]));
        let v5 = d[1].mul_add(s(4.0), d[3].mul_add(s(-5.0), d[5]));
        // v1,2 = (d4 ± ... ): v1 = (d3 + d4) − 4(d1 + d2), v2 = (d4 − d3) + 4(d1 − d2)
        let v1 = d[1].add(d[2]).mul_add(s(-4.0), d[3].add(d[4]));
        let v2 = d[1].add(neg(d[2])).mul_add(s(4.0), d[4].add(neg(d[3])));
        // v3,4 = (d4 − d2) ± 2(d3 − d1)
        let e = d[4].add(neg(d[2]));
        let f = d[3].add(neg(d[1]));
        let v3 = f.mul_add(s(2.0), e);
        let v4 = f.mul_add(s(-2.0), e);
        [v0, v1, v2, v3, v4, v5]
    }
}

/// `Aᵀ·m` along one axis (m: 6 values → 4).
#[inline(always)]
unsafe fn inverse_1d<V: SimdF32>(m: [V; ALPHA]) -> [V; TILE] {
    // SAFETY: the caller guarantees V's features.
    unsafe {
        let s = V::splat;
        let a = m[1].add(m[2]);
        let b = m[1].add(m[2].mul(s(-1.0)));
        let c = m[3].add(m[4]);
        let d = m[3].add(m[4].mul(s(-1.0)));
        [m[0].add(a).add(c), d.mul_add(s(2.0), b), c.mul_add(s(4.0), a), d.mul_add(s(8.0), b).add(m[5])]
    }
}

/// Transforms tile `t`'s input patch into row `v` of every point.
#[inline(always)]
unsafe fn input_tile<V: SimdF32>(g: &Geom, input: *const f32, v: *mut f32, point_stride: usize, t: usize) {
    let (img, oy, ox) = g.origin(t);
    // The patch's rows and columns inside the image: the others are padding (zeros).
    let (y0, x0) = (oy as isize - g.pad[0] as isize, ox as isize - g.pad[1] as isize);
    let inside = |start: isize, len: usize| {
        let lo = (-start).clamp(0, ALPHA as isize) as usize;
        let hi = (len as isize - start).clamp(lo as isize, ALPHA as isize) as usize;
        lo..hi
    };
    let (rows, cols) = (inside(y0, g.h), inside(x0, g.w));
    let image = input.wrapping_add(img * g.h * g.w * g.c_in);
    let mut c = 0;
    while c < g.c_in {
        let n = (g.c_in - c).min(V::LANES);
        // SAFETY: the loads read pixels inside the image (rows, cols) and n ≤ LANES channels
        // from c; the stores write row t's n channels from c of every point (the caller's
        // contract covers them).
        unsafe {
            // Rows transformed along x, kept by column: cols_t[l][i] = (d·B)[i][l].
            let mut cols_t = [[V::splat(0.0); ALPHA]; ALPHA];
            for i in rows.clone() {
                let mut d = [V::splat(0.0); ALPHA];
                let line = image.add((((y0 + i as isize) as usize) * g.w) * g.c_in + c);
                for j in cols.clone() {
                    d[j] = load_n(line.add(((x0 + j as isize) as usize) * g.c_in), n);
                }
                for (l, x) in forward_1d(d).into_iter().enumerate() {
                    cols_t[l][i] = x;
                }
            }
            for (l, col) in cols_t.iter().enumerate() {
                for (k, x) in forward_1d(*col).into_iter().enumerate() {
                    store_n(x, v.add((k * ALPHA + l) * point_stride + c), n);
                }
            }
        }
        c += V::LANES;
    }
}

/// Transforms row `row` of every point back into tile `t`'s outputs, with the epilogue.
#[inline(always)]
unsafe fn output_tile<V: SimdF32>(g: &Geom, stage: &Stage, row: usize, t: usize) {
    let Stage::Output { m, point_stride, out, bias, residual, residual_stride, activation } = *stage else {
        return;
    };
    let (img, oy, ox) = g.origin(t);
    let (rows, cols) = ((g.oh - oy).min(TILE), (g.ow - ox).min(TILE));
    let pixel0 = (img * g.oh + oy) * g.ow + ox;
    let m = m.wrapping_add(row * g.c_out);
    let mut c = 0;
    while c < g.c_out {
        let n = (g.c_out - c).min(V::LANES);
        // SAFETY: the loads read row `row`'s n channels from c of every point, the bias and
        // the residual pixels of this tile inside the image; the stores write this tile's
        // pixels inside the output (the caller's contract covers them).
        unsafe {
            // Rows of M transformed along x, kept by column: cols_t[j][a] = (M·A)[a][j].
            let rows_t: [[V; TILE]; ALPHA] = std::array::from_fn(|a| {
                let p = m.add(a * ALPHA * point_stride + c);
                inverse_1d(std::array::from_fn(|b| load_n::<V>(p.add(b * point_stride), n)))
            });
            let cols_t: [[V; ALPHA]; TILE] = std::array::from_fn(|j| std::array::from_fn(|a| rows_t[a][j]));
            let b = if bias.is_null() { V::splat(0.0) } else { load_n(bias.add(c), n) };
            for (j, col) in cols_t.iter().enumerate().take(cols) {
                let y = inverse_1d(*col);
                for (i, &yi) in y.iter().enumerate().take(rows) {
                    let pixel = pixel0 + i * g.ow + j;
                    let mut x = yi.add(b);
                    if !residual.is_null() {
                        x = x.add(load_n(residual.add(pixel * residual_stride + c), n));
                    }
                    store_n(activation.apply(x), out.add(pixel * g.c_out + c), n);
                }
            }
        }
        c += V::LANES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Lanes;

    /// The transforms reproduce a direct 3×3 correlation (one channel, an interior tile and
    /// the padded corner), with integer data exact up to the weights' rounding.
    #[test]
    fn one_channel_matches_the_direct_correlation() {
        type V = Lanes<1>;
        let (h, w) = (7, 9);
        let p = ConvParams { pads: [1, 1, 1, 1], ..ConvParams::new(1, 1, [3, 3]) };
        let x: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let k: Vec<f32> = (0..9).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let packed = pack_weights("scalar", 1, &p, &k);
        let g = Geom { h, w, c_in: 1, c_out: 1, oh: h, ow: w, pad: [1, 1] };
        let tiles = g.tiles();
        let mut v = vec![0.0f32; POINTS * tiles];
        let mut mm = vec![0.0f32; POINTS * tiles];
        let mut out = vec![f32::NAN; h * w];
        // SAFETY: Lanes needs no features; buffers sized for every tile and point.
        unsafe {
            run::<V>(&g, &Stage::Input { input: x.as_ptr(), v: v.as_mut_ptr(), point_stride: tiles }, 0, tiles);
            for xi in 0..POINTS {
                let u = packed[xi].data()[0];
                for t in 0..tiles {
                    mm[xi * tiles + t] = v[xi * tiles + t] * u;
                }
            }
            let stage = Stage::Output {
                m: mm.as_ptr(),
                point_stride: tiles,
                out: out.as_mut_ptr(),
                bias: std::ptr::null(),
                residual: std::ptr::null(),
                residual_stride: 0,
                activation: Activation::Identity,
            };
            run::<V>(&g, &stage, 0, tiles);
        }
        for y in 0..h {
            for xx in 0..w {
                let mut want = 0.0f64;
                for kh in 0..3 {
                    for kw in 0..3 {
                        let (iy, ix) = (y as isize + kh as isize - 1, xx as isize + kw as isize - 1);
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            want += x[iy as usize * w + ix as usize] as f64 * k[kh * 3 + kw] as f64;
                        }
                    }
                }
                let got = out[y * w + xx] as f64;
                assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "({y}, {xx}): {got} vs {want}");
            }
        }
    }
}
