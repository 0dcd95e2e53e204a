//! The NEON set's row and element kernels (depthwise, grouped and Winograd convolutions,
//! pooling, normalisation, activations) on 128-bit vectors.

use super::gemm::NeonF32_8x12;
use super::simd::Neon;
use crate::conv::ConvKernel;
use crate::vector::vector_kernels;

vector_kernels!(
    /// NEON row and element kernels.
    NeonVector, Neon, features = "neon"
);

impl ConvKernel for NeonF32_8x12 {
    type Rows = NeonVector;
    type WideRows = NeonVector;
}
