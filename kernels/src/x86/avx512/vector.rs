//! The AVX-512 set's row and element kernels: on 512-bit vectors, and on 256-bit ones with
//! AVX-512VL's 32 registers for the wide tile's narrow-group convolutions.

use super::gemm::Avx512F32_12x32;
use super::simd::Avx512;
use crate::conv::ConvKernel;
use crate::vector::vector_kernels;
use crate::x86::avx2::simd::Avx2;

vector_kernels!(
    /// AVX-512F row and element kernels.
    Avx512Vector, Avx512, features = "avx512f"
);

vector_kernels!(
    /// Row and element kernels on 256-bit vectors with AVX-512VL's 32 registers.
    Avx512VlVector, Avx2, features = "avx2,fma,avx512f,avx512vl", registers = 32
);

impl ConvKernel for Avx512F32_12x32 {
    type Rows = Avx512Vector;
    type WideRows = Avx512VlVector;
}
