//! The portable kernel set: the fallback on any CPU and the readable baseline.
//!
//! Plain Rust on 8-lane arrays ([`crate::simd::Lanes`]); the compiler maps them to whatever
//! vector unit the build targets (SSE2 on baseline x86_64, NEON on aarch64) without any
//! `unsafe` instruction-set assumption.

mod gemm;
mod vector;

pub(crate) use gemm::ScalarF32_4x8;
// The CUDA set runs its host-side row kernels on the portable vectors.
#[cfg(feature = "cuda")]
pub(crate) use vector::ScalarVector;
