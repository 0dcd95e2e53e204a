//! Runs a packed convolution with microkernel `K`: written once for every kernel set.
//!
//! - pointwise (1×1, stride 1, no padding): the GEMM on the NHWC input as it is, per group a
//!   column window of it (no copy at all);
//! - other dense and grouped `Conv`: implicit GEMM, im2col fused into the A packing
//!   ([`Im2col`]), one GEMM over every image per group;
//! - 3×3 stride-1 `Conv` packed for Winograd: per block of output tiles, the input
//!   transform, one GEMM per transform point on the register tile, the inverse transform with
//!   the epilogue (see [`super::winograd`]); each pass split across the threads;
//! - grouped `Conv` with groups narrower than the tile, packed for it: the direct grouped
//!   kernel (see [`super::grouped`]), split across the threads by output pixels;
//! - depthwise: the direct kernel, one task per band of output rows;
//! - `ConvTranspose`: per output phase a stride-1 implicit GEMM (see [`super::plan`]), one per
//!   (phase, group, image, phase row), writing straight into the interleaved output.
//!
//! Bias (per output channel), residual and activation are fused into the one store of every
//! output value. Every output value is computed by one task in a fixed order, so results do
//! not depend on the thread count.

use super::depthwise::{DwGeom, DwRow, BAND};
use super::grouped;
use super::im2col::{self, Im2col};
use super::image::{ImageMut, ImageRef};
use super::packed::{Body, PackedConv};
use super::params::{ConvKind, ConvParams};
use super::plan::{forward_taps, transposed_phases};
use super::winograd;
use super::{ConvKernel, ConvRows};
use crate::aligned::AlignedBuf;
use crate::blocking::Blocking;
use crate::epilogue::{Bias, Epilogue};
use crate::error::{KernelError, Result};
use crate::gemm::driver::{check_packed, run, RawOut, SharedMut};
use crate::gemm::{ASource, Microkernel, TileOut};
use crate::mat::MatRef;
use crate::pack::PackedB;
use crate::{threads, BOperand, Parallelism};

/// Validates the call, then runs the convolution; `blocking` is the main tile's and the wide
/// tile's (`K::Wide`, for parts packed at its width).
pub(crate) fn conv2d<K: ConvKernel>(
    kernel_name: &str,
    blocking: &[Blocking; 2],
    input: ImageRef<'_>,
    weights: &PackedConv,
    mut output: ImageMut<'_>,
    epi: &Epilogue<'_>,
    par: Parallelism,
) -> Result<()> {
    let [n, oh, ow] = check_call(kernel_name, input.dims(), weights, output.dims(), epi)?;
    match weights.body() {
        Body::Gemm(parts) => check_parts::<K>(kernel_name, parts)?,
        Body::Winograd(parts) => parts.iter().try_for_each(|b| check_packed::<K>(kernel_name, b))?,
        Body::Grouped(_) => {
            let cg = weights.params().c_out_per_group();
            if grouped_vectors::<K>(cg).is_none() {
                return Err(KernelError::Packed(format!(
                    "direct grouped weights for groups of {cg} output channels; `{kernel_name}` takes at most {}",
                    4 * K::Wide::NARROW
                )));
            }
        }
        Body::Depthwise(_) => {}
    }
    let p = *weights.params();
    if n * oh * ow == 0 {
        return Ok(());
    }
    let out = Out { ptr: SharedMut(output.as_mut_ptr()), dims: [n, oh, ow, p.c_out] };
    let run = Run { p, input, out, epi, par, blocking };
    // SAFETY: `output` is borrowed exclusively for the call and its dims were checked above;
    // the weights' parts were checked for this kernel set, and their shapes are those the
    // attributes imply (packing and deserialization guarantee it).
    unsafe {
        match weights.body() {
            Body::Depthwise(dw) => run.depthwise::<K>(dw),
            Body::Winograd(parts) => run.winograd::<K>(parts),
            Body::Grouped(w) => run.grouped::<K>(w),
            Body::Gemm(parts) if p.kind == ConvKind::Forward => run.forward::<K>(parts),
            Body::Gemm(parts) => run.transposed::<K>(parts),
        }
    }
    Ok(())
}

/// Checks that GEMM parts were packed for `K` or its wide tile.
pub(super) fn check_parts<K: Microkernel>(kernel_name: &str, parts: &[PackedB]) -> Result<()> {
    parts.iter().try_for_each(|b| match b.nr() == K::Wide::NR {
        true => check_packed::<K::Wide>(kernel_name, b),
        false => check_packed::<K>(kernel_name, b),
    })
}

