//! The portable set's row and element kernels, on 8-lane arrays.

use super::gemm::ScalarF32_4x8;
use crate::conv::ConvKernel;
use crate::simd::Lanes;
use crate::vector::vector_kernels;

vector_kernels!(
    /// Portable row and element kernels.
    ScalarVector, Lanes<8>
);

impl ConvKernel for ScalarF32_4x8 {
    type Rows = ScalarVector;
    type WideRows = ScalarVector;
}
