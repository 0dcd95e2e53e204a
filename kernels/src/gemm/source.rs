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