/// Checks a convolution call that every kernel set must refuse alike: weights packed for
/// `kernel_name`, input channels, output dims (NHWC), a per-channel bias and an NHWC residual.
/// Returns `[n, oh, ow]`.
pub(crate) fn check_call(
    kernel_name: &str,
    input: [usize; 4],
    weights: &PackedConv,
    output: [usize; 4],
    epi: &Epilogue<'_>,
) -> Result<[usize; 3]> {
    let p = *weights.params();
    if weights.kernel() != kernel_name {
        return Err(KernelError::Packed(format!(
            "convolution weights packed for `{}`, this is `{kernel_name}`",
            weights.kernel()
        )));
    }
    let [n, h, w, c] = input;
    if c != p.c_in {
        return Err(KernelError::Shape(format!("convolution input has {c} channels, weights expect {}", p.c_in)));
    }
    let [oh, ow] = p.output_hw(h, w)?;
    if output != [n, oh, ow, p.c_out] {
        return Err(KernelError::Shape(format!(
            "convolution output is {output:?}, expected {:?} (NHWC)",
            [n, oh, ow, p.c_out]
        )));
    }
    if matches!(epi.bias, Bias::PerRow(_)) {
        return Err(KernelError::Shape("convolution bias is per output channel (Bias::PerCol)".into()));
    }
    if epi.residual.is_some_and(|r| r.col_stride() != 1) {
        return Err(KernelError::Shape("convolution residual must have unit channel stride (NHWC)".into()));
    }
    epi.validate(n * oh * ow, p.c_out)?;
    Ok([n, oh, ow])
}

/// The output tensor as raw parts.
#[derive(Clone, Copy)]
struct Out {
    ptr: SharedMut,
    dims: [usize; 4],
}

/// One validated call.
struct Run<'a> {
    p: ConvParams,
    input: ImageRef<'a>,
    out: Out,
    epi: &'a Epilogue<'a>,
    par: Parallelism,
    blocking: &'a [Blocking; 2],
}

