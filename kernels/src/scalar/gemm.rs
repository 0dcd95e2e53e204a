//! The portable GEMM microkernel: 4 rows × one 8-lane vector (4×8).

use crate::gemm::microkernel;
use crate::simd::Lanes;

microkernel!(
    /// Portable 4×8 microkernel.
    ScalarF32_4x8, Lanes<8>, mr = { crate::SCALAR_TILE.0 }, nv = { crate::SCALAR_TILE.1 / 8 }, peak_chains = 6, wide = Self
);
