//! 2-D convolutions (ONNX `Conv` and `ConvTranspose`) on NHWC tensors, built on the GEMM.
//!
//! [`ConvParams`] holds the attributes; a kernel set packs ONNX-layout weights once into a
//! [`PackedConv`] (serializable) and runs it on [`ImageRef`] → [`ImageMut`] with the same fused
//! [`crate::Epilogue`] as the GEMM (bias per output channel, residual as the `(n·h·w) × c`
//! matrix of an NHWC tensor, activation). See [`driver`] for which algorithm runs when.

pub(crate) mod depthwise;
pub(crate) mod driver;
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