impl Run<'_> {
    /// The epilogue of output channels `j0..j0+cols` for output pixels `first + i·stride`,
    /// `i < rows`.
    fn window(&self, first: usize, rows: usize, stride: usize, j0: usize, cols: usize) -> Epilogue<'_> {
        Epilogue {
            bias: match self.epi.bias {
                Bias::PerCol(v) => Bias::PerCol(&v[j0..j0 + cols]),
                other => other,
            },
            residual: self.epi.residual.map(|r| {
                MatRef::new(&r.data()[first * r.row_stride() + j0..], rows, cols, stride * r.row_stride(), 1)
                    .expect("inside the validated residual")
            }),
            activation: self.epi.activation,
        }
    }

    /// # Safety
    /// See [`conv2d`]: output exclusively ours, `parts` one per group of this `Conv`.
    unsafe fn forward<K: Microkernel>(&self, parts: &[PackedB]) {
        let p = &self.p;
        let [n, h, w, c] = self.input.dims();
        let [_, oh, ow, c_out] = self.out.dims;
        let (cg_in, cg_out, rows) = (p.c_in_per_group(), p.c_out_per_group(), n * oh * ow);
        let pointwise = p.kernel == [1, 1] && p.strides == [1, 1] && p.pads == [0; 4];
        let offsets: Vec<(isize, isize)> = forward_taps(p).into_iter().map(|(_, d)| d).collect();
        let zeros = im2col::zeros(cg_in);
        // Many small groups (RegNet's group width 8, ResNeXt's): a task per group, each a
        // sequential GEMM; few large groups: one group after another, each GEMM split.
        let per_group = self.par == Parallelism::Threads && parts.len() >= 2 * threads::current_threads();
        let inner = if per_group { Parallelism::Sequential } else { self.par };
        let bands = row_bands(p, h, oh);
        let group = |g: usize| {
            let b = &parts[g];
            let out = RawOut { c: self.out.ptr.get().wrapping_add(g * cg_out), rs: c_out, cs: 1, m: rows, n: cg_out };
            let epi = self.window(0, rows, 1, g * cg_out, cg_out);
            let im2col = Im2col {
                input: self.input.data(),
                h,
                w,
                c,
                c0: g * cg_in,
                cg: cg_in,
                images: n,
                oh,
                ow,
                oy_offset: 0,
                stride: p.strides,
                taps: &offsets,
                zeros: &zeros,
            };
            // SAFETY: `out` is group g's column window of the exclusive output (no other
            // group's task writes it); A has `rows` rows and b's k columns (packed for these
            // attributes); the epilogue covers it.
            unsafe {
                if pointwise {
                    let a = MatRef::new(&self.input.data()[g * cg_in..], rows, cg_in, c, 1).expect("inside the input");
                    packed_gemm::<K, _>(self.blocking, &a, b, out, &epi, inner, 1, 0);
                } else if let Some(bands) = &bands {
                    // Per image and band of output rows, only the kernel rows that reach the
                    // image: taps `ky0·kw..ky1·kw`, one contiguous range of B's rows.
                    for img in 0..n {
                        for (rows, [ky0, ky1]) in bands.iter().cloned() {
                            let first = (img * oh + rows.start) * ow;
                            let m = rows.len() * ow;
                            let out = RawOut { c: out.c.wrapping_add(first * c_out), m, ..out };
                            let a = Im2col {
                                input: &self.input.data()[img * h * w * c..][..h * w * c],
                                images: 1,
                                oh: rows.len(),
                                oy_offset: rows.start,
                                taps: &offsets[ky0 * p.kernel[1]..ky1 * p.kernel[1]],
                                ..im2col
                            };
                            let epi = self.window(first, m, 1, g * cg_out, cg_out);
                            packed_gemm::<K, _>(
                                self.blocking,
                                &a,
                                b,
                                out,
                                &epi,
                                inner,
                                p.kernel[1] * cg_in,
                                ky0 * p.kernel[1] * cg_in,
                            );
                        }
                    }
                } else {
                    // One kernel row's taps are one contiguous run of the input per output pixel.
                    packed_gemm::<K, _>(self.blocking, &im2col, b, out, &epi, inner, p.kernel[1] * cg_in, 0);
                }
            }
        };
        match per_group {
            true => threads::for_each(parts.len(), group),
            false => (0..parts.len()).for_each(group),
        }
    }

    /// # Safety
    /// See [`conv2d`]: output exclusively ours, `parts` the Winograd weights of these
    /// attributes, packed for `K`.
    unsafe fn winograd<K: ConvKernel>(&self, parts: &[PackedB]) {
        let p = &self.p;
        let [n, h, w, c_in] = self.input.dims();
        let [_, oh, ow, c_out] = self.out.dims;
        let g = winograd::Geom { h, w, c_in, c_out, oh, ow, pad: [p.pads[0], p.pads[1]] };
        let tiles = n * g.tiles();
        if tiles == 0 {
            return;
        }
        let parallel = self.par == Parallelism::Threads;
        let threads = if parallel { threads::current_threads() } else { 1 };
        let l2 = crate::CacheSizes::host().l2;
        let (block, per_thread) = winograd_blocks(tiles, c_in, c_out, K::MR, threads, l2);
        let blocks = block_count(tiles, block, K::MR);
        // Block b's first tile and tile count (the last takes the remainder).
        let span = |b: usize| (b * block, if b + 1 == blocks { tiles - b * block } else { block });
        // Rows of the largest block, in whole panels (the GEMMs read whole panels of A).
        let rows_most = (0..blocks).map(|b| span(b).1).max().unwrap_or(0).next_multiple_of(K::MR);
        let (sv, sm) = (rows_most * c_in, rows_most * c_out);
        let (bias, residual) = epilogue_ptrs(self.epi);
        let (input, out) = (SharedConst(self.input.data().as_ptr()), self.out.ptr);
        // The three passes over a block's tiles `first..first + rows`, each split across the
        // threads when `split`: the input transform by tiles, the GEMMs by transform point, the
        // inverse transform by tiles. The scratch is this thread's.
        let run_block = |first: usize, rows: usize, split: bool| {
            WINOGRAD.with(|cell| {
                let mut buf = cell.borrow_mut();
                if buf.as_slice().len() < winograd::POINTS * (sv + sm) {
                    buf.resize(winograd::POINTS * (sv + sm));
                }
                let v = SharedMut(buf.as_mut_slice().as_mut_ptr());
                let m = SharedMut(v.get().wrapping_add(winograd::POINTS * sv));
                threads::for_ranges(rows, 2, split, |r| {
                    let stage = winograd::Stage::Input {
                        input: input.get(),
                        v: v.get().wrapping_add(r.start * c_in),
                        point_stride: sv,
                    };
                    // SAFETY: rows r of every point lie inside the scratch (rows_most ≥ rows) and
                    // are written by this range only; the input was checked.
                    unsafe { K::Rows::winograd(&g, &stage, first + r.start, r.len()) };
                });
                let point = |xi: usize| {
                    // SAFETY: point xi's A holds `rows_most` rows of c_in (rows past `rows` are
                    // leftovers no store reads), its C `rows` rows of c_out, written by this
                    // item only; the parts are c_in × c_out, checked for K.
                    unsafe {
                        point_gemm::<K>(v.get().add(xi * sv), c_in, rows, &parts[xi], m.get().add(xi * sm), c_out)
                    };
                };
                match split {
                    true => threads::for_each(winograd::POINTS, point),
                    false => (0..winograd::POINTS).for_each(point),
                }
                threads::for_ranges(rows, 2, split, |r| {
                    let stage = winograd::Stage::Output {
                        m: m.get().wrapping_add(r.start * c_out),
                        point_stride: sm,
                        out: out.get(),
                        bias: bias.get(),
                        residual: residual.map_or(std::ptr::null(), |(r, _)| r.get()),
                        residual_stride: residual.map_or(0, |(_, rs)| rs),
                        activation: self.epi.activation,
                    };
                    // SAFETY: rows r of every point were computed above; their tiles' output
                    // pixels are written by this range only, inside the exclusive output.
                    unsafe { K::Rows::winograd(&g, &stage, first + r.start, r.len()) };
                });
            })
        };
        match per_thread {
            // Each thread runs whole blocks in its own scratch: no pass waits for the others,
            // and no transform domain moves between cores (only the shared weights are read
            // by both).
            true => threads::for_each(blocks, |b| {
                let (first, rows) = span(b);
                run_block(first, rows, false)
            }),
            false => (0..blocks).for_each(|b| {
                let (first, rows) = span(b);
                run_block(first, rows, parallel)
            }),
        }
    }

    /// # Safety
    /// See [`conv2d`]: output exclusively ours, `w` the direct grouped weights of these
    /// attributes, whose groups fit in 4 of `K`'s or `K::Wide`'s vectors (checked there).
    unsafe fn grouped<K: ConvKernel>(&self, w: &[f32]) {
        let p = &self.p;
        let [n, h, w_in, c_in] = self.input.dims();
        let [_, oh, ow, c_out] = self.out.dims;
        let zeros = vec![0.0; c_in];
        let (bias, residual) = epilogue_ptrs(self.epi);
        let g = grouped::Geom {
            input: self.input.data().as_ptr(),
            h,
            w: w_in,
            c_in,
            zeros: zeros.as_ptr(),
            weights: w.as_ptr(),
            groups: p.groups,
            kernel: p.kernel,
            stride: p.strides,
            dilation: p.dilations,
            pad: [p.pads[0], p.pads[1]],
            out: self.out.ptr.get(),
            oh,
            ow,
            c_out,
            bias: bias.get(),
            residual: residual.map_or(std::ptr::null(), |(r, _)| r.get()),
            residual_stride: residual.map_or(0, |(_, rs)| rs),
            activation: self.epi.activation,
        };
        let g = SharedGeom(g);
        let main = grouped_vectors::<K>(p.c_out_per_group()) == Some(true);
        let units = (n * oh * ow).div_ceil(grouped::PIXEL_UNIT);
        threads::for_ranges(units, 4, self.par == Parallelism::Threads, |r| {
            let first = r.start * grouped::PIXEL_UNIT;
            let pixels = (r.end * grouped::PIXEL_UNIT).min(n * oh * ow) - first;
            // SAFETY: the geometry's pointers cover the checked images, weights and epilogue;
            // pixels first..first+pixels are written by this range only; conv2d checked that
            // a group's outputs fit in 4 vectors of the kernel chosen.
            unsafe {
                match main {
                    true => K::Rows::grouped(g.get(), first, pixels),
                    false => K::WideRows::grouped(g.get(), first, pixels),
                }
            }
        });
    }

    /// # Safety
    /// See [`conv2d`]: output exclusively ours, `dw` the depthwise weights of these attributes.
    unsafe fn depthwise<K: ConvKernel>(&self, dw: &[f32]) {
        let p = &self.p;
        let [n, h, w, c] = self.input.dims();
        let [_, oh, ow, c_out] = self.out.dims;
        let streamed = h * w * c * std::mem::size_of::<f32>() > crate::CacheSizes::host().l3 / 2;
        let geom = DwGeom::new(p, [h, w], ow, self.epi.activation, streamed);
        let (bias, residual) = epilogue_ptrs(self.epi);
        let (input, out) = (SharedConst(self.input.data().as_ptr()), self.out.ptr);
        let bands = oh.div_ceil(BAND);
        let band = |idx: usize| {
            let (img, oy) = (idx / bands, idx % bands * BAND);
            let pixel = (img * oh + oy) * ow; // first output pixel of the band
            let r = DwRow {
                input: input.get().wrapping_add(img * h * w * c),
                weights: dw.as_ptr(),
                out: out.get().wrapping_add(pixel * c_out),
                bias: bias.get(),
                residual: residual.map_or(std::ptr::null(), |(r, rs)| r.get().wrapping_add(pixel * rs)),
                residual_stride: residual.map_or(0, |(_, rs)| rs),
                oy,
                rows: BAND.min(oh - oy),
            };
            // SAFETY: the band's pointers lie inside the validated input, output, residual and
            // weights; each band is written by this task only.
            unsafe { K::Rows::depthwise_rows(&geom, &r) };
        };
        match self.par {
            Parallelism::Threads => threads::for_each(n * bands, band),
            _ => (0..n * bands).for_each(band),
        }
    }

    /// # Safety
    /// See [`conv2d`]: output exclusively ours, `parts` one per (phase, group).
    unsafe fn transposed<K: Microkernel>(&self, parts: &[PackedB]) {
        let p = &self.p;
        let [n, h, w, c] = self.input.dims();
        let [_, oh, ow, c_out] = self.out.dims;
        let (cg_in, cg_out, [sh, sw]) = (p.c_in_per_group(), p.c_out_per_group(), p.strides);
        let phases = transposed_phases(p);
        let zeros = im2col::zeros(cg_in);
        // (phase, group, image, phase row): each writes one interleaved output row window.
        let mut items = Vec::new();
        for (pi, ph) in phases.iter().enumerate() {
            let [py, px] = ph.phase;
            if py >= oh || px >= ow {
                continue;
            }
            for g in 0..p.groups {
                for img in 0..n {
                    for t in 0..(oh - py).div_ceil(sh) {
                        items.push((pi, g, img, t));
                    }
                }
            }
        }
        let out_ptr = self.out.ptr;
        let item = |&(pi, g, img, t): &(usize, usize, usize, usize)| {
            let ph = &phases[pi];
            let [py, px] = ph.phase;
            let tw = (ow - px).div_ceil(sw);
            let first = (img * oh + py + t * sh) * ow + px; // first output pixel of the window
            let a = Im2col {
                input: &self.input.data()[img * h * w * c..][..h * w * c],
                h,
                w,
                c,
                c0: g * cg_in,
                cg: cg_in,
                images: 1,
                oh: 1,
                ow: tw,
                oy_offset: t,
                stride: [1, 1],
                taps: &ph.offsets,
                zeros: &zeros,
            };
            let out = RawOut {
                c: out_ptr.get().wrapping_add(first * c_out + g * cg_out),
                rs: sw * c_out,
                cs: 1,
                m: tw,
                n: cg_out,
            };
            let epi = self.window(first, tw, sw, g * cg_out, cg_out);
            // SAFETY: the window (tw pixels sw apart, group g's channels) lies inside the
            // exclusive output, and no other item writes it (items differ in phase, group,
            // image or row); the part was packed for this phase and group.
            unsafe {
                packed_gemm::<K, _>(
                    self.blocking,
                    &a,
                    &parts[pi * p.groups + g],
                    out,
                    &epi,
                    Parallelism::Sequential,
                    cg_in,
                    0,
                )
            };
        };
        match self.par {
            Parallelism::Threads => threads::for_each(items.len(), |i| item(&items[i])),
            _ => items.iter().for_each(item),
        }
    }
}

