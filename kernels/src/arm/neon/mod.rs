//! NEON kernel set: 128-bit vectors, an 8×12 register tile (24 accumulators of 32 v-registers).

mod gemm;
mod simd;
mod vector;

pub(crate) use gemm::NeonF32_8x12;

/// Whether this CPU can run the set. Advanced SIMD is mandatory in ARMv8-A, so this is a
/// formality kept for symmetry with the x86 sets (and for kernels built without it).
pub(crate) fn detected() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
