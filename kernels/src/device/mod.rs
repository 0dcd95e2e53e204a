//! Where a kernel set keeps tensors, and a model's operations on them.
//!
//! A plan's executor names tensors by [`Handle`]s — a buffer of the plan's memory plan and the
//! tensor's length — and its steps by [`Op`]s on handles. A kernel set's [`Device`]
//! ([`crate::KernelSet::device`]) loads a model's weights and operations once
//! ([`Device::load`]: a [`LoadedModel`], shared by every session) and gives each session a
//! [`Workspace`]: the buffers, the means to move values in and out, and the launches. On the
//! GPU the buffers are device memory, launches are asynchronous on the session's stream and a
//! run can be captured and replayed as one graph; on a CPU set ([`host`]) a handle is a host
//! buffer and each operation runs at once on the set's own kernels.

pub mod host;
pub mod loops;
pub(crate) mod ops;

use std::sync::Arc;

pub use ops::{batch_offsets, BinaryOp, Epi, MapStep, Op, Operand, StridedCopy, Taps};

use crate::conv::PackedConv;
use crate::error::Result;
use crate::pack::PackedB;

/// Element type of activations and weights where a set keeps them; accumulation is always
/// f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Precision {
    /// f32 storage (CUDA-core FMA on the GPU).
    F32,
    /// f16 storage (half the memory traffic), tensor cores where the architecture has them.
    F16,
}

/// A tensor in a [`Workspace`]: the first `len` elements of buffer `buf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    /// The buffer (a slot of the plan's memory plan).
    pub buf: usize,
    /// Elements.
    pub len: usize,
}

/// What a model's operations read: its packed weights, its constants and the operations.
#[derive(Debug, Clone, Copy)]
pub struct ModelData<'a> {
    /// Convolution weights ([`Op::Conv`]'s `weights` index them).
    pub convs: &'a [PackedConv],
    /// GEMM weights ([`Op::Gemm`]'s `weights`).
    pub gemms: &'a [PackedB],
    /// Constants: biases, element-wise operands ([`Operand::Const`], [`Epi::bias`], …).
    pub consts: &'a [Vec<f32>],
    /// The operations, in the order [`Workspace::launch`] numbers them.
    pub ops: &'a [Op],
    /// Elements of each buffer ([`Handle::buf`] indexes them).
    pub buffers: &'a [usize],
}

/// Where a kernel set keeps tensors and runs operations on them.
pub trait Device: Send + Sync {
    /// The device, in words (`NVIDIA H100 80GB HBM3 sm_90`, `host avx512`).
    fn describe(&self) -> String;

    /// Uploads `model`'s weights and constants in `precision` and prepares its operations,
    /// once, for any number of sessions ([`LoadedModel::workspace`]). Refuses an operation it
    /// has no kernel for, naming it.
    fn load(&self, model: &ModelData<'_>, precision: Precision) -> Result<Arc<dyn LoadedModel>>;
}

/// A model's weights, constants and prepared operations on a device ([`Device::load`]).
pub trait LoadedModel: Send + Sync {
    /// A session's workspace over these weights: its own buffers (the model's
    /// [`ModelData::buffers`]) and, on a GPU, its own stream.
    fn workspace(self: Arc<Self>) -> Result<Box<dyn Workspace>>;
}

/// One session's buffers on a device, and the launches of the loaded model's operations on
/// them. Launches may be asynchronous: [`Workspace::download`] and
/// [`Workspace::synchronize`] wait for what was issued before them.
pub trait Workspace: Send {
    /// Copies `data` into tensor `to` (rounded to the workspace's precision).
    fn upload(&mut self, data: &[f32], to: Handle) -> Result<()>;

    /// Copies tensor `from` into `out` (widened to f32), once every issued launch is done.
    fn download(&mut self, from: Handle, out: &mut [f32]) -> Result<()>;

    /// Issues operation `op` of the loaded model.
    fn launch(&mut self, op: usize) -> Result<()>;

    /// Records the launches of `ops`, in order, as one replayable unit (a CUDA graph: nothing
    /// runs now); refuses where the device cannot, and the operations are then launched one
    /// by one.
    fn capture(&mut self, ops: &[usize]) -> Result<()>;

    /// Issues the captured launches; `false` if nothing was captured.
    fn replay(&mut self) -> Result<bool>;

    /// Waits for every issued launch and copy.
    fn synchronize(&mut self) -> Result<()>;

    /// Milliseconds the device spends on `issue`'s launches, waited for.
    fn time(&mut self, issue: &mut dyn FnMut(&mut dyn Workspace) -> Result<()>) -> Result<f64>;

    /// Makes host buffers for `inputs` and `outputs` that cross to and from the device in one
    /// transfer each (page-locked memory on a GPU): [`Workspace::bound_input`],
    /// [`Workspace::upload_bound`], [`Workspace::download_bound`], [`Workspace::bound_output`].
    fn bind(&mut self, inputs: &[Handle], outputs: &[Handle]) -> Result<()>;

    /// Bound input `i`'s host buffer, to fill before [`Workspace::upload_bound`].
    fn bound_input(&mut self, i: usize) -> Result<&mut [f32]>;

    /// Bound output `o`'s host buffer, as the last [`Workspace::download_bound`] (once
    /// synchronized) left it.
    fn bound_output(&mut self, o: usize) -> Result<&[f32]>;

    /// Issues the copies of every bound input to its tensor.
    fn upload_bound(&mut self) -> Result<()>;

    /// Issues the copies of every bound output's tensor to its host buffer.
    fn download_bound(&mut self) -> Result<()>;
}

/// Bound buffer `i` of `n`, or an error naming the missing binding.
pub(crate) fn no_binding(what: &str, i: usize, n: usize) -> crate::KernelError {
    crate::KernelError::Shape(format!(
        "no bound {what} {i}: the workspace has {n} (only plans with every step on the device bind them)"
    ))
}
