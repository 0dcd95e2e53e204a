//! Kernel argument blocks, field for field the structs in `kernels/common.cuh` and
//! `kernels/depthwise.cu` (change both together).

use cudarc::driver::DeviceRepr;

/// `GemmArgs` of `common.cuh`: one GEMM or implicit-GEMM convolution launch.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GemmArgs {
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub bias: u64,
    pub residual: u64,
    pub offs: u64,
    pub lda: i64,
    pub ldc: i64,
    pub b_ps: i64,
    pub b_rs: i64,
    pub b_gs: i64,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub bias_mode: i32,
    pub act: i32,
    pub p0: f32,
    pub p1: f32,
    pub conv: i32,
    pub in_h: i32,
    pub in_w: i32,
    pub in_c: i32,
    pub gh: i32,
    pub gw: i32,
    pub is_h: i32,
    pub is_w: i32,
    pub cg_in: i32,
    pub out_h: i32,
    pub out_w: i32,
    pub oy0: i32,
    pub ox0: i32,
    pub os_h: i32,
    pub os_w: i32,
    pub c_out: i32,
    pub ws: u64,
    pub splits: i32,
    pub k_chunk: i32,
    pub groups: i32,
}

/// `DwArgs` of `depthwise.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DwArgs {
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub residual: u64,
    pub y: u64,
    pub total: i64,
    pub h: i32,
    pub w_: i32,
    pub c: i32,
    pub oh: i32,
    pub ow: i32,
    pub c_out: i32,
    pub kh: i32,
    pub kw: i32,
    pub sh: i32,
    pub sw: i32,
    pub dh: i32,
    pub dw: i32,
    pub pt: i32,
    pub pl: i32,
    pub mult: i32,
    pub act: i32,
    pub p0: f32,
    pub p1: f32,
}

/// Operations of one `map_*` launch (`MAP_MAX` of `ops.cu`).
pub(crate) const MAP_MAX: usize = 8;

/// `MapArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MapArgs {
    pub x: u64,
    pub y: u64,
    pub total: i64,
    pub c: i64,
    pub stride: i64,
    pub nops: i32,
    pub pad_: i32,
    pub op: [i32; MAP_MAX],
    pub p0: [f32; MAP_MAX],
    pub p1: [f32; MAP_MAX],
    pub k: [u64; MAP_MAX],
    pub klen: [i32; MAP_MAX],
}

/// `BinArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BinArgs {
    pub a: u64,
    pub b: u64,
    pub y: u64,
    pub total: i64,
    pub d: [i64; 4],
    pub sa: [i64; 4],
    pub sb: [i64; 4],
    pub op: i32,
    pub pad_: i32,
}

/// Axes of one strided copy (`COPY_RANK` of `ops.cu`).
pub(crate) const COPY_RANK: usize = 6;

/// `CopyArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CopyArgs {
    pub x: u64,
    pub y: u64,
    pub total: i64,
    pub x0: i64,
    pub y0: i64,
    pub rank: i32,
    pub pad_: i32,
    pub d: [i64; COPY_RANK],
    pub sx: [i64; COPY_RANK],
    pub sy: [i64; COPY_RANK],
}

/// `PoolArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PoolArgs {
    pub x: u64,
    pub y: u64,
    pub total: i64,
    pub h: i32,
    pub w: i32,
    pub c: i32,
    pub oh: i32,
    pub ow: i32,
    pub kh: i32,
    pub kw: i32,
    pub sh: i32,
    pub sw: i32,
    pub dh: i32,
    pub dw: i32,
    pub pt: i32,
    pub pl: i32,
    pub pb: i32,
    pub pr: i32,
    pub max: i32,
    pub include_pad: i32,
    pub pad_: i32,
}

/// `GapArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GapArgs {
    pub x: u64,
    pub y: u64,
    pub part: u64,
    pub hw: i64,
    pub n: i32,
    pub c: i32,
    pub splits: i32,
    pub pad_: i32,
}

