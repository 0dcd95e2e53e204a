//! f32 GEMM: the BLIS five-loop driver ([`driver`]) and the register-tile microkernel ([`tile`]),
//! both written once; an instruction set contributes only a [`crate::simd::SimdF32`]
//! implementation and a tile geometry, through [`microkernel!`].

pub(crate) mod driver;
pub(crate) mod source;
pub(crate) mod tile;

pub(crate) use source::{ASource, RowPointers};

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

/// Where a tile's results go: `rows ≤ MR` rows of `cols ≤ NR` values at row stride `ldc`.
/// The microkernel touches nothing outside them.
#[derive(Clone, Copy)]
pub(crate) struct TileOut {
    /// First element.
    pub c: *mut f32,
    /// Row stride.
    pub ldc: usize,
    /// Rows to store.
    pub rows: usize,
    /// Columns to store.
    pub cols: usize,
}

/// A register-blocked `MR × NR` microkernel for one instruction set.
pub(crate) trait Microkernel: Send + Sync + 'static {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Columns of the narrow tile ([`Microkernel::tile_narrow`]): one vector.
    const NARROW: usize;
    /// The set's second tile, for convolution weights packed at its `NR` (see
    /// [`crate::PanelWidths`]); `Self` when the set has one tile only.
    type Wide: Microkernel;
    /// Floating-point operations one iteration of [`Microkernel::fma_loop`] performs, when the
    /// probe measures an instruction set's FMA ceiling; `None` for portable vectors, whose
    /// probe is whatever the compiler made of plain Rust (no fraction of it is meaningful).
    const PEAK_FLOPS_PER_ITER: Option<usize>;
    /// Whether the driver reads a row-major A in place for any product whose B block fits
    /// in L2 (measured on the set's hardware: AVX2 and AVX-512 on Zen 4), rather than only
    /// for products a few B panels wide (the portable and NEON kernels, whose one-step-per-trip
    /// in-place loop loses to packed A on wide products: scalar 256³ GEMM −22 %).
    const A_IN_PLACE_UP_TO_L2: bool = false;

    /// Computes one tile: `C (+)= A·B` over `k`, then the epilogue when given, storing the
    /// `out.rows × out.cols` corner.
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `a` points to `k·MR` readable values, `b`
    /// to `k·NR`; `out` describes writable memory; the epilogue's non-null pointers cover
    /// `out.rows` rows / `out.cols` columns as [`TileEpilogue`] describes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, out: &TileOut, accumulate: bool, epi: Option<&TileEpilogue>);

    /// [`Microkernel::tile`] computing only the first [`Microkernel::NARROW`] columns of the
    /// `NR`-wide B panel: for edge tiles with `out.cols ≤ NARROW`, which would otherwise
    /// spend most of their multiply-adds on padding.
    ///
    /// # Safety
    /// As [`Microkernel::tile`], and `out.cols ≤ NARROW`.
    unsafe fn tile_narrow(
        k: usize,
        a: *const f32,
        b: *const f32,
        out: &TileOut,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    );

    /// As [`Microkernel::tile`], but A is read unpacked: `MR` rows of `k` contiguous values at
    /// row stride `lda`.
    ///
    /// # Safety
    /// As for [`Microkernel::tile`], with `a` covering `MR` rows of `k` values at stride `lda`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_direct(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        out: &TileOut,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    );

    /// [`Microkernel::tile_direct`] computing only the first [`Microkernel::NARROW`] columns
    /// (see [`Microkernel::tile_narrow`]).
    ///
    /// # Safety
    /// As [`Microkernel::tile_direct`], and `out.cols ≤ NARROW`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_direct_narrow(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        out: &TileOut,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    );

    /// One tile with A read in place from runs of columns (see [`tile::tile_runs`]); the
    /// narrow tile when `out.cols ≤ NARROW`.
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; for each run `(at, len)`, `MR` rows of
    /// `len` readable values at `a + at + i·lda`; `b` holds `Σ len · NR` values; `out` and
    /// the epilogue as for [`Microkernel::tile`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_runs(
        a: *const f32,
        runs: &[(usize, usize)],
        lda: usize,
        b: *const f32,
        out: &TileOut,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    );

    /// One tile with A read through row pointers (see [`tile::tile_rows`]); the narrow tile
    /// when `out.cols ≤ NARROW`.
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `ptrs` holds `segs.len()·MR` pointers,
    /// segment by segment, each to `segs[s]` readable values; `b` holds `Σ segs · NR` values;
    /// `out` and the epilogue as for [`Microkernel::tile`].
    unsafe fn tile_rows(
        ptrs: *const *const f32,
        segs: &[usize],
        b: *const f32,
        out: &TileOut,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    );

    /// One row of C with A one row of `k` contiguous values (see [`tile::tile_row`]); the
    /// narrow tile when `out.cols ≤ NARROW`.
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `a` points to `k` readable values, `b`
    /// to `k·NR`; `out.rows == 1`, and `out` and the epilogue as for [`Microkernel::tile`].
    unsafe fn tile_row(
        k: usize,
        a: *const f32,
        b: *const f32,
        out: &TileOut,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    );

    /// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of A into `MR`-row panels (see
    /// [`ASource::pack`]).
    fn pack_a<A: ASource>(a: &A, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]);

    /// Runs `iterations` rounds of independent FMA chains and returns a value that depends on
    /// all of them (so the work cannot be elided).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set.
    unsafe fn fma_loop(iterations: usize) -> f32;
}

