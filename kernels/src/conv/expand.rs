//! A pointwise convolution whose result feeds a depthwise one (the expansion and depthwise
//! convolutions of a mobile CNN's inverted residual block), run as one: the expanded tensor,
//! the largest of such a block (MobileNetV2's second block: 96 channels at 112×112, 4.8 MB),
//! is never written whole.
//!
//! Each thread takes a contiguous share of the output rows and walks it band by band. For a
//! band it computes the expanded input rows the band reads (the expansion's GEMM with its
//! epilogue) into a buffer sized to stay in L2, keeping the rows the previous band computed
//! and this one reads again, then runs the depthwise kernel on the buffer. Rows are computed
//! twice only where two threads' shares meet. Every value comes from the same kernels in the
//! same order as the two convolutions apart, so the results are bitwise the same.

use std::ops::Range;

use super::depthwise::{DwGeom, DwRow, BAND};
use super::driver::{check_call, check_parts, epilogue_ptrs, packed_gemm, SharedConst};
use super::image::{ImageMut, ImageRef};
use super::packed::{Body, PackedConv};
use super::params::ConvParams;
use super::{ConvKernel, ConvRows};
use crate::aligned::AlignedBuf;
use crate::blocking::Blocking;
use crate::epilogue::Epilogue;
use crate::error::{KernelError, Result};
use crate::gemm::driver::{RawOut, SharedMut};
use crate::gemm::Microkernel;
use crate::mat::MatRef;
use crate::pack::PackedB;
use crate::{threads, Parallelism};

thread_local! {
    /// A thread's band of expanded rows.
    static EXPANDED: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::default());
}

