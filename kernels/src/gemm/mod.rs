//! f32 GEMM: the BLIS five-loop driver ([`driver`]) and the register-tile microkernel ([`tile`]),
//! both written once; an instruction set contributes only a [`crate::simd::SimdF32`]
//! implementation and a tile geometry, through [`microkernel!`].

pub(crate) mod driver;
pub(crate) mod tile;

use crate::epilogue::Activation;

/// Pointers to the epilogue operands of one `MR × NR` tile, valid for the tile's extent.
pub(crate) struct TileEpilogue {
    /// `MR` per-row bias values, or null.
    pub bias_row: *const f32,
    /// `NR` per-column bias values, or null.
    pub bias_col: *const f32,
    /// The tile's residual (`MR` rows of `NR` contiguous values at stride `residual_ld`), or null.
    pub residual: *const f32,
    /// Row stride of `residual`.
    pub residual_ld: usize,
    /// Activation applied last.
    pub activation: Activation,
}

/// A register-blocked `MR × NR` microkernel for one instruction set.
pub(crate) trait Microkernel: Send + Sync + 'static {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Floating-point operations one iteration of [`Microkernel::fma_loop`] performs.
    const PEAK_FLOPS_PER_ITER: usize;

    /// Computes one full tile: `C (+)= A·B` over `k`, then the epilogue when given.
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `a` points to `k·MR` readable values, `b`
    /// to `k·NR`; `c` to `MR` rows of `NR` writable values at row stride `ldc`; the epilogue's
    /// non-null pointers cover the tile as [`TileEpilogue`] describes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    );

    /// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of A into `MR`-row panels (see
    /// [`crate::pack::pack_a_panels`]).
    fn pack_a(a: &crate::mat::MatRef<'_>, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]);

    /// Runs `iterations` rounds of independent FMA chains and returns a value that depends on
    /// all of them (so the work cannot be elided).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set.
    unsafe fn fma_loop(iterations: usize) -> f32;
}

/// Defines a [`Microkernel`] from a vector type, a tile geometry (`MR` rows × `NV` vectors) and
/// the `#[target_feature]` list that the vector type's intrinsics need.
macro_rules! microkernel {
    ($(#[$meta:meta])* $name:ident, $vec:ty, mr = $mr:expr, nv = $nv:expr $(, features = $features:literal)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name;

        impl $name {
            $(#[target_feature(enable = $features)])?
            unsafe fn tile_impl(
                k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile`'s contract.
                unsafe { $crate::gemm::tile::tile::<$vec, $mr, $nv>(k, a, b, c, ldc, accumulate, epi) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn fma_loop_impl(iterations: usize) -> f32 {
                // SAFETY: forwarded from `Microkernel::fma_loop`'s contract.
                unsafe { $crate::gemm::tile::fma_loop::<$vec>(iterations) }
            }
        }

        impl $crate::gemm::Microkernel for $name {
            const MR: usize = $mr;
            const NR: usize = $nv * <$vec as $crate::simd::SimdF32>::LANES;
            const PEAK_FLOPS_PER_ITER: usize =
                2 * $crate::gemm::tile::PEAK_CHAINS * <$vec as $crate::simd::SimdF32>::LANES;

            unsafe fn tile(
                k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::tile_impl(k, a, b, c, ldc, accumulate, epi) }
            }

            fn pack_a(a: &$crate::mat::MatRef<'_>, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
                $crate::pack::pack_a_panels::<$mr>(a, i0, mc, p0, kc, dst)
            }

            unsafe fn fma_loop(iterations: usize) -> f32 {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::fma_loop_impl(iterations) }
            }
        }
    };
}
pub(crate) use microkernel;
