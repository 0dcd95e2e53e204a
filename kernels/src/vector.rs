//! Row and element kernels: the operations that are not GEMM tiles — depthwise and grouped
//! convolutions, Winograd's transforms, pooling, row normalisation, activations and unary
//! functions — written once over [`SimdF32`](crate::simd::SimdF32) in their own modules and
//! compiled per instruction set by [`vector_kernels!`] inside `#[target_feature]` functions.
//! Each instruction set's folder ties its main GEMM tile to these kernels
//! ([`crate::conv::ConvKernel`]); neither `gemm` nor `conv` names this module.

use crate::conv::ConvRows;

/// The row and element kernels of one vector type and instruction set: the convolution
/// kernels of [`ConvRows`] and the others.
pub(crate) trait VectorKernels: ConvRows {
    /// Computes output rows `rows` of a pool (see [`crate::pool::rows`]).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `g` was checked against the images at
    /// `x` and `y`, which cover `rows`, and nothing else writes those rows during the call.
    unsafe fn pool_rows(g: &crate::pool::PoolGeom, x: *const f32, y: *mut f32, rows: std::ops::Range<usize>);

    /// Sums `pixels` pixels of `c` channels at `x` into `c` values at `out`, times `scale` (see
    /// [`crate::pool::sum_pixels`]).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `x` holds `pixels·c` values, `out` `c`.
    unsafe fn pool_sum(x: *const f32, c: usize, pixels: usize, scale: f32, out: *mut f32);

    /// Normalises rows `rows` of `len` values (see [`crate::rows::rows`]).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; the call was checked and `x`, `y` hold
    /// `rows.end · len` values; nothing else writes those rows during the call.
    unsafe fn norm_rows(
        norm: &crate::rows::RowNorm<'_>,
        x: *const f32,
        y: *mut f32,
        len: usize,
        rows: std::ops::Range<usize>,
    );

    /// Applies `act` to every element of `data` in place.
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set.
    unsafe fn activate(act: crate::Activation, data: &mut [f32]);

    /// Applies `f` to every element of `data` in place.
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set.
    unsafe fn unary(f: crate::Unary, data: &mut [f32]);
}

