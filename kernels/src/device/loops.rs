//! The host loops of the plan's own steps that the CPU executor (`model`'s `Session`) and a
//! CPU set's device ([`super::host`]) share: broadcasting binaries, per-channel constants,
//! resize from per-axis taps, softmax along any axis. Layout-aware: 4-D values are NHWC.

use super::ops::{BinaryOp, Taps};
use crate::threads::chunks_mut;

/// Elements per parallel work item.
const GRAIN: usize = 1 << 14;

/// A binary operand's data: a separate slice, or the output itself (in place).
pub enum Src<'a> {
    /// Read from this slice.
    Slice(&'a [f32]),
    /// Read the output's own element (same index, contiguous strides).
    Output,
}

/// Broadcasting binary operation over up to 4 physical axes.
pub fn binary(
    op: BinaryOp,
    a: (Src, [usize; 4]),
    b: (&[f32], [usize; 4]),
    dims: [usize; 4],
    out: &mut [f32],
    parallel: bool,
) {
    // The operator is chosen once (a constant in each arm), so that each row loop is a plain
    // vectorizable loop.
    match op {
        BinaryOp::Add => binary_rows(|p, q| BinaryOp::Add.apply(p, q), a, b, dims, out, parallel),
        BinaryOp::Sub => binary_rows(|p, q| BinaryOp::Sub.apply(p, q), a, b, dims, out, parallel),
        BinaryOp::Mul => binary_rows(|p, q| BinaryOp::Mul.apply(p, q), a, b, dims, out, parallel),
        BinaryOp::Div => binary_rows(|p, q| BinaryOp::Div.apply(p, q), a, b, dims, out, parallel),
    }
}

/// [`binary`] with its operator `f`: rows of `dims[3]` elements, in blocks of whole rows
/// (each row's operand offsets advanced by counters: a squeeze-excitation gate's rows are
/// a few dozen channels, and three integer divisions per row cost more than the row).
fn binary_rows(
    f: impl Fn(f32, f32) -> f32 + Copy + Sync + Send,
    a: (Src, [usize; 4]),
    b: (&[f32], [usize; 4]),
    dims: [usize; 4],
    out: &mut [f32],
    parallel: bool,
) {
    let rows = dims[0] * dims[1] * dims[2];
    let inner = dims[3];
    let (sa, sb) = (a.1, b.1);
    let row = |[i0, i1, i2]: [usize; 3], o: &mut [f32]| {
        let n = o.len();
        let bv = &b.0[i0 * sb[0] + i1 * sb[1] + i2 * sb[2]..];
        match &a.0 {
            Src::Output if sb[3] == 1 => o.iter_mut().zip(&bv[..n]).for_each(|(x, &q)| *x = f(*x, q)),
            Src::Output => {
                let q = bv[0];
                o.iter_mut().for_each(|x| *x = f(*x, q));
            }
            Src::Slice(av) => {
                let av = &av[i0 * sa[0] + i1 * sa[1] + i2 * sa[2]..];
                match (sa[3], sb[3]) {
                    (1, 1) => o.iter_mut().zip(&av[..n]).zip(&bv[..n]).for_each(|((x, &p), &q)| *x = f(p, q)),
                    (1, 0) => o.iter_mut().zip(&av[..n]).for_each(|(x, &p)| *x = f(p, bv[0])),
                    (0, 1) => o.iter_mut().zip(&bv[..n]).for_each(|(x, &q)| *x = f(av[0], q)),
                    (s, t) => o.iter_mut().enumerate().for_each(|(j, x)| *x = f(av[j * s], bv[j * t])),
                }
            }
        }
    };
    let out = &mut out[..rows * inner];
    if inner == 0 {
        return;
    }
    let per_block = (GRAIN / inner).max(1);
    chunks_mut(out, per_block * inner, parallel && out.len() > GRAIN, |block_index, block| {
        let r = block_index * per_block;
        let mut at = [r / (dims[1] * dims[2]), (r / dims[2]) % dims[1], r % dims[2]];
        for o in block.chunks_mut(inner) {
            row(at, o);
            at[2] += 1;
            if at[2] == dims[2] {
                at[2] = 0;
                at[1] += 1;
                if at[1] == dims[1] {
                    at[1] = 0;
                    at[0] += 1;
                }
            }
        }
    });
}

