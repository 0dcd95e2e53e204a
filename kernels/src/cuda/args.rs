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

// SAFETY: both are `#[repr(C)]` plain data (integers, floats, device addresses) laid out as
// the CUDA structs they mirror; the kernels read them by value.
unsafe impl DeviceRepr for GemmArgs {}
// SAFETY: as above.
unsafe impl DeviceRepr for DwArgs {}

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

/// `(code, p0, p1)` of an activation, as `activate()` in `common.cuh` reads it. The CUDA
/// epilogue has the first six activations only: the transcendental ones (Tanh, SiLU, GELU,
/// Mish) and LeakyRelu would push the convolution kernels past their 128 registers (ptxas
/// spills, checked by `kernels/tests/cuda_compile.rs`), so they are refused by name.
pub(crate) fn activation(a: crate::Activation) -> crate::Result<(i32, f32, f32)> {
    use crate::Activation as A;
    Ok(match a {
        A::Identity => (0, 0.0, 0.0),
        A::Relu => (1, 0.0, 0.0),
        A::Clip { min, max } => (2, min, max),
        A::HardSigmoid { alpha, beta } => (3, alpha, beta),
        A::HardSwish => (4, 0.0, 0.0),
        A::Sigmoid => (5, 0.0, 0.0),
        other => {
            return Err(crate::KernelError::Unavailable {
                set: "cuda".into(),
                reason: format!("the CUDA epilogues have no {other:?} activation (it runs on CPU sets only)"),
            })
        }
    })
}
