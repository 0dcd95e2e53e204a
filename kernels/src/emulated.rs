//! Kernel sets that run another instruction set's exact tile geometry on portable vectors.
//!
//! For tests on hosts that lack an instruction set (machines without AVX-512; x86 hosts have
//! no NEON): the driver, packing, blocking and edge-tile handling that the AVX-512 set (with
//! its wide tile) and the NEON set use run in full with [`Lanes`](crate::simd::Lanes) standing
//! in for `__m512`, `__m256` and `float32x4_t`. Only the one-line intrinsic wrappers in
//! `*/simd.rs` are left unexecuted (NEON's run for real under qemu-aarch64, AVX-512's on hosts
//! that have it). Not for production use.

use crate::conv::ConvKernel;
use crate::gemm::microkernel;
use crate::simd::Lanes;
use crate::vector::vector_kernels;
use crate::{boxed, Blocking, Build, CpuSet, KernelSet, KernelSetId, Result};

microkernel!(
    /// AVX-512's 12×32 geometry on portable 16-lane vectors.
    Avx512Geometry, Lanes<16>, mr = { crate::AVX512_TILE.0 }, nv = { crate::AVX512_TILE.1 / 16 }, peak_chains = 6, wide = Avx512WideGeometry
);

microkernel!(
    /// AVX-512's 6×24 wide tile on portable 8-lane vectors.
    Avx512WideGeometry, Lanes<8>, mr = { crate::AVX512_WIDE_TILE.0 }, nv = { crate::AVX512_WIDE_TILE.1 / 8 }, peak_chains = 6, wide = Self
);

microkernel!(
    /// NEON's 8×12 geometry on portable 4-lane vectors.
    NeonGeometry, Lanes<4>, mr = { crate::NEON_TILE.0 }, nv = { crate::NEON_TILE.1 / 4 }, peak_chains = 6, wide = Self
);

vector_kernels!(
    /// Row and element kernels on portable 16-lane vectors (AVX-512's width).
    Portable16Vector, Lanes<16>
);

vector_kernels!(
    /// Row and element kernels on portable 8-lane vectors (the AVX-512 wide tile's width).
    Portable8Vector, Lanes<8>
);

vector_kernels!(
    /// Row and element kernels on portable 4-lane vectors (NEON's width).
    Portable4Vector, Lanes<4>
);

impl ConvKernel for Avx512Geometry {
    type Rows = Portable16Vector;
    type WideRows = Portable8Vector;
}

impl ConvKernel for NeonGeometry {
    type Rows = Portable4Vector;
    type WideRows = Portable4Vector;
}

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