/// `out = epilogue(a·b)` with the tile `b` was packed for: `K`'s, or the wide one's
/// (`blocking` holds both tiles' blocking). K passes hold whole multiples of `kc_unit`
/// columns (see [`Blocking::for_depth`]); A's column 0 multiplies row `b_k0` of `b`.
///
/// # Safety
/// As [`run`]; `b` was checked against `K` and `K::Wide` ([`check_parts`]).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn packed_gemm<K: Microkernel, A: ASource>(
    blocking: &[Blocking; 2],
    a: &A,
    b: &PackedB,
    out: RawOut,
    epi: &Epilogue<'_>,
    par: Parallelism,
    kc_unit: usize,
    b_k0: usize,
) {
    let wide = b.nr() != K::NR;
    let blocking = &blocking[usize::from(wide)];
    // SAFETY: forwarded from this function's contract.
    unsafe {
        if wide {
            run::<K::Wide, A>(blocking, kc_unit, b_k0, a, BOperand::Packed(b), out, epi, par)
        } else {
            run::<K, A>(blocking, kc_unit, b_k0, a, BOperand::Packed(b), out, epi, par)
        }
    }
}

/// Tiles per Winograd block, and whether `threads` threads run whole blocks each (true) or
/// split every block's passes between them (false).
///
/// A block's transform domain (in and out) fills half of L2 (`l2` bytes), or more where the
/// weights are large: each block streams all 36 weight matrices once, which costs about as much
/// as `c_in·c_out / (2·(c_in + c_out))` tiles of transforms (`overhead`), so a block has at
/// least that many tiles. Blocks are whole row panels of `mr` tiles, and a map that fits is one
/// block. With several threads, whole blocks per thread avoid three barriers per block and the
/// transform domain crossing cores; they are chosen when the slowest thread's share (blocks of
/// the best size for the thread count, each with its weight stream) is within 20 % of an even
/// split of the shared blocks' work, which holds on large maps and not on maps of a block or two.
/// A map of at most two shared blocks per thread runs as one block per thread where whole
/// panels split it within 10 % of evenly: its weights then stream once per thread. A last
/// remainder of less than a panel joins the block before it ([`block_count`]).
fn winograd_blocks(tiles: usize, c_in: usize, c_out: usize, mr: usize, threads: usize, l2: usize) -> (usize, bool) {
    let per_tile = winograd::POINTS * (c_in + c_out) * std::mem::size_of::<f32>();
    let fit = l2 / 2 / per_tile;
    let overhead = c_in * c_out / (2 * (c_in + c_out));
    let most = fit.max(overhead);
    // One block when the map fits (its last panel partial), else whole panels.
    let shared = if most >= tiles { tiles.div_ceil(mr) * mr } else { (most / mr).max(1) * mr };
    if threads <= 1 {
        return (shared, false);
    }
    let even = (tiles + block_count(tiles, shared, mr) * overhead) as f64 / threads as f64;
    // The thread with the most blocks, the last block's extra rows counted once.
    let slowest = |block: usize| {
        let count = block_count(tiles, block, mr);
        count.div_ceil(threads) * (block + overhead) + tiles.saturating_sub(count * block)
    };
    // One block per thread, at most twice the shared block (its transform domain then fills L2
    // instead of half of it), where whole panels split the map within 10 % of evenly.
    let one_each = tiles.div_ceil(threads).next_multiple_of(mr);
    let even_once = tiles as f64 / threads as f64 + overhead as f64;
    if one_each > shared && one_each <= 2 * shared && (one_each + overhead) as f64 <= 1.1 * even_once {
        return (one_each, true);
    }
    let best = (1..=(shared / mr)).map(|p| p * mr).min_by_key(|&b| (slowest(b), usize::MAX - b));
    match best {
        Some(b) if slowest(b) as f64 <= 1.2 * even => (b, true),
        _ => (shared, false),
    }
}

