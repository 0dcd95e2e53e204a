//! 2-D convolutions (ONNX `Conv` and `ConvTranspose`) on NHWC tensors, built on the GEMM.
//!
//! [`ConvParams`] holds the attributes; a kernel set packs ONNX-layout weights once into a
//! [`PackedConv`] (serializable) and runs it on [`ImageRef`] → [`ImageMut`] with the same fused
//! [`crate::Epilogue`] as the GEMM (bias per output channel, residual as the `(n·h·w) × c`
//! matrix of an NHWC tensor, activation). See [`driver`] for which algorithm runs when, and
//! [`expand`] for a pointwise convolution and the depthwise one it feeds run as one (the
//! inverted residual blocks of mobile CNNs).

pub(crate) mod depthwise;
pub(crate) mod driver;
pub(crate) mod expand;
pub(crate) mod grouped;
mod im2col;
mod image;
mod packed;
mod params;
mod plan;
pub(crate) mod winograd;

pub use image::{ImageMut, ImageRef};
#[cfg(feature = "cuda")]
pub(crate) use packed::Body;
pub use packed::{ConvAlgorithm, PackedConv};
pub use params::{ConvKind, ConvParams};
#[cfg(feature = "cuda")]
pub(crate) use plan::{forward_taps, transposed_phases};

use crate::gemm::Microkernel;

/// The convolution kernels that are not GEMM tiles, for one vector type and instruction set
/// (`crate::vector`'s `vector_kernels!` implements them for each).
pub(crate) trait ConvRows: Send + Sync + 'static {
    /// Computes a band of output rows of a depthwise convolution (see
    /// [`crate::conv::depthwise::rows`]).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `r`'s pointers cover what
    /// [`crate::conv::depthwise::DwRow`] describes for `g`.
    unsafe fn depthwise_rows(g: &crate::conv::depthwise::DwGeom, r: &crate::conv::depthwise::DwRow);

    /// Runs one transform stage of Winograd F(4×4, 3×3) for tiles `first..first + rows` (see
    /// [`crate::conv::winograd::run`]).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; the stage's pointers cover what
    /// [`crate::conv::winograd::run`] needs, and nothing else writes its outputs meanwhile.
    unsafe fn winograd(
        g: &crate::conv::winograd::Geom,
        stage: &crate::conv::winograd::Stage,
        first: usize,
        rows: usize,
    );

    /// Computes output pixels `first..first + pixels` of a grouped convolution with narrow
    /// groups (see [`crate::conv::grouped::run`]).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `g`'s pointers cover what
    /// [`crate::conv::grouped::run`] needs, a group's outputs fit in 4 of the kernel's
    /// vectors, and nothing else writes those pixels meanwhile.
    unsafe fn grouped(g: &crate::conv::grouped::Geom, first: usize, pixels: usize);
}

/// A set's main GEMM tile and the row kernels the convolution driver runs beside it
/// (depthwise, Winograd, narrow groups).
pub(crate) trait ConvKernel: Microkernel {
    /// The row kernels on this tile's vectors and instruction set.
    type Rows: ConvRows;
    /// The row kernels on the vectors of the set's wide tile ([`Microkernel::Wide`]).
    type WideRows: ConvRows;
}