/// Defines a [`VectorKernels`] from a vector type, the `#[target_feature]` list its intrinsics
/// need and, optionally, the vector registers its tiles may use where the instruction set has
/// more than the vector type's default (AVX-512VL's 32 for 256-bit vectors).
macro_rules! vector_kernels {
    ($(#[$meta:meta])* $name:ident, $vec:ty $(, features = $features:literal)? $(, registers = $regs:expr)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name;

        impl $name {
            $(#[target_feature(enable = $features)])?
            unsafe fn depthwise_rows_impl(g: &$crate::conv::depthwise::DwGeom, r: &$crate::conv::depthwise::DwRow) {
                // SAFETY: forwarded from `ConvRows::depthwise_rows`'s contract.
                unsafe { $crate::conv::depthwise::rows::<$vec>(g, r) }
            }

            // The banded 3×3 kernel in functions of its own, one per pair of strides: in one
            // function with the row-by-row kernel, LLVM allocated that one's registers worse
            // (figures: docs/perf-log/2026-11-28-design-figures.md).
            $(#[target_feature(enable = $features)])?
            unsafe fn depthwise_band_impl<const SH: usize, const SW: usize>(
                g: &$crate::conv::depthwise::DwGeom,
                r: &$crate::conv::depthwise::DwRow,
            ) {
                // SAFETY: forwarded from `ConvRows::depthwise_rows`'s contract, for a
                // convolution `depthwise::banded` accepted with strides [SH, SW].
                unsafe { $crate::conv::depthwise::band::<$vec, SH, SW>(g, r) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn winograd_impl(
                g: &$crate::conv::winograd::Geom, stage: &$crate::conv::winograd::Stage, first: usize, rows: usize,
            ) {
                // SAFETY: forwarded from `ConvRows::winograd`'s contract.
                unsafe { $crate::conv::winograd::run::<$vec>(g, stage, first, rows) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn grouped_impl(g: &$crate::conv::grouped::Geom, first: usize, pixels: usize) {
                // The vector registers the tiles may use: the vector type's, unless the set
                // says it has more (AVX-512's 32 of 256-bit ones).
                const REGS: usize = <$vec as $crate::simd::SimdF32>::REGISTERS $(* 0 + $regs)?;
                // SAFETY: forwarded from `ConvRows::grouped`'s contract.
                unsafe { $crate::conv::grouped::run::<$vec, REGS>(g, first, pixels) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn pool_rows_impl(
                g: &$crate::pool::PoolGeom, x: *const f32, y: *mut f32, rows: std::ops::Range<usize>,
            ) {
                // SAFETY: forwarded from `VectorKernels::pool_rows`'s contract.
                unsafe { $crate::pool::rows::<$vec>(g, x, y, rows) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn pool_sum_impl(x: *const f32, c: usize, pixels: usize, scale: f32, out: *mut f32) {
                // SAFETY: forwarded from `VectorKernels::pool_sum`'s contract.
                unsafe { $crate::pool::sum_pixels::<$vec>(x, c, pixels, scale, out) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn norm_rows_impl(
                norm: &$crate::rows::RowNorm<'_>, x: *const f32, y: *mut f32, len: usize, rows: std::ops::Range<usize>,
            ) {
                // SAFETY: forwarded from `VectorKernels::norm_rows`'s contract.
                unsafe { $crate::rows::rows::<$vec>(norm, x, y, len, rows) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn activate_impl(act: $crate::Activation, data: &mut [f32]) {
                // SAFETY: forwarded from `VectorKernels::activate`'s contract.
                unsafe { act.apply_slice::<$vec>(data) }
            }

            $(#[target_feature(enable = $features)])?
            unsafe fn unary_impl(f: $crate::Unary, data: &mut [f32]) {
                // One loop per function, so each inlines into this `#[target_feature]` body.
                macro_rules! sweep {
                    ($f:expr) => {
                        // Forwarded from `VectorKernels::unary`'s contract.
                        $crate::math::map_slice!($vec, data, |v| $f.apply(v))
                    };
                }
                match f {
                    $crate::Unary::Exp => sweep!($crate::Unary::Exp),
                    $crate::Unary::Log => sweep!($crate::Unary::Log),
                    $crate::Unary::Tanh => sweep!($crate::Unary::Tanh),
                    $crate::Unary::Erf => sweep!($crate::Unary::Erf),
                    $crate::Unary::Sigmoid => sweep!($crate::Unary::Sigmoid),
                }
            }
        }

        impl $crate::conv::ConvRows for $name {
            unsafe fn depthwise_rows(g: &$crate::conv::depthwise::DwGeom, r: &$crate::conv::depthwise::DwRow) {
                // SAFETY: forwarded from this method's contract; the banded kernel only for
                // the convolutions `banded` accepts, at their strides.
                unsafe {
                    match $crate::conv::depthwise::banded::<$vec>(g) {
                        Some([1, 1]) => Self::depthwise_band_impl::<1, 1>(g, r),
                        Some([2, 1]) => Self::depthwise_band_impl::<2, 1>(g, r),
                        Some([2, 2]) => Self::depthwise_band_impl::<2, 2>(g, r),
                        Some(_) => Self::depthwise_band_impl::<1, 2>(g, r),
                        None => Self::depthwise_rows_impl(g, r),
                    }
                }
            }

            unsafe fn grouped(g: &$crate::conv::grouped::Geom, first: usize, pixels: usize) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::grouped_impl(g, first, pixels) }
            }

            unsafe fn winograd(
                g: &$crate::conv::winograd::Geom, stage: &$crate::conv::winograd::Stage, first: usize, rows: usize,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::winograd_impl(g, stage, first, rows) }
            }
        }

        impl $crate::vector::VectorKernels for $name {
            unsafe fn activate(act: $crate::Activation, data: &mut [f32]) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::activate_impl(act, data) }
            }

            unsafe fn norm_rows(
                norm: &$crate::rows::RowNorm<'_>, x: *const f32, y: *mut f32, len: usize, rows: std::ops::Range<usize>,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::norm_rows_impl(norm, x, y, len, rows) }
            }

            unsafe fn pool_rows(
                g: &$crate::pool::PoolGeom, x: *const f32, y: *mut f32, rows: std::ops::Range<usize>,
            ) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::pool_rows_impl(g, x, y, rows) }
            }

            unsafe fn pool_sum(x: *const f32, c: usize, pixels: usize, scale: f32, out: *mut f32) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::pool_sum_impl(x, c, pixels, scale, out) }
            }

            unsafe fn unary(f: $crate::Unary, data: &mut [f32]) {
                // SAFETY: forwarded from this method's contract.
                unsafe { Self::unary_impl(f, data) }
            }
        }

    };
}
pub(crate) use vector_kernels;
