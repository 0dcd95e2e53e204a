//! Kernel sets that run another instruction set's exact tile geometry on portable vectors.
//!
//! For tests on hosts that lack an instruction set (this project's CI has no AVX-512, and its
//! x86 host no NEON): the driver, packing, blocking and edge-tile handling that the AVX-512 and
//! NEON sets use run in full with [`Lanes`](crate::simd::Lanes) standing in for `__m512` and
//! `float32x4_t`. Only the one-line intrinsic wrappers in `*/simd.rs` are left unexecuted
//! (NEON's run for real under qemu-aarch64). Not for production use.

use crate::gemm::microkernel;
use crate::simd::Lanes;
use crate::{boxed, Blocking, Build, CpuSet, KernelSet, KernelSetId, Result};

microkernel!(
    /// AVX-512's 12×32 geometry on portable 16-lane vectors.
    Avx512Geometry, Lanes<16>, mr = { crate::AVX512_TILE.0 }, nv = { crate::AVX512_TILE.1 / 16 }, peak_chains = 6, wide = Self
);

microkernel!(
    /// NEON's 8×12 geometry on portable 4-lane vectors.
    NeonGeometry, Lanes<4>, mr = { crate::NEON_TILE.0 }, nv = { crate::NEON_TILE.1 / 4 }, peak_chains = 6, wide = Self
);

/// The NEON set's geometry and driver on portable vectors (packs as `emulated-neon`), with the
/// host's blocking or the one given.
pub fn neon_geometry(blocking: Option<Blocking>) -> Result<Box<dyn KernelSet>> {
    // SAFETY: portable vectors need no optional instructions.
    boxed(
        unsafe { CpuSet::<NeonGeometry>::new_unchecked(KernelSetId::Neon, "emulated-neon") },
        Build { blocking, ..Build::default() },
    )
}

/// The AVX-512 set's geometry and driver on portable vectors (packs as `emulated-avx512`),
/// with the host's blocking or the one given.
pub fn avx512_geometry(blocking: Option<Blocking>) -> Result<Box<dyn KernelSet>> {
    // SAFETY: portable vectors need no optional instructions.
    boxed(
        unsafe { CpuSet::<Avx512Geometry>::new_unchecked(KernelSetId::Avx512, "emulated-avx512") },
        Build { blocking, ..Build::default() },
    )
}