/// `block · k[c]` (`mul`) or `block + k[c]`, where `k` holds one value or one per channel and
/// element `i` of the block has channel `(i / stride) % c` (`channels = (c, stride)`; a block
/// starts on a channel boundary: its length is a multiple of `c · stride` except at the end).
pub fn channel_constant(block: &mut [f32], k: &[f32], mul: bool, (c, stride): (usize, usize)) {
    if k.len() == 1 {
        let v = k[0];
        if mul {
            block.iter_mut().for_each(|x| *x *= v);
        } else {
            block.iter_mut().for_each(|x| *x += v);
        }
    } else if stride == 1 {
        for row in block.chunks_mut(c) {
            if mul {
                row.iter_mut().zip(k).for_each(|(x, v)| *x *= v);
            } else {
                row.iter_mut().zip(k).for_each(|(x, v)| *x += v);
            }
        }
    } else {
        for (j, run) in block.chunks_mut(stride).enumerate() {
            let v = k[j % c];
            if mul {
                run.iter_mut().for_each(|x| *x *= v);
            } else {
                run.iter_mut().for_each(|x| *x += v);
            }
        }
    }
}

/// Spatial resize of NHWC `x` (`dims`) by `taps` into `out`: NHWC (`[n, oh, ow, c]`), or with
/// `planes` NCHW (`[n, c, oh, ow]`: a model's resized output then needs no separate relayout
/// pass). The caller has checked the taps against `dims` and both lengths.
pub fn resize(x: &[f32], dims: [usize; 4], taps: &Taps, planes: bool, out: &mut [f32], parallel: bool) {
    if planes {
        resize_to_planes(x, dims, taps, out, parallel);
    } else {
        resize_to_pixels(x, dims, taps, out, parallel);
    }
}

/// [`resize`] into NHWC, output row by output row.
fn resize_to_pixels(x: &[f32], [n, h, w, c]: [usize; 4], t: &Taps, out: &mut [f32], parallel: bool) {
    let (oh, ow) = (t.rows.len(), t.cols.len());
    let row_job = |r_idx: usize, orow: &mut [f32]| {
        let (b, oy) = (r_idx / oh, r_idx % oh);
        let plane = &x[b * h * w * c..][..h * w * c];
        match t.rows[oy] {
            (y, _, _) if !t.linear => {
                let src = &plane[y * w * c..][..w * c];
                for (ox, &(sx, _, _)) in t.cols.iter().enumerate() {
                    orow[ox * c..][..c].copy_from_slice(&src[sx * c..][..c]);
                }
            }
            (y0, y1, ty) => {
                let (r0, r1) = (&plane[y0 * w * c..][..w * c], &plane[y1 * w * c..][..w * c]);
                for (ox, &(x0, x1, tx)) in t.cols.iter().enumerate() {
                    let o = &mut orow[ox * c..][..c];
                    for (k, v) in o.iter_mut().enumerate() {
                        let top = r0[x0 * c + k] + tx * (r0[x1 * c + k] - r0[x0 * c + k]);
                        let bot = r1[x0 * c + k] + tx * (r1[x1 * c + k] - r1[x0 * c + k]);
                        *v = top + ty * (bot - top);
                    }
                }
            }
        }
    };
    let out = &mut out[..n * oh * ow * c];
    chunks_mut(out, ow * c, parallel, row_job);
}

/// [`resize`] into NCHW, plane by plane. Separable: each source row needed is interpolated
/// along the width once (gathering one channel), then each output row is one vector blend of
/// two such rows. The arithmetic is [`resize_to_pixels`]'s, in the same order, so the results
/// are the same bits.
fn resize_to_planes(x: &[f32], [n, h, w, c]: [usize; 4], t: &Taps, out: &mut [f32], parallel: bool) {
    let (oh, ow) = (t.rows.len(), t.cols.len());
    let plane_job = |p: usize, dst: &mut [f32]| {
        let (b, ch) = (p / c, p % c);
        let image = &x[b * h * w * c..][..h * w * c];
        // Width-interpolated source rows, computed on first use (rows are visited in order).
        let mut across = vec![0f32; h * ow];
        let mut done = vec![false; h];
        let mut row = |y: usize, across: &mut [f32]| {
            if !done[y] {
                let src = &image[y * w * c..][..w * c];
                for (o, &(x0, x1, tx)) in across[y * ow..][..ow].iter_mut().zip(&t.cols) {
                    *o = if t.linear {
                        let (a, b) = (src[x0 * c + ch], src[x1 * c + ch]);
                        a + tx * (b - a)
                    } else {
                        src[x0 * c + ch]
                    };
                }
                done[y] = true;
            }
        };
        for (orow, &(y0, y1, ty)) in dst.chunks_exact_mut(ow).zip(&t.rows) {
            row(y0, &mut across);
            if !t.linear {
                orow.copy_from_slice(&across[y0 * ow..][..ow]);
                continue;
            }
            row(y1, &mut across);
            let (top, bot) = (&across[y0 * ow..][..ow], &across[y1 * ow..][..ow]);
            for ((o, &a), &b) in orow.iter_mut().zip(top).zip(bot) {
                *o = a + ty * (b - a);
            }
        }
    };
    chunks_mut(&mut out[..n * c * oh * ow], oh * ow, parallel, plane_job);
}

