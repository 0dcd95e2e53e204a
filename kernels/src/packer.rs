//! Packing weights for a kernel set this machine cannot run.
//!
//! A package for an ARM64, AVX-512 or NVIDIA target is built on whatever machine runs the
//! packaging job. Packed weights depend only on the set's name and its register tile's column
//! count (`NR`, and for convolutions its second tile's: [`PackedB::pack`],
//! [`PackedConv::pack`]), never on the host, so a set that
//! only packs produces the same bytes the target's own set would. [`packer`] returns the real
//! set when this machine can run it, and otherwise such a pack-only set, whose `gemm`,
//! `conv2d`, `activate` and `unary` return [`KernelError::Unavailable`].

use std::fmt;

use crate::conv::{ConvParams, ImageMut, ImageRef, PackedConv};
use crate::epilogue::Epilogue;
use crate::error::{KernelError, Result};
use crate::mat::{MatMut, MatRef};
use crate::pack::PackedB;
use crate::{kernel_set, BOperand, Blocking, KernelInfo, KernelSet, KernelSetId, Parallelism, CUDA_NR};

/// A kernel set that packs weights exactly as set `info.id` does and runs nothing.
struct PackOnly {
    info: KernelInfo,
    why: String,
}

impl fmt::Debug for PackOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KernelSet({} pack-only)", self.info.name)
    }
}

impl PackOnly {
    fn refuse<T>(&self) -> Result<T> {
        Err(KernelError::Unavailable { set: self.info.name.into(), reason: self.why.clone() })
    }
}

impl KernelSet for PackOnly {
    fn info(&self) -> &KernelInfo {
        &self.info
    }

    fn pack_b(&self, b: MatRef<'_>) -> PackedB {
        PackedB::pack(self.info.name, self.info.nr, &b)
    }

    fn gemm(
        &self,
        _a: MatRef<'_>,
        _b: BOperand<'_>,
        _c: MatMut<'_>,
        _epilogue: &Epilogue<'_>,
        _par: Parallelism,
    ) -> Result<()> {
        self.refuse()
    }

    fn pack_conv(&self, params: &ConvParams, weights: &[f32]) -> Result<PackedConv> {
        PackedConv::pack(self.info.name, self.info.panel_widths(), params, weights, None)
    }

    fn pack_conv_for_input(&self, params: &ConvParams, weights: &[f32], input_hw: [usize; 2]) -> Result<PackedConv> {
        PackedConv::pack(self.info.name, self.info.panel_widths(), params, weights, Some(input_hw))
    }

    fn conv2d(
        &self,
        _input: ImageRef<'_>,
        _weights: &PackedConv,
        _output: ImageMut<'_>,
        _epilogue: &Epilogue<'_>,
        _par: Parallelism,
    ) -> Result<()> {
        self.refuse()
    }

    fn activate(&self, _activation: crate::Activation, _data: &mut [f32]) -> Result<()> {
        self.refuse()
    }

    fn unary(&self, _f: crate::Unary, _data: &mut [f32]) -> Result<()> {
        self.refuse()
    }

    fn pool2d(
        &self,
        _input: ImageRef<'_>,
        _output: ImageMut<'_>,
        _params: &crate::PoolParams,
        _par: Parallelism,
    ) -> Result<()> {
        self.refuse()
    }

    fn normalize_rows(
        &self,
        _norm: crate::RowNorm<'_>,
        _input: &[f32],
        _len: usize,
        _out: &mut [f32],
        _par: Parallelism,
    ) -> Result<()> {
        self.refuse()
    }

    fn fma_loop(&self, _iterations: usize) -> f32 {
        0.0
    }

    fn device(&self) -> Result<std::sync::Arc<dyn crate::device::Device>> {
        self.refuse()
    }
}

/// A set that packs weights for `id`: the set itself when this machine can run it, otherwise
/// [`pack_only`]`(id)`. Use it to build plans for another machine.
pub fn packer(id: KernelSetId) -> Box<dyn KernelSet> {
    kernel_set(id).unwrap_or_else(|e| pack_only(id, &format!("this machine only packs weights for it ({e})")))
}

/// A stand-in for set `id` that packs weights byte for byte as the set does (same name, same
/// tile) and runs nothing: its `gemm` and `conv2d` return [`KernelError::Unavailable`] with
/// `why`, and its `peak_flops_per_iter` is `None`.
pub fn pack_only(id: KernelSetId, why: &str) -> Box<dyn KernelSet> {
    let (mr, nr) = id.geometry().unwrap_or((CUDA_NR, CUDA_NR));
    let blocking = Blocking { kc: 0, mc: 0, nc: 0 };
    let wide = id.wide_geometry();
    let info = KernelInfo { id, name: id.name(), isa: id.isa(), mr, nr, wide, blocking, peak_flops_per_iter: None };
    Box::new(PackOnly { info, why: why.to_owned() })
}

/// Whether this machine can run kernel set `id` (as opposed to only packing for it).
pub fn can_run(id: KernelSetId) -> bool {
    kernel_set(id).is_ok()
}
