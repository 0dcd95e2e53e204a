//! The CUDA kernel set (feature `cuda`): CUDA C kernels compiled at run time with NVRTC for the
//! device's `sm_XX`, launched through cudarc.
//!
//! - [`compile`]: the kernel sources and NVRTC → CUBIN with ptxas's register/spill report
//!   (works with NVRTC alone, no GPU: the compile checks in CI);
//! - [`Gpu`]: the process's device, its stream and kernels ([`gpu`] opens it once, or says
//!   why not: no driver, no device, no NVRTC — an error value, never a panic);
//! - [`DeviceMatrix`], [`DeviceConv`]: weights uploaded once, in f32 or f16;
//! - [`Gpu::gemm`], [`Gpu::conv2d`]: launches on [`DeviceTensor`]s with the fused epilogue;
//! - [`Gpu::map`], [`Gpu::binary`], [`Gpu::copy`], [`Gpu::pool2d`], [`Gpu::resize`], …: the
//!   plan's other steps on device tensors, so a whole model runs between one upload and one
//!   download;
//! - the [`crate::KernelSet`] implementation (`kernel_set(KernelSetId::Cuda)`), f32 on host
//!   slices, for the generic kernel suites, whose [`crate::KernelSet::device`] is the GPU:
//!   a model's weights uploaded once and per session a stream, one device buffer per slot of
//!   the memory plan and the run captured as one CUDA graph (`program`).
//!
//! Kernels: a tiled f32/f16-storage GEMM on the CUDA cores that is also the implicit-GEMM
//! convolution (dense, grouped, pointwise, each `ConvTranspose` phase), f16 tensor-core
//! GEMMs/convolutions (`wmma` on sm_70+ for Volta and Jetson Xavier, `mma.sync` on sm_80+,
//! and Hopper's warpgroup `wgmma` on sm_90a for outputs wider than 128 columns), and a
//! depthwise kernel.

mod args;
pub mod compile;
mod device;
mod graph;
mod launch;
mod ops;
mod program;
pub(crate) mod set;
mod weights;

pub use device::{driver_present, gpu, DeviceBuf, DeviceTensor, Gpu, PinnedBuf, Precision};
pub use graph::DeviceGraph;
pub use launch::{DeviceBias, DeviceEpilogue};
pub use ops::{BinaryOp, ChainOp, DeviceGap, DeviceMap, DeviceResize, StridedCopy};
pub use weights::{DeviceConv, DeviceMatrix, NR};
