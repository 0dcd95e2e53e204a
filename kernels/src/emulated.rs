//! Kernel sets that run another instruction set's exact tile geometry on portable vectors.
//!
//! For tests on hosts that lack an instruction set (this project's CI has no AVX-512): the
//! driver, packing, blocking and edge-tile handling that the AVX-512 set uses run in full with
//! [`Lanes<16>`](crate::simd::Lanes) standing in for `__m512`. Only the one-line intrinsic
//! wrappers in `x86/avx512/simd.rs` are left unexecuted. Not for production use.

use crate::gemm::microkernel;
use crate::simd::Lanes;
use crate::{boxed, Blocking, CpuSet, KernelSet, KernelSetId, Result};

microkernel!(
    /// AVX-512's 12×32 geometry on portable 16-lane vectors.
    Avx512Geometry, Lanes<16>, mr = { crate::x86::avx512::MR }, nv = { crate::x86::avx512::NV }, peak_chains = 6
);

/// The AVX-512 set's geometry and driver on portable vectors (packs as `emulated-avx512`),
/// with the host's blocking or the one given.
pub fn avx512_geometry(blocking: Option<Blocking>) -> Result<Box<dyn KernelSet>> {
    // SAFETY: portable vectors need no optional instructions.
    boxed(unsafe { CpuSet::<Avx512Geometry>::new_unchecked(KernelSetId::Avx512, "emulated-avx512") }, blocking)
}