/// How many blocks of `block` tiles cover `tiles`: a remainder of less than a panel (`mr`
/// tiles) joins the block before it instead of streaming every weight matrix again for a few
/// tiles (49 tiles in blocks of 24: two blocks, of 24 and 25).
fn block_count(tiles: usize, block: usize, mr: usize) -> usize {
    match tiles / block {
        whole if whole > 0 && tiles % block < mr => whole,
        _ => tiles.div_ceil(block),
    }
}

thread_local! {
    /// A Winograd block's transform domain, in and out.
    static WINOGRAD: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::default());
}

/// `c = a·b` for `rows` rows of `a` (row stride `lda`, `b.k()` columns, readable up to a whole
/// number of row panels) into `c` (row stride `ldc`), B panel by B panel so that each panel
/// stays in L1 while every row panel passes over it. A last panel of at most `MR/3` rows runs
/// one row tile per row instead of a whole register tile.
///
/// # Safety
/// The CPU supports K; `a` holds `rows.next_multiple_of(K::MR)` rows; `c` has `rows` writable
/// rows of `b.n()` values; `b` was packed at `K::NR`.
unsafe fn point_gemm<K: Microkernel>(a: *const f32, lda: usize, rows: usize, b: &PackedB, c: *mut f32, ldc: usize) {
    let (k, n, nr) = (b.k(), b.n(), b.nr());
    for (panel, j0) in (0..n).step_by(nr).enumerate() {
        let bp = b.data()[panel * k * nr..].as_ptr();
        let cols = nr.min(n - j0);
        for r0 in (0..rows).step_by(K::MR) {
            let panel_rows = K::MR.min(rows - r0);
            if panel_rows <= K::MR / 3 {
                for r in r0..rows {
                    let out = TileOut { c: c.wrapping_add(r * ldc + j0), ldc, rows: 1, cols };
                    // SAFETY: row r of a holds k values; a k × nr panel at bp; one row of c.
                    unsafe { K::tile_row(k, a.add(r * lda), bp, &out, false, None) };
                }
                continue;
            }
            let out = TileOut { c: c.wrapping_add(r0 * ldc + j0), ldc, rows: panel_rows, cols };
            // SAFETY: MR rows of k values at a + r0·lda (the caller pads to whole panels); a
            // k × nr panel at bp; the tile's corner inside c.
            unsafe {
                if cols <= K::NARROW && K::NARROW < K::NR {
                    K::tile_direct_narrow(k, a.add(r0 * lda), lda, bp, &out, false, None);
                } else {
                    K::tile_direct(k, a.add(r0 * lda), lda, bp, &out, false, None);
                }
            }
        }
    }
}

