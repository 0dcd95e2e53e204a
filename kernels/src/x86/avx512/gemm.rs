//! The AVX-512F GEMM microkernel: 12 rows × 2 vectors (12×32), 24 accumulators, 2 B loads and
//! 12 broadcasts (folded into the FMAs as embedded broadcasts) per 24 FMAs.

use super::simd::Avx512;
use crate::gemm::microkernel;

/// Rows of the AVX-512 register tile.
pub(crate) const MR: usize = crate::AVX512_TILE.0;
/// Vectors per row of the AVX-512 register tile.
pub(crate) const NV: usize = crate::AVX512_TILE.1 / 16;

microkernel!(
    /// AVX-512F 12×32 microkernel.
    Avx512Kernel, Avx512, mr = MR, nv = NV, peak_chains = 12, features = "avx512f", wide = Self
);
