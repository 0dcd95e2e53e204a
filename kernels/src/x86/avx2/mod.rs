//! AVX2+FMA kernel set: 256-bit vectors, a 6×16 register tile (12 accumulators of 16 ymm) and
//! a 3×24 one for convolutions to 24, 72, 120, … channels.

mod gemm;
pub(super) mod simd;
mod vector;

pub(crate) use gemm::Avx2F32_6x16;

/// Whether this CPU can run the set (AVX2 and FMA present, OS saves ymm state).
pub(crate) fn detected() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}