/// Bands of output rows that read the same kernel rows `[ky0, ky1)` (the others fall in the
/// padding), where skipping those saves a quarter of the work or more (DeepLab's ASPP: a 3×3
/// convolution dilated 12 on a 16×16 map reads one kernel row for half the output rows);
/// `None` where one band would do.
#[allow(clippy::type_complexity)]
fn row_bands(p: &ConvParams, h: usize, oh: usize) -> Option<Vec<(std::ops::Range<usize>, [usize; 2])>> {
    let reach = |oy: usize| {
        let inside =
            |ky: usize| (oy * p.strides[0] + ky * p.dilations[0]).checked_sub(p.pads[0]).is_some_and(|iy| iy < h);
        let ky0 = (0..p.kernel[0]).find(|&ky| inside(ky)).unwrap_or(p.kernel[0]);
        let ky1 = (ky0..p.kernel[0]).take_while(|&ky| inside(ky)).last().map_or(ky0, |ky| ky + 1);
        [ky0, ky1]
    };
    let reaches: Vec<[usize; 2]> = (0..oh).map(reach).collect();
    let useful: usize = reaches.iter().map(|[ky0, ky1]| ky1 - ky0).sum();
    if 4 * useful > 3 * oh * p.kernel[0] {
        return None;
    }
    let mut bands: Vec<(std::ops::Range<usize>, [usize; 2])> = Vec::new();
    for (oy, r) in reaches.into_iter().enumerate() {
        match bands.last_mut() {
            Some((rows, last)) if *last == r => rows.end = oy + 1,
            _ => bands.push((oy..oy + 1, r)),
        }
    }
    Some(bands)
}

