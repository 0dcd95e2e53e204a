//! The implicit GEMM's left operand: im2col never materialised. Row panels of many-channel
//! inputs are read where they lie, as runs from a base (panels of one output row, clear of
//! the padding) or through one pointer per row and tap (the rest: panels across two output
//! rows, or touching the padding, whose pointers lead to zeros), an indirect GEMM; the others
//! are packed inside the driver's A packing, one cache block at a time.
//!
//! Row `i` is an output pixel `(image, oy, ox)`; column `p = tap·cg + c` is channel `c0 + c` of
//! the input pixel that kernel tap `tap` reads for it, `(oy·sy + dy[tap], ox·sx + dx[tap])`, or
//! zero when that lies in the padding. Ordering K by (tap, channel) keeps each tap a contiguous
//! run of channels, so a 3-channel stem reads 27 useful values per pixel (no padding of the
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

/// Groups this wide or wider are read where they lie (runs or row pointers) instead of being
/// packed into interleaved panels.
const IN_PLACE_MIN_CHANNELS: usize = 16;

/// Longest run of consecutive taps merged into one contiguous copy (values).
const MAX_MERGED: usize = 64;

/// Where one row (output pixel) reads from: its image's first value and its window origin,
/// or nothing for the zero rows that pad the last panel.
#[derive(Clone, Copy)]
struct RowOrigin {
    image: usize,
    iy: isize,
    ix: isize,
    valid: bool,
}

