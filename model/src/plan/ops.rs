//! The plan's own element-wise, pooling, resize and data-movement loops (the heavy
//! operators run on the kernel set). Layout-aware: 4-D values are NHWC.

use kernels::device::{loops, Taps};
use kernels::threads::{chunks_mut, current_threads};
use kernels::KernelSet;

use super::{Exact, MapOp, Operand};
use crate::ir::{Resize, ResizeMode};
use crate::shape;

/// Elements per parallel work item of element-wise loops.
const GRAIN: usize = 1 << 14;

/// Runs `f` over `out` in blocks whose length is a multiple of `align`, in parallel when
/// `parallel`; `f` gets the block's start offset.
fn blocks(out: &mut [f32], align: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let block = (GRAIN / align.max(1)).max(1) * align.max(1);
    chunks_mut(out, block, parallel, |i, c| f(i * block, c));
}

/// Applies a chain of element-wise ops in place, block by block (each block, a few tens of
/// kilobytes, stays in cache through the whole chain): activations and transcendental
/// functions on the kernel set's vector loops. `channels = (c, stride)`: element `i` has
/// channel `(i / stride) % c`.
pub fn map(
    set: &dyn KernelSet,
    out: &mut [f32],
    ops: &[MapOp],
    consts: &[Vec<f32>],
    channels: (usize, usize),
    parallel: bool,
) -> kernels::Result<()> {
    let (c, stride) = (channels.0.max(1), channels.1.max(1));
    let failed = std::sync::Mutex::new(None);
    blocks(out, c * stride, parallel, |_, block| {
        for op in ops {
            let (k, mul) = match *op {
                MapOp::Act(a) => {
                    if let Err(e) = set.activate(a, block) {
                        *failed.lock().expect("not poisoned") = Some(e);
                    }
                    continue;
                }
                MapOp::Unary(f) => {
                    if let Err(e) = set.unary(f, block) {
                        *failed.lock().expect("not poisoned") = Some(e);
                    }
                    continue;
                }
                MapOp::Exact(f) => {
                    exact(f, block);
                    continue;
                }
                MapOp::Mul(k) => (&consts[k], true),
                MapOp::Add(k) => (&consts[k], false),
            };
            loops::channel_constant(block, k, mul, (c, stride));
        }
    });
    match failed.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// 2²³: from here on every float32 is an integer.
const INTEGRAL: f32 = 8_388_608.0;

/// `x` rounded half to even: adding and subtracting 2²³ leaves the integer nearest to `|x|`
/// (the addition rounds at the units digit, ties to even); the sign goes back on so that
/// `−0.3` gives `−0`. Branch-free, so the loops over it vectorize on any x86-64 (an
/// `f32::round_ties_even` call per value needs SSE4.1 to inline).
#[inline(always)]
fn round_even(x: f32) -> f32 {
    let a = x.abs();
    let r = if a < INTEGRAL { (a + INTEGRAL) - INTEGRAL } else { a };
    r.copysign(x)
}

/// Applies `f` to every value of `x` in place.
pub fn exact(f: Exact, x: &mut [f32]) {
    // Floor and ceil step from the nearest integer; the sign of `x` is the sign of every
    // result (a zero result keeps the sign of zero that IEEE floor and ceil give).
    match f {
        Exact::Abs => x.iter_mut().for_each(|v| *v = v.abs()),
        Exact::Neg => x.iter_mut().for_each(|v| *v = -*v),
        Exact::Round => x.iter_mut().for_each(|v| *v = round_even(*v)),
        Exact::Floor => x.iter_mut().for_each(|v| {
            let r = round_even(*v);
            *v = if r > *v { r - 1.0 } else { r }.copysign(*v);
        }),
        Exact::Ceil => x.iter_mut().for_each(|v| {
            let r = round_even(*v);
            *v = if r < *v { r + 1.0 } else { r }.copysign(*v);
        }),
        Exact::Sqrt => x.iter_mut().for_each(|v| *v = v.sqrt()),
        Exact::Reciprocal => x.iter_mut().for_each(|v| *v = 1.0 / *v),
    }
}

/// Spatial resize of NHWC `x` into `out`: NHWC (`[n, oh, ow, c]`), or with `planes` NCHW
/// (`[n, c, oh, ow]`: a model's resized output then needs no separate relayout pass).
#[allow(clippy::too_many_arguments)]
pub fn resize(
    x: &[f32],
    dims: [usize; 4],
    r: &Resize,
    scales: [f64; 2],
    out: &mut [f32],
    [oh, ow]: [usize; 2],
    planes: bool,
    parallel: bool,
) {
    let [_, h, w, _] = dims;
    loops::resize(x, dims, &taps(r, scales, [h, w], [oh, ow]), planes, out, parallel);
}

/// The taps of resizing an `[h, w]` map to `[oh, ow]` by `scales` (rows, columns).
pub(super) fn taps(r: &Resize, scales: [f64; 2], [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> Taps {
    Taps {
        rows: resize_taps(r, scales[0], h, oh),
        cols: resize_taps(r, scales[1], w, ow),
        linear: matches!(r.mode, ResizeMode::Linear),
    }
}

/// The source taps of each of `len_out` positions on one axis: `(i0, i1, weight of i1)` for
/// linear interpolation, `(i, 0, 0.0)` for nearest.
fn resize_taps(r: &Resize, scale: f64, len_in: usize, len_out: usize) -> Vec<(usize, usize, f32)> {
    (0..len_out)
        .map(|o| {
            let c = shape::resize_source(r.coordinates, o, scale, len_in);
            match r.mode {
                ResizeMode::Nearest(m) => (shape::resize_nearest(m, c, len_in), 0, 0.0),
                ResizeMode::Linear => {
                    let (a, b, t) = shape::resize_linear(c, len_in);
                    (a, b, t as f32)
                }
            }
        })
        .collect()
}

/// Output rows up to this long are concatenated row by row (see [`concat`]).
const SHORT_ROW: usize = 64;

/// Concatenation along physical `axis` of row-major values with physical `dims`, split into
/// blocks of output in parallel when `parallel` (each thread copies the end of the output
/// whose inputs it wrote, see [`kernels::threads`]).
pub fn concat(parts: &[(&[f32], Vec<usize>)], axis: usize, out: &mut [f32], parallel: bool) {
    let outer: usize = parts[0].1[..axis].iter().product();
    let chunks: Vec<usize> = parts.iter().map(|(_, dims)| dims[axis..].iter().product()).collect();
    let row: usize = chunks.iter().sum();
    let total = outer * row;
    if row <= SHORT_ROW && outer > 1 {
        // Short rows (a detector's four `[n, 1]` coordinates into `[n, 4]` boxes): whole rows
        // per block, a part at a time, single values copied as values.
        let per_block = (GRAIN / row).max(1);
        chunks_mut(&mut out[..total], per_block * row, parallel && total > GRAIN, |b, dst| {
            for (j, r) in dst.chunks_exact_mut(row).enumerate() {
                let i = b * per_block + j;
                let mut at = 0;
                for ((src, _), &c) in parts.iter().zip(&chunks) {
                    match c {
                        1 => r[at] = src[i],
                        _ => r[at..at + c].copy_from_slice(&src[i * c..][..c]),
                    }
                    at += c;
                }
            }
        });
        return;
    }
    blocks(&mut out[..total], 1, parallel && total > GRAIN, |mut pos, dst| {
        // Output values `pos..pos + dst.len()`, one run of one part at a time.
        let mut at = 0;
        while at < dst.len() {
            let (i, mut off, mut p) = (pos / row, pos % row, 0);
            while off >= chunks[p] {
                off -= chunks[p];
                p += 1;
            }
            let n = (chunks[p] - off).min(dst.len() - at);
            dst[at..at + n].copy_from_slice(&parts[p].0[i * chunks[p] + off..][..n]);
            (at, pos) = (at + n, pos + n);
        }
    });
}

/// `out` is `src`, copied block by block in parallel when `parallel`.
pub fn copy(src: &[f32], out: &mut [f32], parallel: bool) {
    blocks(out, 1, parallel && src.len() > GRAIN, |at, dst| dst.copy_from_slice(&src[at..][..dst.len()]));
}

/// Output run `o` (of `len` values) is `x[o·stride + start..][..len]`, for `outer` runs: a
/// slice or one output of a split along a non-leading axis.
pub fn crop(x: &[f32], [outer, stride, start, len]: [usize; 4], out: &mut [f32], parallel: bool) {
    chunks_mut(&mut out[..outer * len], len, parallel && outer * len > GRAIN, |o, dst| {
        dst.copy_from_slice(&x[o * stride + start..][..len])
    });
}

/// Output run `o` of `out` is blocks `indices[k]` (of `inner` values) of input run `o`
/// (`outer` runs of `stride`), in order; consecutive indices are copied as one block.
/// Single values (`inner == 1`: a gather along the channels of an NHWC value) are copied by
/// index, and the two-group channel shuffle (ShuffleNet's `[c/2, 2]` transpose: indices
/// `0, c/2, 1, c/2 + 1, …`) as an interleave of the two halves, which vectorizes; a run per
/// index cost ~1 ns per value (13 % of ShuffleNetV2's time on Zen 3).
pub fn gather(x: &[f32], [outer, stride, inner]: [usize; 3], indices: &[usize], out: &mut [f32], parallel: bool) {
    let shuffle = inner == 1 && is_two_group_shuffle(indices, stride);
    let runs = if shuffle { Vec::new() } else { index_runs(indices) };
    let by_index = !shuffle && inner == 1 && runs.len() * 2 > indices.len();
    let len = indices.len() * inner;
    chunks_mut(&mut out[..outer * len], len, parallel && outer * len > GRAIN, |o, dst| {
        let src = &x[o * stride..][..stride];
        if shuffle {
            let (a, b) = src.split_at(stride / 2);
            for ((d, &p), &q) in dst.chunks_exact_mut(2).zip(a).zip(b) {
                d[0] = p;
                d[1] = q;
            }
        } else if by_index {
            for (d, &i) in dst.iter_mut().zip(indices) {
                *d = src[i];
            }
        } else {
            let mut at = 0;
            for &(first, blocks) in &runs {
                let n = blocks * inner;
                match n {
                    1 => dst[at] = src[first * inner],
                    _ => dst[at..at + n].copy_from_slice(&src[first * inner..][..n]),
                }
                at += n;
            }
        }
    });
}

/// Whether `indices` interleave the two halves of `stride` values: `0, h, 1, h + 1, …`.
fn is_two_group_shuffle(indices: &[usize], stride: usize) -> bool {
    let half = stride / 2;
    indices.len() == stride
        && stride.is_multiple_of(2)
        && stride > 0
        && indices.chunks_exact(2).enumerate().all(|(j, p)| p[0] == j && p[1] == half + j)
}

/// Consecutive `indices` as runs: (first index, count), in order.
pub(super) fn index_runs(indices: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in indices {
        match runs.last_mut() {
            Some((s, n)) if *s + *n == i => *n += 1,
            _ => runs.push((i, 1)),
        }
    }
    runs
}

/// NCHW ↔ NHWC of a `[n, c, h, w]` value (`to_nhwc` picks the direction). One channel or
/// one pixel: the orders coincide and this is a copy. Otherwise blocks of pixels, so that
/// writes stay sequential and each block's destination stays in L1.
pub fn relayout(x: &[f32], [n, c, h, w]: [usize; 4], to_nhwc: bool, out: &mut [f32], parallel: bool) {
    const BLOCK: usize = 32;
    let hw = h * w;
    if c == 1 || hw == 1 {
        out[..n * c * hw].copy_from_slice(&x[..n * c * hw]);
        return;
    }
    let image = |b: usize, dst: &mut [f32]| {
        let src = &x[b * c * hw..][..c * hw];
        for p0 in (0..hw).step_by(BLOCK) {
            let len = BLOCK.min(hw - p0);
            to_pixels(src, hw, c, p0, &mut dst[p0 * c..][..len * c]);
        }
    };
    let out = &mut out[..n * c * hw];
    if !to_nhwc {
        // Whole images, or groups of planes of a single image between threads.
        let per = if parallel && n == 1 { c.div_ceil(current_threads()) } else { c };
        let groups = c.div_ceil(per);
        chunks_mut(out, per * hw, parallel, |k, dst| {
            let (b, g) = (k / groups, k % groups);
            to_planes(&x[b * c * hw..][..c * hw], hw, c, g * per, dst);
        });
    } else if parallel && n == 1 {
        // One image: split its pixels (whole blocks) between threads.
        let per = (hw.div_ceil(current_threads() * 8 * BLOCK) * BLOCK).max(BLOCK);
        chunks_mut(out, per * c, true, |k, dst| to_pixels(x, hw, c, k * per, dst));
    } else {
        chunks_mut(out, c * hw, parallel, image);
    }
}

/// Planes `ch0..` (whole planes of `hw`) of one NHWC image of `c` channels into `dst`, in
/// blocks of pixels so that each block's source stays in L1 while its planes are written.
fn to_planes(src: &[f32], hw: usize, c: usize, ch0: usize, dst: &mut [f32]) {
    const BLOCK: usize = 64;
    for p0 in (0..hw).step_by(BLOCK) {
        let len = BLOCK.min(hw - p0);
        let s = &src[p0 * c..][..len * c];
        for (k, plane) in dst.chunks_exact_mut(hw).enumerate() {
            for (o, px) in plane[p0..][..len].iter_mut().zip(s.chunks_exact(c)) {
                *o = px[ch0 + k];
            }
        }
    }
}

/// Pixels `p0..` of one NCHW image (`c` planes of `hw`) as NHWC into `dst` (whole pixels).
/// Three and four channels (image inputs) are written pixel by pixel from fixed arrays of
/// planes, which the compiler turns into interleaving shuffles; others channel by channel.
fn to_pixels(src: &[f32], hw: usize, c: usize, p0: usize, dst: &mut [f32]) {
    fn fixed<const C: usize>(src: &[f32], hw: usize, p0: usize, dst: &mut [f32]) {
        let len = dst.len() / C;
        let planes: [&[f32]; C] = std::array::from_fn(|ch| &src[ch * hw + p0..][..len]);
        for (p, px) in dst.chunks_exact_mut(C).enumerate() {
            for (o, plane) in px.iter_mut().zip(&planes) {
                *o = plane[p];
            }
        }
    }
    match c {
        3 => fixed::<3>(src, hw, p0, dst),
        4 => fixed::<4>(src, hw, p0, dst),
        _ => {
            let len = dst.len() / c;
            for ch in 0..c {
                for (p, &v) in src[ch * hw + p0..][..len].iter().enumerate() {
                    dst[p * c + ch] = v;
                }
            }
        }
    }
}

/// NHWC `[n, h, w, (by, bx, c)]` to `[n, h·by, w·bx, c]`.
pub fn depth_to_space(x: &[f32], [n, h, w, cc]: [usize; 4], [by, bx]: [usize; 2], out: &mut [f32], parallel: bool) {
    let c = cc / (by * bx);
    let ow = w * bx;
    // One output row per item: input row `iy`, block row `ky`.
    let row = |r: usize, dst: &mut [f32]| {
        let (bi, ky) = (r / by, r % by);
        let src = &x[bi * w * cc..][..w * cc];
        for ix in 0..w {
            dst[ix * bx * c..][..bx * c].copy_from_slice(&src[ix * cc + ky * bx * c..][..bx * c]);
        }
    };
    let out = &mut out[..n * h * by * ow * c];
    chunks_mut(out, ow * c, parallel, row);
}

/// Axis permutation of a row-major value of `shape`: output axis `i` is input axis `perm[i]`.
/// Axes of size 1 are dropped and output axes that stay neighbours in the input merged first,
/// so `[1, 197, 3, 3, 64]` by `(2, 0, 3, 1, 4)` moves rows of 64 values. Then: rows copied
/// whole where the innermost axis stays innermost; a swap of the two innermost axes in
/// 8 × 8 blocks (each block reads 8 cache lines and writes 8); anything else read element
/// by element at the innermost axis's stride.
pub fn transpose(x: &[f32], shape: &[usize], perm: &[usize], out: &mut [f32]) {
    let (dims, strides) = coalesce(shape, perm);
    let total: usize = dims.iter().product();
    if total == 0 {
        return;
    }
    let out = &mut out[..total];
    let r = dims.len();
    if r <= 1 {
        out.copy_from_slice(&x[..total]);
        return;
    }
    let (last, last_stride) = (dims[r - 1], strides[r - 1]);
    if last_stride == 1 {
        let mut rows = out.chunks_exact_mut(last);
        odometer(&dims[..r - 1], &strides[..r - 1], |base| {
            rows.next().expect("one row per index").copy_from_slice(&x[base..base + last]);
        });
    } else if strides[r - 2] == 1 {
        // out[.., a, b] = x[base + a + b·last_stride]: the two innermost axes swapped.
        const B: usize = 8;
        let rows = dims[r - 2];
        let mut planes = out.chunks_exact_mut(rows * last);
        odometer(&dims[..r - 2], &strides[..r - 2], |base| {
            let plane = planes.next().expect("one plane per index");
            for a0 in (0..rows).step_by(B) {
                for b0 in (0..last).step_by(B) {
                    for a in a0..rows.min(a0 + B) {
                        let dst = &mut plane[a * last..][b0..last.min(b0 + B)];
                        for (j, o) in dst.iter_mut().enumerate() {
                            *o = x[base + a + (b0 + j) * last_stride];
                        }
                    }
                }
            }
        });
    } else {
        let mut rows = out.chunks_exact_mut(last);
        odometer(&dims[..r - 1], &strides[..r - 1], |base| {
            for (j, o) in rows.next().expect("one row per index").iter_mut().enumerate() {
                *o = x[base + j * last_stride];
            }
        });
    }
}

/// The output's axes (sizes, and strides in the input) with size-1 axes dropped and each run
/// of output axes that are consecutive input axes merged into one.
fn coalesce(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let in_strides = crate::tensor::strides(shape);
    let mut dims: Vec<usize> = Vec::with_capacity(perm.len());
    let mut strides: Vec<usize> = Vec::with_capacity(perm.len());
    for &p in perm.iter().filter(|&&p| shape[p] != 1) {
        let (d, s) = (shape[p], in_strides[p]);
        match (dims.last_mut(), strides.last_mut()) {
            // The previous output axis is the input axis just outside this one.
            (Some(pd), Some(ps)) if *ps == s * d => {
                *pd *= d;
                *ps = s;
            }
            _ => {
                dims.push(d);
                strides.push(s);
            }
        }
    }
    (dims, strides)
}

/// Calls `f` with the input offset of every index over `dims` (row-major order), `strides`
/// being each axis's input stride.
fn odometer(dims: &[usize], strides: &[usize], mut f: impl FnMut(usize)) {
    let mut idx = vec![0usize; dims.len()];
    let mut base = 0usize;
    loop {
        f(base);
        let mut d = dims.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            base += strides[d];
            if idx[d] < dims[d] {
                break;
            }
            base -= strides[d] * dims[d];
            idx[d] = 0;
        }
    }
}

/// The slice behind an operand.
pub fn operand<'a>(o: Operand, consts: &'a [Vec<f32>], value: impl Fn(usize) -> &'a [f32]) -> &'a [f32] {
    match o {
        Operand::Const(c) => &consts[c],
        Operand::Value(v) => value(v),
    }
}

#[cfg(test)]
mod tests {
    use super::{concat, exact, gather, is_two_group_shuffle, transpose, Exact};
    use proptest::prelude::*;

    /// Element by element from the definition: output index `o` reads input index `i` with
    /// `i[perm[k]] = o[k]`.
    fn by_definition(x: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f32> {
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let in_strides = crate::tensor::strides(shape);
        let total: usize = shape.iter().product();
        (0..total)
            .map(|mut flat| {
                let mut at = 0;
                for k in (0..perm.len()).rev() {
                    at += (flat % out_shape[k]) * in_strides[perm[k]];
                    flat /= out_shape[k];
                }
                x[at]
            })
            .collect()
    }

    /// A shape of rank 1–5 (sizes 1–11: tails of the 8 × 8 blocks, axes that coalesce or drop)
    /// and a permutation of its axes.
    fn case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        prop::collection::vec(1usize..12, 1..6).prop_flat_map(|shape| {
            let r = shape.len();
            (Just(shape), Just((0..r).collect::<Vec<_>>()).prop_shuffle())
        })
    }

    proptest! {
        #[test]
        fn transpose_matches_the_definition((shape, perm) in case()) {
            let total: usize = shape.iter().product();
            // Distinct integer values: a misplaced element shows, and so does an unwritten one.
            let x: Vec<f32> = (0..total).map(|i| i as f32).collect();
            let mut out = vec![f32::NAN; total + 1];
            transpose(&x, &shape, &perm, &mut out);
            prop_assert_eq!(&out[..total], &by_definition(&x, &shape, &perm)[..]);
            prop_assert!(out[total].is_nan(), "wrote past the output");
        }
    }

    /// `gather` from its definition: output run `o`, block `k` is input run `o`'s block
    /// `indices[k]`.
    fn gather_by_definition(x: &[f32], [outer, stride, inner]: [usize; 3], indices: &[usize]) -> Vec<f32> {
        (0..outer)
            .flat_map(|o| indices.iter().flat_map(move |&i| (0..inner).map(move |e| x[o * stride + i * inner + e])))
            .collect()
    }

    #[test]
    fn gather_paths_match_the_definition() {
        let shuffle = |c: usize| (0..c).map(|k| (k % 2) * (c / 2) + k / 2).collect::<Vec<_>>();
        assert!(is_two_group_shuffle(&shuffle(116), 116) && !is_two_group_shuffle(&shuffle(7), 7));
        // The two-group shuffle (even and odd channel counts: 116 takes the interleave, 7
        // is no shuffle), single values by index, runs of blocks, and single values in runs.
        for (outer, stride, inner, indices) in [
            (5, 116, 1, shuffle(116)),
            (3, 7, 1, shuffle(7)),
            (4, 10, 1, vec![9, 0, 3, 3, 7]),
            (4, 24, 3, vec![1, 2, 3, 7, 0]),
            (6, 9, 1, vec![2, 3, 4, 5, 0, 1]),
        ] {
            let total = outer * stride;
            let x: Vec<f32> = (0..total).map(|i| i as f32).collect();
            let len = indices.len() * inner;
            let expected = gather_by_definition(&x, [outer, stride, inner], &indices);
            for parallel in [false, true] {
                let mut out = vec![f32::NAN; outer * len + 1];
                gather(&x, [outer, stride, inner], &indices, &mut out, parallel);
                assert_eq!(&out[..outer * len], &expected[..], "{outer}×{stride} by {indices:?}");
                assert!(out[outer * len].is_nan(), "wrote past the output");
            }
        }
    }

    #[test]
    fn the_paths_each_get_their_case() {
        // Rows (ViT's qkv split), the blocked swap (Kᵀ, with tails), the strided fallback.
        for (shape, perm) in [
            (vec![1, 197, 3, 3, 64], vec![2, 0, 3, 1, 4]),
            (vec![1, 3, 197, 64], vec![0, 1, 3, 2]),
            (vec![2, 5, 7, 3], vec![3, 1, 0, 2]),
        ] {
            let total: usize = shape.iter().product();
            let x: Vec<f32> = (0..total).map(|i| i as f32).collect();
            let mut out = vec![f32::NAN; total];
            transpose(&x, &shape, &perm, &mut out);
            assert_eq!(out, by_definition(&x, &shape, &perm), "{shape:?} by {perm:?}");
        }
    }

    /// Every `Exact` function against float64 rounded to float32, bit for bit (the sign of
    /// zero and NaN included), on the edges (±0, the smallest and largest denormals and
    /// normals, ±∞, NaN, halves and their neighbours, 2²²…2²⁴) and on a sweep of every
    /// 4099th bit pattern.
    #[test]
    fn exact_functions_equal_float64_rounded_bit_for_bit() {
        let mut xs: Vec<f32> = vec![
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::from_bits(0x007F_FFFF),
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            4_194_304.5,
            8_388_607.5,
            8_388_608.0,
            8_388_609.0,
            16_777_216.0,
            -8_388_607.5,
        ];
        for k in -6..=6 {
            let h = k as f32 + 0.5;
            xs.extend([h, f32::from_bits(h.to_bits() + 1), f32::from_bits(h.to_bits() - 1), k as f32]);
        }
        xs.extend((0..u32::MAX / 4099).map(|i| f32::from_bits(i.wrapping_mul(4099))));
        // The float64 reference's own definitions (what plans are checked against).
        use crate::portable::Unary as P;
        for p in [P::Abs, P::Neg, P::Floor, P::Ceil, P::Round, P::Sqrt, P::Reciprocal] {
            let f = Exact::of(p).expect("an exact function");
            let mut out = xs.clone();
            exact(f, &mut out);
            for (&x, &y) in xs.iter().zip(&out) {
                let want = p.apply(x as f64) as f32;
                let same = want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan());
                assert!(same, "{f:?}({x:e} = {:#010x}) = {y:e}, float64 says {want:e}", x.to_bits());
            }
        }
    }

    /// Concatenation along the last axis of short rows (single values, mixed widths) and of
    /// long ones, and along a middle axis, element by element from the definition; the
    /// output poisoned and one value past it checked.
    #[test]
    fn concat_paths_match_the_definition() {
        for (outer, widths) in [(1024, vec![1, 1, 1, 1]), (37, vec![3, 1, 2]), (5, vec![40, 30]), (1, vec![2, 5])] {
            let parts: Vec<Vec<f32>> = widths
                .iter()
                .enumerate()
                .map(|(p, &w)| (0..outer * w).map(|i| (p * 100_000 + i) as f32).collect())
                .collect();
            let row: usize = widths.iter().sum();
            let expected: Vec<f32> = (0..outer)
                .flat_map(|i| parts.iter().zip(&widths).flat_map(move |(v, &w)| v[i * w..][..w].to_vec()))
                .collect();
            let args: Vec<(&[f32], Vec<usize>)> =
                parts.iter().zip(&widths).map(|(v, &w)| (v.as_slice(), vec![outer, w])).collect();
            for parallel in [false, true] {
                let mut out = vec![f32::NAN; outer * row + 1];
                concat(&args, 1, &mut out, parallel);
                assert_eq!(&out[..outer * row], &expected[..], "{outer} rows of {widths:?}");
                assert!(out[outer * row].is_nan(), "wrote past the output");
            }
        }
    }
}
