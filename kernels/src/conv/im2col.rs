//! The implicit GEMM's left operand: im2col done inside the driver's A packing, one cache
//! block at a time, never materialised.
//!
//! Row `i` is an output pixel `(image, oy, ox)`; column `p = tap·cg + c` is channel `c0 + c` of
//! the input pixel that kernel tap `tap` reads for it, `(oy·sy + dy[tap], ox·sx + dx[tap])`, or
//! zero when that lies in the padding. Ordering K by (tap, channel) keeps each tap a contiguous
//! run of channels, so a 3-channel stem packs 27 useful values per pixel (no padding of the
//! channel axis to a vector width).

use crate::gemm::ASource;

/// One (group of a) convolution seen as a `rows × taps·cg` matrix.
pub(crate) struct Im2col<'a> {
    /// NHWC input, `images` images of `h × w × c`.
    pub input: &'a [f32],
    /// Input rows, columns and channels (the pixel stride).
    pub h: usize,
    /// Input columns.
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// First channel of this group.
    pub c0: usize,
    /// Channels per group.
    pub cg: usize,
    /// Images.
    pub images: usize,
    /// Output grid rows per image.
    pub oh: usize,
    /// Output grid columns.
    pub ow: usize,
    /// Added to the output row before the stride (the transposed convolution runs one row of
    /// a phase grid at a time).
    pub oy_offset: usize,
    /// Strides (rows, columns).
    pub stride: [usize; 2],
    /// Input offset of each tap: `(dy, dx)`.
    pub taps: &'a [(isize, isize)],
    /// `cg` zeros: what padding reads.
    pub zeros: &'a [f32],
}

impl Im2col<'_> {
    /// The input slice a row reads for `tap`, channels `c_lo..c_lo+len` of the group, or zeros.
    #[inline]
    fn run(&self, row: usize, tap: usize, c_lo: usize, len: usize) -> &[f32] {
        let per_image = self.oh * self.ow;
        if row >= self.images * per_image {
            return &self.zeros[..len];
        }
        let (img, rem) = (row / per_image, row % per_image);
        let (oy, ox) = (rem / self.ow + self.oy_offset, rem % self.ow);
        let (dy, dx) = self.taps[tap];
        let iy = (oy * self.stride[0]) as isize + dy;
        let ix = (ox * self.stride[1]) as isize + dx;
        if iy < 0 || ix < 0 || iy as usize >= self.h || ix as usize >= self.w {
            return &self.zeros[..len];
        }
        let pixel = (img * self.h + iy as usize) * self.w + ix as usize;
        &self.input[pixel * self.c + self.c0 + c_lo..][..len]
    }
}

impl ASource for Im2col<'_> {
    fn rows(&self) -> usize {
        self.images * self.oh * self.ow
    }

    fn cols(&self) -> usize {
        self.taps.len() * self.cg
    }

    fn direct(&self) -> Option<(&[f32], usize)> {
        None
    }

    fn pack<const MR: usize>(&self, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
        if kc == 0 {
            return;
        }
        for (panel, out) in dst.chunks_exact_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
            let ip = i0 + panel * MR;
            let last = i0 + mc; // rows at or past this are zero padding of the panel
            let mut p = p0;
            while p < p0 + kc {
                let (tap, c_lo) = (p / self.cg, p % self.cg);
                let len = (self.cg - c_lo).min(p0 + kc - p);
                let rows: [&[f32]; MR] = std::array::from_fn(|r| {
                    if ip + r < last {
                        self.run(ip + r, tap, c_lo, len)
                    } else {
                        &self.zeros[..len]
                    }
                });
                for (q, d) in out[(p - p0) * MR..][..len * MR].chunks_exact_mut(MR).enumerate() {
                    for (d, row) in d.iter_mut().zip(&rows) {
                        // SAFETY: every run is `len` long and q < len (len chunks of MR).
                        *d = unsafe { *row.get_unchecked(q) };
                    }
                }
                p += len;
            }
        }
    }
}