/// Defines a [`Microkernel`] from a vector type, a tile geometry (`MR` rows × `NV` vectors), the
/// number of independent chains its FMA peak probe needs, the `#[target_feature]` list that
/// the vector type's intrinsics need, the set's second tile (`wide = Self` for none) and,
/// optionally, [`Microkernel::A_IN_PLACE_UP_TO_L2`].
/// Name a kernel by its instruction set, element type and geometry (`Avx2F32_6x16`).
macro_rules! microkernel {
    ($(#[$meta:meta])* $name:ident, $vec:ty, mr = $mr:expr, nv = $nv:expr, peak_chains = $chains:expr $(, features = $features:literal)?, wide = $wide:ty $(, a_in_place_up_to_l2 = $aip:expr)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name;

        impl $name {
            $(#[target_feature(enable = $features)])?
            unsafe fn tile_impl(
                k: usize, a: *const f32, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile`'s contract.
                unsafe { $crate::gemm::tile::tile::<$vec, $mr, $nv, $nv, true>(k, a, 0, b, out, accumulate, epi) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn tile_narrow_impl(
                k: usize, a: *const f32, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile_narrow`'s contract.
                unsafe { $crate::gemm::tile::tile::<$vec, $mr, 1, $nv, true>(k, a, 0, b, out, accumulate, epi) }
            }

            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_direct_impl(
                k: usize, a: *const f32, lda: usize, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile_direct`'s contract.
                unsafe { $crate::gemm::tile::tile::<$vec, $mr, $nv, $nv, false>(k, a, lda, b, out, accumulate, epi) }
            }

            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_direct_narrow_impl(
                k: usize, a: *const f32, lda: usize, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile_direct_narrow`'s contract.
                unsafe { $crate::gemm::tile::tile::<$vec, $mr, 1, $nv, false>(k, a, lda, b, out, accumulate, epi) }
            }

            /// One function per tile width (`TILE_NV` vectors of the `$nv`-vector panel; not
            /// `NV`, which a set's `$nv` may name): the narrow and full tiles in one function
            /// shared the accumulators' stack slots, and the full tile kept its accumulators
            /// on the stack through the epilogue.
            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_runs_impl<const TILE_NV: usize>(
                a: *const f32, runs: &[(usize, usize)], lda: usize, b: *const f32, out: &$crate::gemm::TileOut,
                accumulate: bool, epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile_runs`'s contract.
                unsafe { $crate::gemm::tile::tile_runs::<$vec, $mr, TILE_NV, $nv>(a, runs, lda, b, out, accumulate, epi) }
            }

            /// Per tile width, as [`Self::tile_runs_impl`].
            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_rows_impl<const TILE_NV: usize>(
                ptrs: *const *const f32, segs: &[usize], b: *const f32, out: &$crate::gemm::TileOut,
                accumulate: bool, epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile_rows`'s contract.
                unsafe { $crate::gemm::tile::tile_rows::<$vec, $mr, TILE_NV, $nv>(ptrs, segs, b, out, accumulate, epi) }
            }

            /// Per tile width, as [`Self::tile_runs_impl`].
            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_row_impl<const TILE_NV: usize>(
                k: usize, a: *const f32, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from `Microkernel::tile_row`'s contract.
                unsafe { $crate::gemm::tile::tile_row::<$vec, TILE_NV, $nv>(k, a, b, out, accumulate, epi) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn fma_loop_impl(iterations: usize) -> f32 {
                // SAFETY: forwarded from `Microkernel::fma_loop`'s contract.
                unsafe { $crate::gemm::tile::fma_loop::<$vec, $chains>(iterations) }
            }
        }

        impl $crate::gemm::Microkernel for $name {
            const MR: usize = $mr;
            const NR: usize = $nv * <$vec as $crate::simd::SimdF32>::LANES;
            const NARROW: usize = <$vec as $crate::simd::SimdF32>::LANES;
            type Wide = $wide;
            // An instruction set's kernel (one with target features) measures its ceiling.
            const PEAK_FLOPS_PER_ITER: Option<usize> = if false $(|| !$features.is_empty())? {
                Some(2 * $chains * <$vec as $crate::simd::SimdF32>::LANES)
            } else {
                None
            };
            $(const A_IN_PLACE_UP_TO_L2: bool = $aip;)?

            unsafe fn tile(
                k: usize, a: *const f32, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::tile_impl(k, a, b, out, accumulate, epi) }
            }

            unsafe fn tile_narrow(
                k: usize, a: *const f32, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::tile_narrow_impl(k, a, b, out, accumulate, epi) }
            }

            unsafe fn tile_direct(
                k: usize, a: *const f32, lda: usize, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::tile_direct_impl(k, a, lda, b, out, accumulate, epi) }
            }

            unsafe fn tile_direct_narrow(
                k: usize, a: *const f32, lda: usize, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::tile_direct_narrow_impl(k, a, lda, b, out, accumulate, epi) }
            }

            #[allow(unused_braces)] // `{ $nv }` is needed when the geometry is a path expression
            unsafe fn tile_runs(
                a: *const f32, runs: &[(usize, usize)], lda: usize, b: *const f32, out: &$crate::gemm::TileOut,
                accumulate: bool, epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                let narrow = out.cols <= Self::NARROW && Self::NARROW < Self::NR;
                // SAFETY: forwarded from this method's contract.
                unsafe {
                    match narrow {
                        true => Self::tile_runs_impl::<1>(a, runs, lda, b, out, accumulate, epi),
                        false => Self::tile_runs_impl::<{ $nv }>(a, runs, lda, b, out, accumulate, epi),
                    }
                }
            }

            #[allow(unused_braces)] // `{ $nv }` is needed when the geometry is a path expression
            unsafe fn tile_rows(
                ptrs: *const *const f32, segs: &[usize], b: *const f32, out: &$crate::gemm::TileOut,
                accumulate: bool, epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                let narrow = out.cols <= Self::NARROW && Self::NARROW < Self::NR;
                // SAFETY: forwarded from this method's contract.
                unsafe {
                    match narrow {
                        true => Self::tile_rows_impl::<1>(ptrs, segs, b, out, accumulate, epi),
                        false => Self::tile_rows_impl::<{ $nv }>(ptrs, segs, b, out, accumulate, epi),
                    }
                }
            }

            #[allow(unused_braces)] // `{ $nv }` is needed when the geometry is a path expression
            unsafe fn tile_row(
                k: usize, a: *const f32, b: *const f32, out: &$crate::gemm::TileOut, accumulate: bool,
                epi: Option<&$crate::gemm::TileEpilogue>,
            ) {
                let narrow = out.cols <= Self::NARROW && Self::NARROW < Self::NR;
                // SAFETY: forwarded from this method's contract.
                unsafe {
                    match narrow {
                        true => Self::tile_row_impl::<1>(k, a, b, out, accumulate, epi),
                        false => Self::tile_row_impl::<{ $nv }>(k, a, b, out, accumulate, epi),
                    }
                }
            }

            #[allow(unused_braces)] // `{ $mr }` is needed when the geometry is a path expression
            fn pack_a<A: $crate::gemm::ASource>(a: &A, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
                a.pack::<{ $mr }>(i0, mc, p0, kc, dst)
            }

            unsafe fn fma_loop(iterations: usize) -> f32 {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::fma_loop_impl(iterations) }
            }
        }
    };
}
pub(crate) use microkernel;
