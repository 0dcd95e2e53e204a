//! The AVX2+FMA GEMM microkernels: 6 rows × 2 vectors (6×16), 12 accumulators, 2 B loads and
//! 6 broadcasts per 12 FMAs; and the wide tile for convolutions whose output channels are a
//! multiple of 24 but not of 16: 3 rows × 3 vectors (3×24), 9 accumulators, 3 B loads and
//! 3 broadcasts per 9 FMAs (13 ymm registers in all).

use super::simd::Avx2;
use crate::gemm::microkernel;

/// Rows of the AVX2 register tile.
pub(crate) const MR: usize = crate::AVX2_TILE.0;
/// Vectors per row of the AVX2 register tile.
pub(crate) const NV: usize = crate::AVX2_TILE.1 / 8;
/// Rows of the wide tile.
const WIDE_MR: usize = crate::AVX2_WIDE_TILE.0;
/// Vectors per row of the wide tile.
const WIDE_NV: usize = crate::AVX2_WIDE_TILE.1 / 8;

microkernel!(
    /// AVX2+FMA 6×16 microkernel.
    Avx2F32_6x16, Avx2, mr = MR, nv = NV, peak_chains = 12, features = "avx2,fma", wide = Avx2F32_3x24,
    a_in_place_up_to_l2 = true
);

microkernel!(
    /// AVX2+FMA 3×24 microkernel (the set's wide tile).
    Avx2F32_3x24, Avx2, mr = WIDE_MR, nv = WIDE_NV, peak_chains = 12, features = "avx2,fma", wide = Self,
    a_in_place_up_to_l2 = true
);