impl Im2col<'_> {
    /// Computed once per row and panel; each tap is then an add and a bounds test.
    #[inline]
    fn origin(&self, row: usize) -> RowOrigin {
        let per_image = self.oh * self.ow;
        if row >= self.images * per_image {
            return RowOrigin { image: 0, iy: 0, ix: 0, valid: false };
        }
        let (img, rem) = (row / per_image, row % per_image);
        let (oy, ox) = (rem / self.ow + self.oy_offset, rem % self.ow);
        RowOrigin {
            image: img * self.h * self.w,
            iy: (oy * self.stride[0]) as isize,
            ix: (ox * self.stride[1]) as isize,
            valid: true,
        }
    }

    /// One past the last tap of the run starting at `tap` whose inputs are contiguous in
    /// memory: same row, next pixel each, whole pixels (one group), at most [`MAX_MERGED`]
    /// values. With a 3-channel input this packs a 3×3 stem's kernel row as 9 values at once.
    #[inline]
    fn run_end(&self, tap: usize) -> usize {
        let mut end = tap + 1;
        if self.cg != self.c {
            return end;
        }
        while end < self.taps.len()
            && self.taps[end] == (self.taps[end - 1].0, self.taps[end - 1].1 + 1)
            && (end + 1 - tap) * self.cg <= MAX_MERGED
        {
            end += 1;
        }
        end
    }

    /// The taps' smallest and largest row and column offsets, `[dy_min, dy_max, dx_min,
    /// dx_max]` (`None` without taps).
    #[inline]
    fn reach(&self) -> Option<[isize; 4]> {
        let (&(dy, dx), rest) = self.taps.split_first()?;
        Some(rest.iter().fold([dy, dy, dx, dx], |[a, b, c, d], &(y, x)| [a.min(y), b.max(y), c.min(x), d.max(x)]))
    }

    /// The input slice a row reads for `tap`, channels `c_lo..c_lo+len` of the group, or zeros.
    #[inline(always)]
    fn run(&self, o: RowOrigin, tap: usize, c_lo: usize, len: usize) -> &[f32] {
        let (dy, dx) = self.taps[tap];
        let (iy, ix) = (o.iy + dy, o.ix + dx);
        if !o.valid || iy < 0 || ix < 0 || iy as usize >= self.h || ix as usize >= self.w {
            return &self.zeros[..len];
        }
        let pixel = o.image + iy as usize * self.w + ix as usize;
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

    fn reads_rows_in_place(&self) -> bool {
        self.cg >= IN_PLACE_MIN_CHANNELS || self.cg == self.c
    }

    fn row_runs(&self, p0: usize, kc: usize, runs: &mut Vec<(usize, usize)>) -> Option<(&[f32], usize)> {
        let [dy0, _, dx0, _] = self.reach()?;
        runs.clear();
        let mut p = p0;
        while p < p0 + kc {
            let (tap, c_lo) = (p / self.cg, p % self.cg);
            let len = (self.cg - c_lo).min(p0 + kc - p);
            let (dy, dx) = self.taps[tap];
            // Offsets from the panel base, the pixel at the taps' smallest (dy, dx).
            let pixel = (dy - dy0) as usize * self.w + (dx - dx0) as usize;
            let at = pixel * self.c + self.c0 + c_lo;
            match runs.last_mut() {
                Some((start, l)) if *start + *l == at => *l += len,
                _ => runs.push((at, len)),
            }
            p += len;
        }
        Some((self.input, self.stride[1] * self.c))
    }

    fn panel_base(&self, i: usize, mr: usize) -> Option<usize> {
        // The rows must be one output row's consecutive pixels (one image), every tap of
        // every row inside the input.
        // (Two divisions: this runs once per row panel.)
        let (out_row, ox) = (i / self.ow, i % self.ow);
        if ox + mr > self.ow || out_row >= self.images * self.oh {
            return None;
        }
        let [dy0, dy1, dx0, dx1] = self.reach()?;
        let (image, oy) = (out_row / self.oh, out_row % self.oh + self.oy_offset);
        let (iy, ix) = ((oy * self.stride[0]) as isize, (ox * self.stride[1]) as isize);
        let (iy0, ix0) = (iy + dy0, ix + dx0);
        let (iy1, ix1) = (iy + dy1, ix + ((mr - 1) * self.stride[1]) as isize + dx1);
        if iy0 < 0 || ix0 < 0 || iy1 as usize >= self.h || ix1 as usize >= self.w {
            return None;
        }
        Some(((image * self.h + iy0 as usize) * self.w + ix0 as usize) * self.c)
    }

    fn segments(&self, p0: usize, kc: usize, segs: &mut Vec<usize>) {
        segs.clear();
        let mut p = p0;
        while p < p0 + kc {
            let len = (self.cg - p % self.cg).min(p0 + kc - p);
            segs.push(len);
            p += len;
        }
    }

    fn row_pointers(&self, i: usize, rows: usize, mr: usize, p0: usize, segs: &[usize], ptrs: &mut Vec<*const f32>) {
        let first = ptrs.len();
        ptrs.resize(first + segs.len() * mr, self.zeros.as_ptr());
        for r in 0..rows {
            let o = self.origin(i + r);
            let mut p = p0;
            for (s, &len) in segs.iter().enumerate() {
                ptrs[first + s * mr + r] = self.run(o, p / self.cg, p % self.cg, len).as_ptr();
                p += len;
            }
        }
    }

    fn pack<const MR: usize>(&self, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
        if kc == 0 {
            return;
        }
        // Rows whose merged run crosses the padding are assembled here (once per call, not per
        // panel: zeroing it is not free).
        let mut border = [[0.0f32; MAX_MERGED]; MR];
        for (panel, out) in dst.chunks_exact_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
            let ip = i0 + panel * MR;
            let last = i0 + mc; // rows at or past this are zero padding of the panel
            let origins: [RowOrigin; MR] = std::array::from_fn(|r| {
                if ip + r < last {
                    self.origin(ip + r)
                } else {
                    RowOrigin { image: 0, iy: 0, ix: 0, valid: false }
                }
            });
            let mut p = p0;
            while p < p0 + kc {
                let (tap, c_lo) = (p / self.cg, p % self.cg);
                let end = self.run_end(tap);
                let len = ((end - tap) * self.cg - c_lo).min(p0 + kc - p);
                let merged = end > tap + 1;
                // Merged taps: one slice when a row's whole run is inside the input, else
                // assembled value by value (border rows only).
                let mut start: [Option<usize>; MR] = [None; MR];
                if merged {
                    let (dy, dx) = self.taps[tap];
                    for (r, o) in origins.iter().enumerate() {
                        let (iy, ix) = (o.iy + dy, o.ix + dx);
                        let last_ix = ix + (end - 1 - tap) as isize;
                        if o.valid && iy >= 0 && (iy as usize) < self.h && ix >= 0 && (last_ix as usize) < self.w {
                            start[r] = Some((o.image + iy as usize * self.w + ix as usize) * self.c + c_lo);
                        } else {
                            for (q, v) in border[r][..len].iter_mut().enumerate() {
                                let (t, ch) = (tap + (c_lo + q) / self.cg, (c_lo + q) % self.cg);
                                *v = self.run(*o, t, ch, 1)[0];
                            }
                        }
                    }
                }
                let rows: [&[f32]; MR] = std::array::from_fn(|r| match (merged, start[r]) {
                    (false, _) => self.run(origins[r], tap, c_lo, len),
                    (true, Some(at)) => &self.input[at..at + len],
                    (true, None) => &border[r][..len],
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

#[cfg(test)]
mod tests {
    use super::Im2col;
    use crate::gemm::ASource;

    /// A(row, p) by the definition: channel `c0 + p % cg` of the pixel tap `p / cg` reads, or
    /// zero in the padding or past the last row.
    fn expected(a: &Im2col<'_>, row: usize, p: usize) -> f32 {
        if row >= a.images * a.oh * a.ow {
            return 0.0;
        }
        let (img, rem) = (row / (a.oh * a.ow), row % (a.oh * a.ow));
        let (oy, ox) = (rem / a.ow, rem % a.ow);
        let (dy, dx) = a.taps[p / a.cg];
        let (iy, ix) = ((oy * a.stride[0]) as isize + dy, (ox * a.stride[1]) as isize + dx);
        if iy < 0 || ix < 0 || iy as usize >= a.h || ix as usize >= a.w {
            return 0.0;
        }
        a.input[((img * a.h + iy as usize) * a.w + ix as usize) * a.c + a.c0 + p % a.cg]
    }

    /// Row pointers reproduce A for panels across output rows, in the padding and past the
    /// last row, for K passes that start and end inside a tap, on a grouped, strided input.
    #[test]
    fn row_pointers_read_what_im2col_defines() {
        let (images, h, w, c, cg, c0) = (2, 5, 7, 6, 4, 2);
        let input: Vec<f32> = (0..images * h * w * c).map(|i| i as f32 + 1.0).collect();
        let zeros = vec![0.0; cg];
        // 3×3 taps, pad 1, dilation 1, strides (2, 1): 3×7 outputs per image.
        let taps: Vec<(isize, isize)> = (0..9).map(|t| (t / 3 - 1, t % 3 - 1)).collect();
        let a = Im2col {
            input: &input,
            h,
            w,
            c,
            c0,
            cg,
            images,
            oh: 3,
            ow: 7,
            oy_offset: 0,
            stride: [2, 1],
            taps: &taps,
            zeros: &zeros,
        };
        let (mr, k) = (5, taps.len() * cg);
        let mut segs = Vec::new();
        let mut ptrs = Vec::new();
        for (p0, kc) in [(0, k), (0, 6), (6, 13), (19, k - 19)] {
            a.segments(p0, kc, &mut segs);
            assert_eq!(segs.iter().sum::<usize>(), kc, "segments cover the pass");
            for i in (0..a.rows()).step_by(mr) {
                let rows = (a.rows() - i).min(mr);
                ptrs.clear();
                a.row_pointers(i, rows, mr, p0, &segs, &mut ptrs);
                assert_eq!(ptrs.len(), segs.len() * mr);
                let mut p = p0;
                for (s, &len) in segs.iter().enumerate() {
                    for r in 0..mr {
                        for q in 0..len {
                            // SAFETY: row_pointers promises `len` readable values per pointer.
                            let got = unsafe { *ptrs[s * mr + r].add(q) };
                            let want = if r < rows { expected(&a, i + r, p + q) } else { 0.0 };
                            assert_eq!(got, want, "pass {p0}+{kc}, rows {i}+{r}, column {}", p + q);
                        }
                    }
                    p += len;
                }
            }
        }
    }
}
