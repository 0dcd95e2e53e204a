//! The NEON GEMM microkernel: 8 rows × 3 vectors (8×12), 24 accumulators, 3 B loads and 8
//! broadcast loads per 24 FMAs; 28 of the 32 vector registers.

use super::simd::Neon;
use crate::gemm::microkernel;

/// Rows of the NEON register tile.
pub(crate) const MR: usize = crate::NEON_TILE.0;
/// Vectors per row of the NEON register tile.
pub(crate) const NV: usize = crate::NEON_TILE.1 / 4;

microkernel!(
    /// NEON 8×12 microkernel.
    NeonF32_8x12, Neon, mr = MR, nv = NV, peak_chains = 16, features = "neon", wide = Self
);