/// Softmax in place along `len` values at stride `inner`, `outer` times (`x` holds
/// `outer · len · inner` values).
pub fn softmax(x: &mut [f32], (outer, len, inner): (usize, usize, usize)) {
    for o in 0..outer {
        let block = &mut x[o * len * inner..][..len * inner];
        for i in 0..inner {
            let max = (0..len).map(|k| block[k * inner + i]).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for k in 0..len {
                let e = (block[k * inner + i] - max).exp();
                block[k * inner + i] = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for k in 0..len {
                block[k * inner + i] *= inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_read_each_operand_at_its_strides() {
        let dims = [1, 2, 3, 4];
        let a: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..8).map(|v| 100.0 * (v + 1) as f32).collect();
        // Dense strides give the flat index; zero strides broadcast.
        // Element 23 is (0, 1, 2, 3), element 13 is (0, 1, 0, 1): their offsets in `b`.
        for (sb, at) in [([0, 0, 0, 1], [3, 1]), ([0, 4, 0, 1], [7, 5])] {
            let mut out = vec![f32::NAN; 24];
            binary(BinaryOp::Add, (Src::Slice(&a), [24, 12, 4, 1]), (&b, sb), dims, &mut out, false);
            assert_eq!(out[23], 23.0 + b[at[0]]);
            assert_eq!(out[13], 13.0 + b[at[1]]);
        }
        // In place: the left operand is the output itself.
        let mut out = a.clone();
        binary(BinaryOp::Mul, (Src::Output, [24, 12, 4, 1]), (&b, [0, 0, 0, 0]), dims, &mut out, false);
        assert!(out.iter().zip(&a).all(|(&y, &x)| y == x * b[0]));
    }

    #[test]
    fn channel_constants_follow_channel_and_stride() {
        let mut y = vec![1.0f32; 12];
        // Three channels, two consecutive elements each (stride 2).
        channel_constant(&mut y, &[10.0, 20.0, 30.0], true, (3, 2));
        assert_eq!(y, [10., 10., 20., 20., 30., 30., 10., 10., 20., 20., 30., 30.]);
        channel_constant(&mut y, &[1.0, 2.0, 3.0], false, (3, 1));
        assert_eq!(&y[..6], &[11., 12., 23., 21., 32., 33.]);
        channel_constant(&mut y, &[0.5], true, (3, 1));
        assert_eq!(y[0], 5.5);
    }

    #[test]
    fn resize_writes_pixels_or_planes() {
        // A 1×2×2×2 image doubled by nearest taps; the planes form is the NCHW transpose.
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let taps: Vec<(usize, usize, f32)> = vec![(0, 0, 0.0), (0, 0, 0.0), (1, 1, 0.0), (1, 1, 0.0)];
        let t = Taps { rows: taps.clone(), cols: taps, linear: false };
        assert_eq!(t.reach(), [2, 2]);
        let mut nhwc = vec![f32::NAN; 32];
        resize(&x, [1, 2, 2, 2], &t, false, &mut nhwc, false);
        let mut nchw = vec![f32::NAN; 32];
        resize(&x, [1, 2, 2, 2], &t, true, &mut nchw, false);
        for (oy, ox, k) in (0..4).flat_map(|a| (0..4).flat_map(move |b| (0..2).map(move |k| (a, b, k)))) {
            let want = x[((oy / 2) * 2 + ox / 2) * 2 + k];
            assert_eq!(nhwc[(oy * 4 + ox) * 2 + k], want);
            assert_eq!(nchw[(k * 4 + oy) * 4 + ox], want);
        }
        // Taps reaching past a 1×2 image: what the host device checks before calling.
        assert!(t.reach()[0] > 1);
    }
}
