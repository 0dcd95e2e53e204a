//! Where the GEMM driver reads its left operand from: a strided matrix, or anything else that
//! can pack itself into `MR`-row panels (the implicit im2col of a convolution).

use crate::mat::MatRef;
use crate::pack::pack_a_panels;

/// A left-hand operand (`rows × cols`) the driver packs block by block.
pub(crate) trait ASource: Sync {
    /// Rows (the GEMM's `m`).
    fn rows(&self) -> usize;
    /// Columns (the reduction length `k`).
    fn cols(&self) -> usize;
    /// The operand as a row-major slice and its row stride, when the microkernel may read it
    /// in place (unit column stride).
    fn direct(&self) -> Option<(&[f32], usize)>;
    /// Packs rows `i0..i0+mc`, columns `p0..p0+kc` into `ceil(mc/MR)` panels of `kc × MR`
    /// values (for every `k`, `MR` consecutive rows), zero-padding rows past `mc`.
    fn pack<const MR: usize>(&self, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]);

    /// Whether the microkernel should read the rows where they lie, as runs
    /// ([`ASource::row_runs`]) or through row pointers ([`ASource::row_pointers`]), instead of
    /// from `MR`-interleaved panels: the rows are gathered from long contiguous runs (an
    /// implicit GEMM over many channels).
    fn reads_rows_in_place(&self) -> bool {
        false
    }

    /// When row panels can be read in place for columns `p0..p0+kc`: the memory they are read
    /// from and the distance between rows (`lda`), with `runs` set to the `(offset, length)`
    /// of each contiguous stretch of columns, in order, covering `kc` columns, offsets counted
    /// from a panel's base ([`ASource::panel_base`]). The same runs serve every panel of the
    /// pass, so they are worked out once. `None` (the default) when the source has no such
    /// form.
    fn row_runs(&self, p0: usize, kc: usize, runs: &mut Vec<(usize, usize)>) -> Option<(&[f32], usize)> {
        let _ = (p0, kc, runs);
        None
    }

    /// Where the `mr` rows from `i` start in [`ASource::row_runs`]'s memory, when every run
    /// of every one of them lies inside it (`base + offset + r·lda + length` for each run
    /// and `r < mr`); `None` for panels that must be packed instead.
    fn panel_base(&self, i: usize, mr: usize) -> Option<usize> {
        let _ = (i, mr);
        None
    }

    /// Columns `p0..p0+kc` cut into the segments [`ASource::row_pointers`] hands out, as their
    /// lengths in order (the same for every panel of the pass); only called when
    /// [`ASource::reads_rows_in_place`] says so.
    fn segments(&self, p0: usize, kc: usize, segs: &mut Vec<usize>) {
        let _ = (p0, kc, segs);
        unreachable!("segments is called only on sources whose reads_rows_in_place() is true")
    }

    /// For the `mr` rows from `i` (`rows` of them real, the others reading zeros): where each
    /// row reads each of the pass's segments `segs` from column `p0` (as
    /// [`ASource::segments`] cut them), appended to `ptrs` segment by segment, `mr` pointers
    /// each. Every pointer covers its segment's length (padding points at zeros), so the
    /// microkernel reads A where it lies instead of from a packed copy. Only called when
    /// [`ASource::reads_rows_in_place`] says so.
    fn row_pointers(&self, i: usize, rows: usize, mr: usize, p0: usize, segs: &[usize], ptrs: &mut Vec<*const f32>) {
        let _ = (i, rows, mr, p0, segs, ptrs);
        unreachable!("row_pointers is called only on sources whose reads_rows_in_place() is true")
    }
}

impl ASource for MatRef<'_> {
    fn rows(&self) -> usize {
        MatRef::rows(self)
    }

    fn cols(&self) -> usize {
        MatRef::cols(self)
    }

    fn direct(&self) -> Option<(&[f32], usize)> {
        (self.col_stride() == 1).then(|| (self.data(), self.row_stride()))
    }

    fn pack<const MR: usize>(&self, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
        pack_a_panels::<MR>(self, i0, mc, p0, kc, dst)
    }
}
