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

use crate::gemm::{ASource, RowPointers};

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
    /// What padding reads: at least `cg` zeros, and [`MAX_MERGED`] (see [`zeros`]).
    pub zeros: &'a [f32],
}

/// The zeros an [`Im2col`] of groups of `cg` channels reads for padding: enough for a
/// segment of merged taps.
pub(crate) fn zeros(cg: usize) -> Vec<f32> {
    vec![0.0; cg.max(MAX_MERGED)]
}

/// Groups this wide or wider are read where they lie (runs or row pointers) instead of being
/// packed into interleaved panels.
const IN_PLACE_MIN_CHANNELS: usize = 16;

/// Segments whose starts [`Im2col::row_pointers`] works out at a time (on the stack).
const SEGMENT_CHUNK: usize = 16;

/// Longest run of consecutive taps merged into one contiguous copy or segment (values).
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

/// An output pixel, stepped along the rows of A without dividing.
#[derive(Clone, Copy)]
struct Cursor {
    image: usize,
    oy: usize,
    ox: usize,
}

impl Im2col<'_> {
    /// Where row `row` is: two divisions, once per panel (the rows after it are stepped to
    /// with [`Im2col::next`]).
    fn cursor(&self, row: usize) -> Cursor {
        let per_image = self.oh * self.ow;
        let (image, rem) = (row / per_image, row % per_image);
        Cursor { image, oy: rem / self.ow, ox: rem % self.ow }
    }

    /// The row after `at`'s.
    #[inline]
    fn next(&self, at: Cursor) -> Cursor {
        match (at.ox + 1 < self.ow, at.oy + 1 < self.oh) {
            (true, _) => Cursor { ox: at.ox + 1, ..at },
            (false, true) => Cursor { oy: at.oy + 1, ox: 0, ..at },
            (false, false) => Cursor { image: at.image + 1, oy: 0, ox: 0 },
        }
    }

    /// The origin of the row at `at` (invalid past the last image); each tap is then an add
    /// and a bounds test.
    #[inline]
    fn origin_at(&self, at: Cursor) -> RowOrigin {
        RowOrigin {
            image: at.image * self.h * self.w,
            iy: ((at.oy + self.oy_offset) * self.stride[0]) as isize,
            ix: (at.ox * self.stride[1]) as isize,
            valid: at.image < self.images,
        }
    }

    /// The `len` values of row `o`'s merged run from channel `c_lo` of tap `tap`, tap by tap:
    /// whole pixels of one input row, zeros where a tap lies in the padding (the rows whose
    /// run crosses it).
    fn merged_values(&self, o: RowOrigin, tap: usize, c_lo: usize, len: usize) -> impl Iterator<Item = f32> + '_ {
        let (dy, dx) = self.taps[tap];
        let (iy, ix) = (o.iy + dy, o.ix + dx);
        let row = (o.valid && iy >= 0 && (iy as usize) < self.h).then(|| o.image + iy as usize * self.w);
        (0..)
            .flat_map(move |t: isize| {
                let x = ix + t;
                let pixel =
                    row.filter(|_| x >= 0 && (x as usize) < self.w).map(|row| (row + x as usize) * self.c + self.c0);
                let channels = if t == 0 { c_lo..self.cg } else { 0..self.cg };
                channels.map(move |ch| pixel.map_or(0.0, |at| self.input[at + ch]))
            })
            .take(len)
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

    /// One segment per tap, or per run of taps merged as [`Im2col::run_end`] merges them (a
    /// 3-channel stem's kernel row is one segment of 9 values, not three of 3).
    fn segments(&self, p0: usize, kc: usize, segs: &mut Vec<usize>) {
        segs.clear();
        let mut p = p0;
        while p < p0 + kc {
            let (tap, c_lo) = (p / self.cg, p % self.cg);
            let len = ((self.run_end(tap) - tap) * self.cg - c_lo).min(p0 + kc - p);
            segs.push(len);
            p += len;
        }
    }

    fn row_pointers(&self, i: usize, rows: usize, mr: usize, p0: usize, segs: &[usize], out: &mut RowPointers) {
        let first = out.push_zeros(segs.len() * mr, self.zeros.as_ptr());
        // Segments a chunk at a time: where each starts (tap, channel) and how many taps past
        // its first it reaches (merged taps lie along one input row, one pixel apart), worked
        // out once per panel, not per row.
        let (mut tap, mut c_lo) = (p0 / self.cg, p0 % self.cg);
        for (chunk, lens) in segs.chunks(SEGMENT_CHUNK).enumerate() {
            let mut spans = [(0usize, 0usize, 0isize); SEGMENT_CHUNK];
            for (span, &len) in spans.iter_mut().zip(lens) {
                *span = (tap, c_lo, ((c_lo + len - 1) / self.cg) as isize);
                tap += (c_lo + len) / self.cg;
                c_lo = (c_lo + len) % self.cg;
            }
            let mut at = self.cursor(i);
            for r in 0..rows {
                let o = self.origin_at(at);
                at = self.next(at);
                if !o.valid {
                    break; // past the last image: the zeros
                }
                for (s, (&len, &(tap, c_lo, span))) in lens.iter().zip(&spans).enumerate() {
                    let (dy, dx) = self.taps[tap];
                    let (iy, ix) = (o.iy + dy, o.ix + dx);
                    let slot = first + (chunk * SEGMENT_CHUNK + s) * mr + r;
                    if iy < 0 || iy as usize >= self.h || ix + span < 0 || ix >= self.w as isize {
                        // All padding: the zeros.
                    } else if ix >= 0 && ((ix + span) as usize) < self.w {
                        let pixel = o.image + iy as usize * self.w + ix as usize;
                        // In bounds: the row, the columns through the last tap's and the
                        // channels `c0 + c_lo ..+ len` of the group are inside the input.
                        out.set(slot, self.input.as_ptr().wrapping_add(pixel * self.c + self.c0 + c_lo));
                    } else {
                        // Partly padding (merged taps at the left or right edge): a copy.
                        out.copy(slot, self.merged_values(o, tap, c_lo, len));
                    }
                }
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
            let mut at = self.cursor(ip);
            let origins: [RowOrigin; MR] = std::array::from_fn(|r| {
                let o = self.origin_at(at);
                at = self.next(at);
                RowOrigin { valid: o.valid && ip + r < last, ..o }
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
                            for (v, x) in border[r][..len].iter_mut().zip(self.merged_values(*o, tap, c_lo, len)) {
                                *v = x;
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
    use crate::gemm::{ASource, RowPointers};

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

    /// A source over `input` with these taps: `[images, h, w, c, c0, cg]`, the output grid
    /// `[oh, ow]`, the strides.
    fn source<'a>(
        input: &'a [f32],
        taps: &'a [(isize, isize)],
        zeros: &'a [f32],
        [images, h, w, c, c0, cg]: [usize; 6],
        [oh, ow]: [usize; 2],
        stride: [usize; 2],
    ) -> Im2col<'a> {
        Im2col { input, h, w, c, c0, cg, images, oh, ow, oy_offset: 0, stride, taps, zeros }
    }

    /// Checks every panel's row pointers against A's definition for these passes; returns
    /// the longest segment and how many pointers led to assembled copies.
    fn check_row_pointers(a: &Im2col<'_>, mr: usize, passes: &[(usize, usize)]) -> (usize, usize) {
        let (mut segs, mut table) = (Vec::new(), RowPointers::new());
        let (mut longest, mut copied) = (0, 0);
        for &(p0, kc) in passes {
            a.segments(p0, kc, &mut segs);
            assert_eq!(segs.iter().sum::<usize>(), kc, "segments cover the pass");
            longest = longest.max(*segs.iter().max().expect("segments"));
            for i in (0..a.rows()).step_by(mr) {
                let rows = (a.rows() - i).min(mr);
                // A pointer ahead of the panel's: they are appended, not written from 0.
                let poison = [1e30f32; 64];
                table.clear();
                table.push_zeros(1, poison.as_ptr());
                a.row_pointers(i, rows, mr, p0, &segs, &mut table);
                table.finish();
                let ptrs = table.as_slice();
                assert_eq!(ptrs.len(), 1 + segs.len() * mr);
                assert_eq!(ptrs[0], poison.as_ptr(), "the earlier pointer is kept");
                let inside = |q: *const f32| a.input.as_ptr_range().contains(&q) || a.zeros.as_ptr_range().contains(&q);
                copied += ptrs[1..].iter().filter(|&&q| !inside(q)).count();
                let mut p = p0;
                for (s, &len) in segs.iter().enumerate() {
                    for r in 0..mr {
                        for q in 0..len {
                            // SAFETY: row_pointers promises `len` readable values per pointer,
                            // and the copies they may lead to are final and unchanged.
                            let got = unsafe { *ptrs[1 + s * mr + r].add(q) };
                            let want = if r < rows { expected(a, i + r, p + q) } else { 0.0 };
                            assert_eq!(got, want, "pass {p0}+{kc}, rows {i}+{r}, column {}", p + q);
                        }
                    }
                    p += len;
                }
            }
        }
        (longest, copied)
    }

    /// Row pointers reproduce A for panels across output rows, in the padding and past the
    /// last row, for K passes that start and end inside a tap, on a grouped, strided input
    /// (one segment per tap, more than one chunk of them).
    #[test]
    fn row_pointers_read_what_im2col_defines() {
        let (images, h, w, c, cg, c0) = (2, 5, 7, 6, 4, 2);
        let input: Vec<f32> = (0..images * h * w * c).map(|i| i as f32 + 1.0).collect();
        let zeros = super::zeros(cg);
        // 5×5 taps, pad 2, dilation 1, strides (2, 1): 3×7 outputs per image.
        let taps: Vec<(isize, isize)> = (0..25).map(|t| (t / 5 - 2, t % 5 - 2)).collect();
        assert!(taps.len() > super::SEGMENT_CHUNK);
        let a = source(&input, &taps, &zeros, [images, h, w, c, c0, cg], [3, 7], [2, 1]);
        let k = taps.len() * cg;
        let (longest, _) = check_row_pointers(&a, 5, &[(0, k), (0, 6), (6, 13), (19, k - 19)]);
        assert_eq!(longest, cg, "grouped taps are not merged");
    }

    /// A 3-channel stem's taps along a kernel row merge into one segment; rows whose merged
    /// segment is partly padding (left and right edges) read assembled copies, the rest the
    /// input or the zeros; passes that start and end inside a tap, several images, a last
    /// panel of fewer rows.
    #[test]
    fn merged_row_pointers_read_what_im2col_defines() {
        let (images, h, w, c) = (2, 6, 9, 3);
        let input: Vec<f32> = (0..images * h * w * c).map(|i| i as f32 + 1.0).collect();
        let zeros = super::zeros(c);
        // 3×3 taps, pad 1, stride 2 on a 6×9 input: 3×5 outputs per image, the last column's
        // window reaching past the right edge.
        let taps: Vec<(isize, isize)> = (0..9).map(|t| (t / 3 - 1, t % 3 - 1)).collect();
        let a = source(&input, &taps, &zeros, [images, h, w, c, 0, c], [3, 5], [2, 2]);
        let k = taps.len() * c;
        let (longest, copied) = check_row_pointers(&a, 4, &[(0, k), (0, 7), (7, 11), (18, k - 18)]);
        assert_eq!(longest, 3 * c, "a kernel row is one segment");
        assert!(copied > 0, "rows at the edges read assembled copies");
    }
}
