//! AVX-512F kernel set: 512-bit vectors, a 12×32 register tile (24 accumulators of 32 zmm),
//! and a 6×24 one on 256-bit vectors for convolutions to 24, 72, 120, … channels.

mod gemm;
mod simd;
mod vector;

pub(crate) use gemm::Avx512F32_12x32;

/// Whether this CPU can run the set (AVX-512F and VL, and the AVX2 and FMA its wide tile's
/// 256-bit instructions need, present and enabled by the OS).
pub(crate) fn detected() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
}