/// The per-channel bias (null when there is none) and the residual with its pixel stride, as
/// raw pointers for the kernels that apply the epilogue themselves.
pub(super) fn epilogue_ptrs(epi: &Epilogue<'_>) -> (SharedConst, Option<(SharedConst, usize)>) {
    let bias = match epi.bias {
        Bias::PerCol(v) => v.as_ptr(),
        _ => std::ptr::null(),
    };
    let residual = epi.residual.map(|r| (SharedConst(r.data().as_ptr()), r.row_stride()));
    (SharedConst(bias), residual)
}

/// Which vectors the direct grouped kernel runs groups of `cg` output channels on: the main
/// tile's (`Some(true)`) where 4 of them hold a group whole, else the wide tile's
/// (`Some(false)`; AVX-512: 16-lane vectors for groups of 16 or 32, 8-lane ones for 8 or 24)
/// where 4 of them hold it; `None` where neither does.
fn grouped_vectors<K: Microkernel>(cg: usize) -> Option<bool> {
    if cg.is_multiple_of(K::NARROW) && cg <= 4 * K::NARROW {
        Some(true)
    } else {
        (cg <= 4 * K::Wide::NARROW).then_some(false)
    }
}

/// The direct grouped kernel's geometry, shared by the tasks.
struct SharedGeom(grouped::Geom);

impl SharedGeom {
    /// The geometry (a method, so that closures capture the whole `Sync` wrapper).
    fn get(&self) -> &grouped::Geom {
        &self.0
    }
}

// SAFETY: the pointers are only read through, except the output, which the tasks write in
// disjoint pixel ranges, while the borrowed tensors live.
unsafe impl Send for SharedGeom {}
// SAFETY: as above.
unsafe impl Sync for SharedGeom {}