/// Validates the call, then computes `output = depthwise(expand(input))` with each
/// convolution's epilogue (the expansion's without a residual), in bands of output rows whose
/// expanded rows fill half of L2.
pub(crate) fn expand_depthwise<K: ConvKernel>(
    kernel_name: &str,
    blocking: &[Blocking; 2],
    input: ImageRef<'_>,
    convs: [(&PackedConv, &Epilogue<'_>); 2],
    output: ImageMut<'_>,
    par: Parallelism,
) -> Result<()> {
    let row = input.dims()[2].saturating_mul(convs[0].0.params().c_out);
    let rows = band_rows(convs[1].0.params(), row, crate::CacheSizes::host().l2);
    in_bands::<K>(kernel_name, blocking, input, convs, output, par, rows)
}

/// [`expand_depthwise`] in bands of `rows` output rows.
fn in_bands<K: ConvKernel>(
    kernel_name: &str,
    blocking: &[Blocking; 2],
    input: ImageRef<'_>,
    [(expand, expand_epi), (depthwise, epi)]: [(&PackedConv, &Epilogue<'_>); 2],
    mut output: ImageMut<'_>,
    par: Parallelism,
    rows: usize,
) -> Result<()> {
    let (part, dw) = check::<K>(kernel_name, &input, [(expand, expand_epi), (depthwise, epi)], output.dims())?;
    let (pe, pd) = (*expand.params(), *depthwise.params());
    let [n, h, w, _] = input.dims();
    let [_, oh, ow, _] = output.dims();
    if n * oh * ow == 0 {
        return Ok(());
    }
    let f = Fused {
        blocking,
        input,
        part,
        expand_epi,
        mr: if part.nr() == K::NR { K::MR } else { <K::Wide as Microkernel>::MR },
        dw,
        geom: DwGeom::new(&pd, [h, w], ow, epi.activation, false),
        pd,
        epi: epilogue_ptrs(epi),
        out: SharedMut(output.as_mut_ptr()),
        dims: [n, h, w, pe.c_in, pe.c_out, oh, ow],
        rows: rows.max(1),
    };
    // SAFETY: `check` validated the call; the shares cover the output rows once each.
    threads::for_ranges(n * oh, 1, par == Parallelism::Threads, |share| unsafe { f.share::<K>(share) });
    Ok(())
}

/// Checks what the fused kernel takes: a pointwise expansion without a residual, packed for
/// `K` or its wide tile, feeding a depthwise convolution, each call's shapes as
/// [`check_call`] wants them. Returns the expansion's GEMM part and the depthwise weights.
fn check<'a, K: ConvKernel>(
    kernel_name: &str,
    input: &ImageRef<'_>,
    [(expand, expand_epi), (depthwise, epi)]: [(&'a PackedConv, &Epilogue<'_>); 2],
    output: [usize; 4],
) -> Result<(&'a PackedB, &'a [f32])> {
    let pe = *expand.params();
    let part = match expand.body() {
        Body::Gemm(parts) if pe.is_pointwise() && parts.len() == 1 => &parts[0],
        _ => {
            return Err(KernelError::Shape(format!(
                "the expansion of a fused expand-depthwise convolution must be pointwise (1×1, stride 1, unpadded, one group); got {pe:?}"
            )))
        }
    };
    let Body::Depthwise(dw) = depthwise.body() else {
        return Err(KernelError::Shape(format!(
            "the second convolution of a fused expand-depthwise convolution must be packed as depthwise; got {:?}",
            depthwise.params()
        )));
    };
    no_expansion_residual(expand_epi)?;
    let [n, h, w, _] = input.dims();
    let mid = [n, h, w, pe.c_out];
    check_call(kernel_name, input.dims(), expand, mid, expand_epi)?;
    check_parts::<K>(kernel_name, std::slice::from_ref(part))?;
    check_call(kernel_name, mid, depthwise, output, epi)?;
    Ok((part, dw))
}

/// Refuses a residual on the expansion (the fused kernel has nowhere to add it; every set's
/// [`crate::KernelSet::conv2d_expand_depthwise`] refuses it alike).
pub(crate) fn no_expansion_residual(expand_epi: &Epilogue<'_>) -> Result<()> {
    match expand_epi.residual {
        Some(_) => {
            Err(KernelError::Shape("the expansion of a fused expand-depthwise convolution takes no residual".into()))
        }
        None => Ok(()),
    }
}

/// One checked call, shared by the threads.
struct Fused<'a> {
    blocking: &'a [Blocking; 2],
    input: ImageRef<'a>,
    /// The expansion's packed weights, epilogue, and the row panel height of its tile.
    part: &'a PackedB,
    expand_epi: &'a Epilogue<'a>,
    mr: usize,
    /// The depthwise convolution's weights, geometry, attributes and epilogue pointers.
    dw: &'a [f32],
    geom: DwGeom,
    pd: ConvParams,
    epi: (SharedConst, Option<(SharedConst, usize)>),
    out: SharedMut,
    /// `[n, h, w, c_in, c_mid, oh, ow]`.
    dims: [usize; 7],
    /// Output rows per band.
    rows: usize,
}

impl Fused<'_> {
    /// Computes output rows `share` (over every image) band by band in this thread's buffer.
    ///
    /// # Safety
    /// The call was checked ([`check`]); no other thread writes these output rows.
    unsafe fn share<K: ConvKernel>(&self, share: Range<usize>) {
        let [_, h, w, _, c, oh, _] = self.dims;
        EXPANDED.with(|cell| {
            let mut buf = cell.borrow_mut();
            let span = (self.pd.kernel[0] - 1) * self.pd.dilations[0] + 1;
            let margin = self.mr * c;
            // The banded depthwise kernel reads a band of one row as if it had `BAND` (and
            // discards the second), so the buffer holds what whole `BAND`s read; those extra
            // rows are readable, never computed, and never reach an output.
            let reads = (self.rows.next_multiple_of(BAND) - 1) * self.pd.strides[0] + span;
            let need = reads.min(h).max(1) * w * c + 2 * margin;
            if buf.as_slice().len() < need {
                buf.resize(need);
            }
            // The rows start `margin` values in: a band's GEMM may start up to a row panel
            // before its first row and end up to one after its last.
            let buf = buf.as_mut_slice().as_mut_ptr().wrapping_add(margin);
            // The image and input rows the buffer holds, from its start.
            let mut held: Option<(usize, Range<usize>)> = None;
            let mut first = share.start;
            while first < share.end {
                let (img, oy) = (first / oh, first % oh);
                let band = self.rows.min(oh - oy).min(share.end - first);
                let want = reach(&self.pd, h, oy, band);
                // Rows the previous band left at the end of the buffer move to its start.
                let kept = match held {
                    Some((i, r)) if i == img && r.contains(&want.start) => {
                        let row = w * c;
                        // SAFETY: both ranges lie in the buffer (it held `r`, and `want`
                        // starts inside it); `copy` allows the overlap.
                        unsafe {
                            std::ptr::copy(buf.add((want.start - r.start) * row), buf, (r.end - want.start) * row)
                        };
                        r.end
                    }
                    _ => want.start,
                };
                // SAFETY: the buffer holds the band's reach from `want.start` (sized above).
                unsafe { self.expand::<K>(buf, img, kept..want.end, want.start) };
                held = Some((img, want.start..want.end.max(kept)));
                // The buffer as the image's rows: row `want.start` at its start. The kernel
                // reads only rows of `want` (the band's reach), which the buffer holds.
                let image = buf.wrapping_sub(want.start * w * c).cast_const();
                // SAFETY: as above; the band's output rows are this share's.
                unsafe { self.depthwise::<K>(image, img, oy, band) };
                first += band;
            }
        })
    }

    /// The expanded input rows `fresh` of image `img` into `buf`, whose start holds row
    /// `start`. The rows' pixels are widened to whole row panels of the tensor's pixel matrix
    /// (its end excepted): the tiles, and so the bits, are those of one GEMM over the whole
    /// tensor (a partial panel of a few rows sums in another order, see
    /// `gemm::tile::tile_row`). The widening recomputes held pixels (same bits) or fills the
    /// margins.
    ///
    /// # Safety
    /// `buf` holds rows `start..fresh.end` and a row panel's margin on either side; nothing
    /// else writes it.
    unsafe fn expand<K: ConvKernel>(&self, buf: *mut f32, img: usize, fresh: Range<usize>, start: usize) {
        if fresh.is_empty() {
            return;
        }
        let [n, h, w, c_in, c, ..] = self.dims;
        let pixel = |y: usize| (img * h + y) * w;
        let (p0, p1) =
            (pixel(fresh.start) / self.mr * self.mr, pixel(fresh.end).next_multiple_of(self.mr).min(n * h * w));
        let a = MatRef::row_major(&self.input.data()[p0 * c_in..p1 * c_in], p1 - p0, c_in)
            .expect("inside the checked input");
        let o = RawOut { c: buf.wrapping_add(p0 * c).wrapping_sub(pixel(start) * c), rs: c, cs: 1, m: p1 - p0, n: c };
        let seq = Parallelism::Sequential;
        // SAFETY: the pixels lie in the buffer and its margins (the caller's contract); the
        // part was checked for K; the epilogue was validated for the whole expanded tensor,
        // and a per-channel bias holds for any of its rows.
        unsafe { packed_gemm::<K, _>(self.blocking, &a, self.part, o, self.expand_epi, seq, 1, 0) };
    }

    /// Output rows `oy..oy + band` of image `img` from `image`, the expanded image's rows as
    /// the buffer holds them.
    ///
    /// # Safety
    /// `image` holds every row the band's kernel windows read; the rows are written by this
    /// thread only.
    unsafe fn depthwise<K: ConvKernel>(&self, image: *const f32, img: usize, oy: usize, band: usize) {
        let [.., oh, ow] = self.dims;
        let (bias, residual) = self.epi;
        for j in (0..band).step_by(BAND) {
            let pixel = (img * oh + oy + j) * ow;
            let r = DwRow {
                input: image,
                weights: self.dw.as_ptr(),
                out: self.out.get().wrapping_add(pixel * self.pd.c_out),
                bias: bias.get(),
                residual: residual.map_or(std::ptr::null(), |(r, rs)| r.get().wrapping_add(pixel * rs)),
                residual_stride: residual.map_or(0, |(_, rs)| rs),
                oy: oy + j,
                rows: BAND.min(band - j),
            };
            // SAFETY: the rows `r` reads are in `image`; its output and residual pixels lie
            // inside the checked tensors (the caller's contract).
            unsafe { K::Rows::depthwise_rows(&self.geom, &r) };
        }
    }
}

/// The input rows that output rows `oy..oy + rows` of depthwise convolution `p` read on maps
/// of `h` rows (rows in the padding excluded).
fn reach(p: &ConvParams, h: usize, oy: usize, rows: usize) -> Range<usize> {
    let top = |oy: usize| (oy * p.strides[0]) as isize - p.pads[0] as isize;
    let lo = top(oy).clamp(0, h as isize) as usize;
    let last = top(oy + rows - 1) + ((p.kernel[0] - 1) * p.dilations[0]) as isize;
    let hi = (last + 1).clamp(lo as isize, h as isize) as usize;
    lo..hi
}

/// Output rows per band: as many as keep the band's expanded input rows (`row` values each)
/// within half of an `l2`-byte L2 cache, at least one.
fn band_rows(p: &ConvParams, row: usize, l2: usize) -> usize {
    let span = (p.kernel[0] - 1) * p.dilations[0] + 1;
    let fit = l2 / 2 / (row * std::mem::size_of::<f32>()).max(1);
    (fit.saturating_sub(span) / p.strides[0] + 1).max(1)
}

#[cfg(test)]
mod tests {
    use super::{band_rows, in_bands, reach};
    use crate::conv::driver::conv2d;
    use crate::conv::params::ConvParams;
    use crate::conv::{ImageMut, ImageRef, PackedConv};
    use crate::epilogue::{Activation, Bias, Epilogue};
    use crate::mat::MatRef;
    use crate::scalar::ScalarF32_4x8 as K;
    use crate::{Blocking, Parallelism};

    /// Bands of every height from one row to the whole map, on maps where bands meet in the
    /// middle of a kernel window, at strides 1 and 2, dilated, with a channel multiplier, a
    /// residual and two images (bands never straddle them): bitwise what the two
    /// convolutions give, every output written.
    #[test]
    fn every_band_height_gives_the_two_convolutions_bits() {
        let blocking = [Blocking { kc: 5, mc: 8, nc: 16 }; 2];
        let name = "scalar";
        let widths = crate::PanelWidths { nr: 8, wide: None, half_width_wide: false };
        let value = |i: usize| ((i * 7919) % 23) as f32 / 11.0 - 1.0;
        for (kernel, stride, dilation, pads, mult) in [
            ([3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 1),
            ([3, 3], [2, 2], [1, 1], [1, 1, 1, 1], 1),
            ([5, 3], [2, 1], [1, 1], [2, 1, 2, 1], 1),
            ([3, 3], [1, 1], [2, 2], [2, 0, 1, 2], 2),
            ([3, 5], [1, 2], [1, 1], [0, 2, 3, 0], 1),
        ] {
            let (n, h, w, c_in, mid) = (2, 11, 6, 3, 10);
            let pe = ConvParams::new(c_in, mid, [1, 1]);
            let pd = ConvParams {
                kernel,
                strides: stride,
                dilations: dilation,
                pads,
                groups: mid,
                ..ConvParams::new(mid, mid * mult, kernel)
            };
            let we: Vec<f32> = (0..pe.weight_len()).map(value).collect();
            let wd: Vec<f32> = (0..pd.weight_len()).map(|i| value(i + 5)).collect();
            let expand = PackedConv::pack(name, widths, &pe, &we, None).expect("pack");
            let depthwise = PackedConv::pack(name, widths, &pd, &wd, None).expect("pack");
            let x: Vec<f32> = (0..n * h * w * c_in).map(|i| value(i + 11)).collect();
            let [oh, ow] = pd.output_hw(h, w).expect("fits");
            let out_dims = [n, oh, ow, pd.c_out];
            let len = n * oh * ow * pd.c_out;
            let (be, bd): (Vec<f32>, Vec<f32>) = ((0..mid).map(value).collect(), (0..pd.c_out).map(value).collect());
            let res: Vec<f32> = (0..len).map(|i| value(i + 3)).collect();
            let e_epi = Epilogue {
                bias: Bias::PerCol(&be),
                residual: None,
                activation: Activation::Clip { min: 0.0, max: 6.0 },
            };
            let d_epi = Epilogue {
                bias: Bias::PerCol(&bd),
                residual: Some(MatRef::row_major(&res, n * oh * ow, pd.c_out).expect("view")),
                activation: Activation::HardSwish,
            };
            let input = ImageRef::new(&x, [n, h, w, c_in]).expect("input");
            let mut mid_t = vec![f32::NAN; n * h * w * mid];
            let mut want = vec![f32::NAN; len];
            let seq = Parallelism::Sequential;
            let mid_dims = [n, h, w, mid];
            conv2d::<K>(
                name,
                &blocking,
                input,
                &expand,
                ImageMut::new(&mut mid_t, mid_dims).expect("mid"),
                &e_epi,
                seq,
            )
            .expect("expansion");
            let mid_in = ImageRef::new(&mid_t, mid_dims).expect("mid");
            conv2d::<K>(
                name,
                &blocking,
                mid_in,
                &depthwise,
                ImageMut::new(&mut want, out_dims).expect("out"),
                &d_epi,
                seq,
            )
            .expect("depthwise");
            for rows in 1..=oh {
                let mut got = vec![f32::NAN; len];
                let convs = [(&expand, &e_epi), (&depthwise, &d_epi)];
                let out = ImageMut::new(&mut got, out_dims).expect("out");
                in_bands::<K>(name, &blocking, input, convs, out, seq, rows).expect("fused");
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{kernel:?} stride {stride:?} dilation {dilation:?} pads {pads:?}, bands of {rows}");
            }
        }
    }

    #[test]
    fn a_band_reaches_its_kernel_rows_inside_the_map() {
        let p = ConvParams { pads: [1; 4], groups: 8, ..ConvParams::new(8, 8, [3, 3]) };
        assert_eq!(reach(&p, 10, 0, 2), 0..3);
        assert_eq!(reach(&p, 10, 4, 3), 3..8);
        assert_eq!(reach(&p, 10, 8, 2), 7..10);
        let s2 = ConvParams { strides: [2, 2], ..p };
        assert_eq!(reach(&s2, 10, 0, 1), 0..2);
        assert_eq!(reach(&s2, 10, 2, 2), 3..8);
        // Dilated 2, 5×5, padded 4: output row 0 reads rows -4, -2, 0, 2, 4.
        let d = ConvParams { kernel: [5, 5], dilations: [2, 2], pads: [4; 4], ..p };
        assert_eq!(reach(&d, 10, 0, 1), 0..5);
        // Rows in the padding only reach nothing.
        let far = ConvParams { pads: [6, 0, 6, 0], kernel: [1, 1], ..p };
        assert!(reach(&far, 4, 0, 2).is_empty());
    }

    #[test]
    fn bands_keep_their_rows_in_half_of_l2() {
        let p = ConvParams { pads: [1; 4], groups: 96, ..ConvParams::new(96, 96, [3, 3]) };
        let row = 112 * 96; // MobileNetV2's second block: 43 KB per expanded row
        let rows = band_rows(&p, row, 1 << 20);
        assert_eq!(rows, 10);
        assert!((rows + 2) * row * 4 <= 1 << 19);
        let s2 = ConvParams { strides: [2, 2], ..p };
        assert_eq!(band_rows(&s2, row, 1 << 20), 5);
        // A row larger than the cache: one output row per band.
        assert_eq!(band_rows(&p, 1 << 20, 1 << 20), 1);
    }
}
