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
    /// [`ASource::segments`] cut them), appended to `out` segment by segment, `mr` pointers
    /// each. Every pointer covers its segment's length (padding points at zeros; a row whose
    /// segment is partly padding gets a copy assembled in `out`, pointed at once every panel's
    /// pointers are made: [`RowPointers::finish`]), so the microkernel reads A where it lies
    /// instead of from a packed copy. Only called when [`ASource::reads_rows_in_place`] says so.
    fn row_pointers(&self, i: usize, rows: usize, mr: usize, p0: usize, segs: &[usize], out: &mut RowPointers) {
        let _ = (i, rows, mr, p0, segs, out);
        unreachable!("row_pointers is called only on sources whose reads_rows_in_place() is true")
    }
}

/// The row pointers of a block's row panels ([`ASource::row_pointers`]), and the copies of
/// segments that are partly padding, which some of them point at once [`RowPointers::finish`]
/// has run (until then the copies may still move).
pub(crate) struct RowPointers {
    ptrs: Vec<*const f32>,
    copies: Vec<f32>,
    /// `(index into ptrs, offset into copies)`.
    fixups: Vec<(usize, usize)>,
}

impl RowPointers {
    /// No pointers (const, for thread-local tables).
    pub(crate) const fn new() -> RowPointers {
        RowPointers { ptrs: Vec::new(), copies: Vec::new(), fixups: Vec::new() }
    }

    /// Forgets every pointer and copy.
    pub(crate) fn clear(&mut self) {
        self.ptrs.clear();
        self.copies.clear();
        self.fixups.clear();
    }

    /// Appends `n` pointers to `zeros`; returns the index of the first.
    pub(crate) fn push_zeros(&mut self, n: usize, zeros: *const f32) -> usize {
        let first = self.ptrs.len();
        self.ptrs.resize(first + n, zeros);
        first
    }

    /// Sets pointer `at`.
    pub(crate) fn set(&mut self, at: usize, ptr: *const f32) {
        self.ptrs[at] = ptr;
    }

    /// Points pointer `at` at a copy of `values` (once [`RowPointers::finish`] has run).
    pub(crate) fn copy(&mut self, at: usize, values: impl IntoIterator<Item = f32>) {
        self.fixups.push((at, self.copies.len()));
        self.copies.extend(values);
    }

    /// Points the pointers of the copies at them: call once all are made. The pointers stay
    /// valid until the table is next changed.
    pub(crate) fn finish(&mut self) {
        for &(at, offset) in &self.fixups {
            self.ptrs[at] = self.copies[offset..].as_ptr();
        }
    }

    /// The pointers.
    pub(crate) fn as_slice(&self) -> &[*const f32] {
        &self.ptrs
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