/// `ResizeArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ResizeArgs {
    pub x: u64,
    pub y: u64,
    pub rows: u64,
    pub rt: u64,
    pub cols: u64,
    pub ct: u64,
    pub n: i32,
    pub h: i32,
    pub w: i32,
    pub c: i32,
    pub oh: i32,
    pub ow: i32,
    pub linear: i32,
    pub planes: i32,
}

/// `SoftmaxArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SoftmaxArgs {
    pub x: u64,
    pub y: u64,
    pub outer: i64,
    pub len: i64,
    pub inner: i64,
}

/// `LayerNormArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LayerNormArgs {
    pub x: u64,
    pub y: u64,
    pub scale: u64,
    pub bias: u64,
    pub rows: i64,
    pub len: i64,
    pub eps: f32,
    pub pad_: i32,
}

/// Batch axes of `MatMulArgs`.
pub(crate) const MM_RANK: usize = 4;

/// `MatMulArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MatMulArgs {
    pub a: u64,
    pub b: u64,
    pub y: u64,
    pub m: i64,
    pub k: i64,
    pub n: i64,
    pub batch: [i64; MM_RANK],
    pub sa: [i64; MM_RANK],
    pub sb: [i64; MM_RANK],
}

/// `ConvertArgs` of `ops.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConvertArgs {
    pub x: u64,
    pub y: u64,
    pub total: i64,
}

// SAFETY: each is `#[repr(C)]` plain data (integers, floats, device addresses) laid out as
// the CUDA struct it mirrors; the kernels read them by value.
unsafe impl DeviceRepr for GemmArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for DwArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for MapArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for BinArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for CopyArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for PoolArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for GapArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for ResizeArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for SoftmaxArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for LayerNormArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for MatMulArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for ConvertArgs {}

/// An index or size as the kernels' `int`, or an error naming what overflowed.
pub(crate) fn int(v: usize, what: &str) -> crate::Result<i32> {
    i32::try_from(v)
        .map_err(|_| crate::KernelError::Shape(format!("{what} = {v} exceeds the CUDA kernels' 2^31 limit")))
}

/// A signed offset as the kernels' `int`.
pub(crate) fn sint(v: isize, what: &str) -> crate::Result<i32> {
    i32::try_from(v)
        .map_err(|_| crate::KernelError::Shape(format!("{what} = {v} exceeds the CUDA kernels' 2^31 limit")))
}

/// `(code, p0, p1)` of any activation as `map_fn()` in `ops.cu` reads it (the element-wise
/// kernel has every one; the epilogues' `activate()` in `common.cuh` the first six, codes 0..=5).
pub(crate) fn map_activation(a: crate::Activation) -> (i32, f32, f32) {
    use crate::Activation as A;
    match a {
        A::Identity => (0, 0.0, 0.0),
        A::Relu => (1, 0.0, 0.0),
        A::Clip { min, max } => (2, min, max),
        A::HardSigmoid { alpha, beta } => (3, alpha, beta),
        A::HardSwish => (4, 0.0, 0.0),
        A::Sigmoid => (5, 0.0, 0.0),
        A::LeakyRelu { alpha } => (6, alpha, 0.0),
        A::Tanh => (7, 0.0, 0.0),
        A::Silu => (8, 0.0, 0.0),
        A::Gelu => (9, 0.0, 0.0),
        A::GeluTanh => (10, 0.0, 0.0),
        A::Mish => (11, 0.0, 0.0),
    }
}

/// `(code, p0, p1)` of an activation, as `activate()` in `common.cuh` reads it. The CUDA
/// epilogue has the first six activations only: the transcendental ones (Tanh, SiLU, GELU,
/// Mish) and LeakyRelu would push the convolution kernels past their 128 registers (ptxas
/// spills, checked by `kernels/tests/cuda_compile.rs`), so they are refused by name (a plan
/// runs them as a separate element-wise step).
pub(crate) fn activation(a: crate::Activation) -> crate::Result<(i32, f32, f32)> {
    match map_activation(a) {
        code @ (0..=5, _, _) => Ok(code),
        _ => Err(crate::KernelError::Unavailable {
            set: "cuda".into(),
            reason: format!("the CUDA epilogues have no {a:?} activation (it runs on CPU sets only)"),
        }),
    }
}
