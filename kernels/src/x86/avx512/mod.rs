//! AVX-512F kernel set: 512-bit vectors, a 12×32 register tile (24 accumulators of 32 zmm).

mod gemm;
mod simd;

pub(crate) use gemm::Avx512Kernel;

/// Whether this CPU can run the set (AVX-512F present and enabled by the OS).
pub(crate) fn detected() -> bool {
    is_x86_feature_detected!("avx512f")
}
