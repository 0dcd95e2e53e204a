//! NHWC activation tensors: the layout every convolution reads and writes.
//!
//! Channels are innermost, so a pointwise convolution is a plain GEMM on the `(n·h·w) × c`
//! matrix, a depthwise one vectorises over contiguous channels, and every kernel tap of a
//! dense one is a contiguous run of `c` values (the implicit GEMM's packing reads those runs).

use crate::error::{KernelError, Result};
use crate::mat::{MatMut, MatRef};

fn check(len: usize, dims: [usize; 4]) -> Result<()> {
    let need = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match need {
        Some(need) if need == len => Ok(()),
        Some(need) => Err(KernelError::Shape(format!("NHWC tensor {dims:?} needs {need} values, slice has {len}"))),
        None => Err(KernelError::Shape(format!("NHWC tensor {dims:?} overflows"))),
    }
}

/// A read-only dense NHWC tensor.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    data: &'a [f32],
    dims: [usize; 4],
}

impl<'a> ImageRef<'a> {
    /// Views `data` as `[n, h, w, c]`; errors unless the length matches exactly.
    pub fn new(data: &'a [f32], dims: [usize; 4]) -> Result<Self> {
        check(data.len(), dims)?;
        Ok(Self { data, dims })
    }

    /// `[n, h, w, c]`.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// The values, NHWC.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// The `(n·h·w) × c` matrix view (pixels by channels).
    pub fn as_matrix(&self) -> MatRef<'a> {
        let [n, h, w, c] = self.dims;
        MatRef::row_major(self.data, n * h * w, c).expect("validated at construction")
    }
}

/// A mutable dense NHWC tensor (a convolution's output).
#[derive(Debug)]
pub struct ImageMut<'a> {
    data: &'a mut [f32],
    dims: [usize; 4],
}

impl<'a> ImageMut<'a> {
    /// Views `data` as `[n, h, w, c]`; errors unless the length matches exactly.
    pub fn new(data: &'a mut [f32], dims: [usize; 4]) -> Result<Self> {
        check(data.len(), dims)?;
        Ok(Self { data, dims })
    }

    /// `[n, h, w, c]`.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// The `(n·h·w) × c` matrix view (pixels by channels).
    pub fn as_matrix(&mut self) -> MatMut<'_> {
        let [n, h, w, c] = self.dims;
        MatMut::row_major(self.data, n * h * w, c).expect("validated at construction")
    }

    /// Raw pointer to the first value.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.data.as_mut_ptr()
    }
}
