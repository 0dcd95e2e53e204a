//! The AVX-512F GEMM microkernels: 12 rows × 2 vectors (12×32), 24 accumulators, 2 B loads
//! and 12 broadcasts (folded into the FMAs as embedded broadcasts) per 24 FMAs; and the wide
//! tile for convolutions whose output channels are a multiple of 24 but not of 32: 6 rows ×
//! 3 256-bit vectors (6×24), 18 accumulators, 3 B loads and 6 broadcasts per 18 FMAs, in the
//! 32 vector registers AVX-512VL gives 256-bit instructions.

use super::simd::Avx512;
use crate::gemm::microkernel;
use crate::x86::avx2::simd::Avx2;

/// Rows of the AVX-512 register tile.
pub(crate) const MR: usize = crate::AVX512_TILE.0;
/// Vectors per row of the AVX-512 register tile.
pub(crate) const NV: usize = crate::AVX512_TILE.1 / 16;
/// Rows of the wide tile.
const WIDE_MR: usize = crate::AVX512_WIDE_TILE.0;
/// 256-bit vectors per row of the wide tile.
const WIDE_NV: usize = crate::AVX512_WIDE_TILE.1 / 8;

microkernel!(
    /// AVX-512F 12×32 microkernel.
    Avx512F32_12x32, Avx512, mr = MR, nv = NV, peak_chains = 12, features = "avx512f", wide = Avx512F32_6x24,
    a_in_place_up_to_l2 = true
);

microkernel!(
    /// AVX-512 6×24 microkernel on 256-bit vectors (the set's wide tile).
    Avx512F32_6x24, Avx2, mr = WIDE_MR, nv = WIDE_NV, peak_chains = 12, features = "avx2,fma,avx512f,avx512vl", wide = Self,
    a_in_place_up_to_l2 = true
);