/// A read-only raw pointer shared by the tasks.
#[derive(Clone, Copy)]
pub(super) struct SharedConst(*const f32);

impl SharedConst {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    pub(super) fn get(self) -> *const f32 {
        self.0
    }
}
// SAFETY: only read through, while the borrowed input lives.
unsafe impl Send for SharedConst {}
// SAFETY: as above.
unsafe impl Sync for SharedConst {}

#[cfg(test)]
mod tests {
    use super::{block_count, row_bands, winograd_blocks};
    use crate::conv::params::ConvParams;

    #[test]
    fn row_bands_skip_kernel_rows_in_the_padding_only_where_that_saves_a_quarter() {
        // DeepLab's ASPP: 3×3 dilated 12 on a 16×16 map.
        let aspp = ConvParams { dilations: [12, 12], pads: [12; 4], ..ConvParams::new(8, 8, [3, 3]) };
        let bands = row_bands(&aspp, 16, 16).expect("bands");
        assert_eq!(bands, vec![(0..4, [1, 3]), (4..12, [1, 2]), (12..16, [0, 2])]);
        // Rows of padding only read no kernel row.
        let padded = ConvParams { pads: [2, 0, 2, 0], ..ConvParams::new(8, 8, [1, 1]) };
        assert_eq!(row_bands(&padded, 3, 7).expect("bands"), vec![(0..2, [1, 1]), (2..5, [0, 1]), (5..7, [1, 1])]);
        // An ordinary padded 3×3 loses a third of a kernel on two rows: one band.
        let plain = ConvParams { pads: [1; 4], ..ConvParams::new(8, 8, [3, 3]) };
        assert_eq!(row_bands(&plain, 16, 16), None);
    }

    #[test]
    fn a_remainder_of_less_than_a_panel_joins_the_last_block() {
        assert_eq!(block_count(48, 24, 12), 2);
        assert_eq!(block_count(59, 24, 12), 2);
        assert_eq!(block_count(60, 24, 12), 3);
        // A map smaller than one block is one block.
        assert_eq!(block_count(5, 24, 12), 1);
        assert_eq!(block_count(24, 24, 12), 1);
    }

    #[test]
    fn winograd_blocks_go_to_threads_whole_on_large_maps_only() {
        const MB: usize = 1 << 20;
        // One thread: the block whose transform domain fills half of L2, in whole panels.
        // ResNet-18's 64-channel layer at 56×56 (196 tiles): 28 tiles fit, 24 in panels of 12.
        assert_eq!(winograd_blocks(196, 64, 64, 12, 1, MB), (24, false));
        // Two threads: nine blocks of 24, five on the slower thread (5 · (24 + 16) = 200 ≤
        // 1.2 · 170), so whole blocks per thread.
        assert_eq!(winograd_blocks(196, 64, 64, 12, 2, MB), (24, true));
        // A 256-channel layer at 14×14 (16 tiles, 9.4 MB of weights): one block (its weights
        // streamed once), shared.
        assert_eq!(winograd_blocks(16, 256, 256, 12, 2, MB), (24, false));
        // 128 channels at 28×28 (49 tiles): blocks of 24, the last tile joining the second
        // block, one block per thread.
        assert_eq!(winograd_blocks(49, 128, 128, 12, 2, MB), (24, true));
        assert_eq!(block_count(49, 24, 12), 2);
        // 64 tiles at 64 channels: shared blocks of 24 would be three (16 tiles left over);
        // one block of 36 per thread splits them as 36 and 28 (36 + 16 against 32 + 16 for an
        // even split), each thread streaming the weights once.
        assert_eq!(winograd_blocks(64, 64, 64, 12, 2, MB), (36, true));
        assert_eq!(block_count(64, 24, 12), 3);
        assert_eq!(winograd_blocks(64, 64, 64, 12, 1, MB), (24, false));
        // On maps of more than two shared blocks per thread, per-thread blocks are whole panels
        // and never larger than the shared block.
        for (tiles, c, threads) in [(512, 16, 2), (1600, 32, 4), (196, 64, 3)] {
            let (shared, _) = winograd_blocks(tiles, c, c + 8, 12, 1, MB);
            let (block, whole) = winograd_blocks(tiles, c, c + 8, 12, threads, MB);
            assert!(whole, "{tiles} tiles, {c} channels, {threads} threads");
            assert!(block % 12 == 0 && block <= shared, "{block} vs {shared}");
        }
    }
}
