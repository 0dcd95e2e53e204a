//! The AVX2+FMA set's row and element kernels (depthwise, grouped and Winograd convolutions,
//! pooling, normalisation, activations) on 256-bit vectors.

use super::gemm::Avx2F32_6x16;
use super::simd::Avx2;
use crate::conv::ConvKernel;
use crate::vector::vector_kernels;

vector_kernels!(
    /// AVX2+FMA row and element kernels.
    Avx2Vector, Avx2, features = "avx2,fma"
);

impl ConvKernel for Avx2F32_6x16 {
    type Rows = Avx2Vector;
    type WideRows = Avx2Vector;
}
