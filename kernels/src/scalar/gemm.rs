//! The portable GEMM microkernel: 4 rows × one 8-lane vector (4×8).

use crate::gemm::microkernel;
use crate::simd::Lanes;

microkernel!(
    /// Portable 4×8 microkernel.
    ScalarKernel, Lanes<8>, mr = 4, nv = 1, peak_chains = 6
);
