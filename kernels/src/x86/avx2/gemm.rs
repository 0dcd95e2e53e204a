//! The AVX2+FMA GEMM microkernel: 6 rows × 2 vectors (6×16), 12 accumulators, 2 B loads and
//! 6 broadcasts per 12 FMAs.

use super::simd::Avx2;
use crate::gemm::microkernel;

/// Rows of the AVX2 register tile.
pub(crate) const MR: usize = crate::AVX2_TILE.0;
/// Vectors per row of the AVX2 register tile.
pub(crate) const NV: usize = crate::AVX2_TILE.1 / 8;

microkernel!(
    /// AVX2+FMA 6×16 microkernel.
    Avx2Kernel, Avx2, mr = MR, nv = NV, peak_chains = 12, features = "avx2,fma"
);
