//! Execution plans: per node the kernel and layout of one [`KernelSet`], weights packed once,
//! a static buffer plan that reuses memory, a spinning thread team (`kernels::threads`). 4-D
//! activations are NHWC inside a plan (the kernels' layout); graph inputs and outputs are NCHW,
//! converted at the edges.

mod build;
mod device_ops;
mod eval;
mod exec;
mod file;
mod memory;
mod offload;
mod ops;
mod recurrent;

use kernels::{Activation, KernelSetId, PackedB, PackedConv};
use serde::{Deserialize, Serialize};

use crate::ir::{Binary, Op, Pool, Resize};
use crate::tensor::DType;

pub use build::{build, build_for_device};
pub use eval::EvalInput;
pub use exec::Session;
pub use offload::DeviceWeights;
pub use recurrent::Recurrent;

/// A 4-D shape as an array (callers have checked the rank).
pub(crate) fn dims4(s: &[usize]) -> [usize; 4] {
    [s[0], s[1], s[2], s[3]]
}

/// Rows of a GEMM step's `A`: every axis but the last.
pub(crate) fn gemm_rows(shape: &[usize]) -> usize {
    shape[..shape.len().saturating_sub(1)].iter().product()
}

/// The values a step reads.
pub fn inputs_of(step: &Step) -> Vec<usize> {
    memory::reads(step).0
}

/// The value a step writes.
pub fn output_of(step: &Step) -> usize {
    memory::writes(step)
}

/// Physical layout of a plan value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// Row-major in ONNX axis order.
    Plain,
    /// A 4-D NCHW value stored as NHWC.
    Nhwc,
}

/// A tensor the plan computes or reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanValue {
    /// Name (the ONNX value's, with a suffix for layout copies).
    pub name: String,
    /// Logical (ONNX) shape.
    pub shape: Vec<usize>,
    /// Physical layout.
    pub layout: Layout,
    /// Buffer slot (assigned by the memory plan).
    pub slot: usize,
    /// Element type: integer values are held in the float arena as the bits of `i64`s, two
    /// words each (only `Eval` and copy steps touch them).
    pub dtype: DType,
    /// A data-dependent value: its shape is known only at run time, so it lives outside
    /// the buffer plan (only `Eval` steps read and write it; `shape` is empty).
    pub dynamic: bool,
}

impl PlanValue {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of arena words the value occupies (two per integer element).
    pub fn words(&self) -> usize {
        if self.dynamic {
            0
        } else if self.dtype.is_int() {
            2 * self.len()
        } else {
            self.len()
        }
    }

    /// Whether the value has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Physical dimensions (NHWC order for [`Layout::Nhwc`]).
    pub fn physical(&self) -> Vec<usize> {
        match self.layout {
            Layout::Plain => self.shape.clone(),
            Layout::Nhwc => vec![self.shape[0], self.shape[2], self.shape[3], self.shape[1]],
        }
    }
}

/// A step's operand: a computed value or a plan constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operand {
    /// Index into [`Plan::values`].
    Value(usize),
    /// Index into the plan's float constants.
    Const(usize),
}

/// One element-wise operation of a [`Step::Map`] chain; per-channel constants index the
/// plan's constants and are read with the channel of each element.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MapOp {
    /// An activation.
    Act(Activation),
    /// `x · k[c]` (or a scalar when the constant has one value).
    Mul(usize),
    /// `x + k[c]`.
    Add(usize),
    /// A transcendental function of the kernel set (`Exp`, `Log`, `Erf`, …).
    Unary(kernels::Unary),
    /// A function float32 computes exactly (the float64 result rounded to float32), run by
    /// [`ops::map`] on any host.
    Exact(Exact),
}

/// Element-wise functions whose float32 result is the correctly rounded one, equal to the
/// float64 reference's after rounding (for `Sqrt` and `Reciprocal` double rounding through
/// float64 is innocuous: 53 ≥ 2·24 + 2 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exact {
    /// `|x|`.
    Abs,
    /// `−x`.
    Neg,
    /// Round toward −∞.
    Floor,
    /// Round toward +∞.
    Ceil,
    /// Round half to even (ONNX `Round`).
    Round,
    /// `√x` (NaN below −0).
    Sqrt,
    /// `1 / x`.
    Reciprocal,
}

impl Exact {
    /// The exactly computed form of a portable unary operator, if it has one.
    pub fn of(u: crate::portable::Unary) -> Option<Exact> {
        use crate::portable::Unary as P;
        Some(match u {
            P::Abs => Exact::Abs,
            P::Neg => Exact::Neg,
            P::Floor => Exact::Floor,
            P::Ceil => Exact::Ceil,
            P::Round => Exact::Round,
            P::Sqrt => Exact::Sqrt,
            P::Reciprocal => Exact::Reciprocal,
            _ => return None,
        })
    }
}

/// One convolution of a fused step: its packed weights and epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FusedConv {
    /// Index into the packed convolutions.
    pub weights: usize,
    /// Per-output-channel bias constant.
    pub bias: Option<usize>,
    /// Activation.
    pub activation: Activation,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Convolution with fused epilogue on NHWC values.
    Conv {
        /// Index into the packed convolutions.
        weights: usize,
        /// Per-output-channel bias constant.
        bias: Option<usize>,
        /// Input value.
        input: usize,
        /// Residual value added before the activation.
        residual: Option<usize>,
        /// Activation.
        activation: Activation,
        /// Output value.
        output: usize,
        /// A per-input-channel gate (`[1, c_in, 1, 1]`) the input is multiplied by, folded
        /// into the weights each run (a squeeze-excitation block's `Mul`; see
        /// `build::gates_into_convs`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<usize>,
    },
    /// A pointwise convolution whose only reader is a depthwise convolution, run as one kernel
    /// ([`kernels::KernelSet::conv2d_expand_depthwise`]): the expanded value, the largest of
    /// an inverted residual block, is never stored (see `build::expand_depthwise`).
    ExpandDepthwise {
        /// The pointwise convolution on `input`.
        expand: FusedConv,
        /// The depthwise convolution on its result.
        depthwise: FusedConv,
        /// Input value.
        input: usize,
        /// Residual value added before the depthwise convolution's activation.
        residual: Option<usize>,
        /// Output value.
        output: usize,
    },
    /// A chain of element-wise operations in one pass; `channels` is the size of the
    /// innermost physical axis per-channel constants follow (1: every constant is scalar).
    Map {
        /// Input value.
        input: usize,
        /// Output value (may share the input's slot).
        output: usize,
        /// The operations, in order.
        ops: Vec<MapOp>,
        /// Channel count for per-channel constants, and the stride between channels.
        channels: (usize, usize),
    },
    /// Broadcasting binary operation over physical strides (rank ≤ 4, leading 1s).
    Binary {
        /// The operator.
        op: Binary,
        /// Left operand and its strides in the output's physical axis order.
        a: (Operand, [usize; 4]),
        /// Right operand and its strides.
        b: (Operand, [usize; 4]),
        /// Output value and its physical dims padded to 4.
        output: (usize, [usize; 4]),
    },
    /// Mean over H×W of an NHWC value.
    GlobalAveragePool {
        /// Input.
        input: usize,
        /// Output `[N, C, 1, 1]`.
        output: usize,
    },
    /// Max or average pooling of an NHWC value.
    Pool {
        /// Attributes.
        pool: Pool,
        /// Resolved pads.
        pads: [usize; 4],
        /// `None`: max; `Some(count_include_pad)`: average.
        average: Option<bool>,
        /// Input.
        input: usize,
        /// Output.
        output: usize,
    },
    /// Spatial resize of an NHWC value, written NHWC, or NCHW when the output value is plain.
    Resize {
        /// Attributes.
        resize: Resize,
        /// Scales (H, W).
        scales: [f64; 2],
        /// Input.
        input: usize,
        /// Output.
        output: usize,
    },
    /// Concatenation along physical `axis`.
    Concat {
        /// Inputs in order.
        inputs: Vec<Operand>,
        /// Physical axis.
        axis: usize,
        /// Output.
        output: usize,
    },
    /// Layout change between NCHW and NHWC.
    Relayout {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
    },
    /// Copy (Reshape, Flatten of plain values).
    Copy {
        /// Input.
        input: Operand,
        /// Output.
        output: usize,
    },
    /// `C = activation(A·B + bias)` with `A` `[m, k]` plain and `B` packed.
    Gemm {
        /// `A`.
        a: usize,
        /// Index into the packed GEMM weights.
        b: usize,
        /// Per-column bias.
        bias: Option<usize>,
        /// Activation fused into the epilogue.
        activation: Activation,
        /// Output `[m, n]`.
        output: usize,
    },
    /// NHWC `[n, h, w, (by, bx, c)]` to `[n, h·by, w·bx, c]` (a stride-sized
    /// `ConvTranspose` computed as a pointwise convolution first).
    DepthToSpace {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Block (rows, columns).
        block: [usize; 2],
    },
    /// A node without a kernel of its own, evaluated by the portable operators on its
    /// run-time inputs (plain layout); one step per output the plan uses.
    Eval {
        /// The operator.
        op: Op,
        /// Its inputs (`None`: omitted).
        inputs: Vec<Option<EvalInput>>,
        /// Which of the node's outputs this step writes.
        index: usize,
        /// Output value.
        output: usize,
    },
    /// Batched `C = A·B` of two run-time plain values (`[…, m, k] × […, k, n]`, batch axes
    /// broadcast): one GEMM per batch index, B packed on the fly (attention's products).
    MatMul {
        /// `A`.
        a: usize,
        /// `B`.
        b: usize,
        /// Output `[…, m, n]`.
        output: usize,
        /// `(m, k, n)`.
        dims: (usize, usize, usize),
        /// The output's batch axes.
        batch: Vec<usize>,
        /// Element offset of each batch axis in A (0 where A broadcasts).
        a_strides: Vec<usize>,
        /// Element offset of each batch axis in B (0 where B broadcasts).
        b_strides: Vec<usize>,
    },
    /// Axis permutation of a plain value.
    Transpose {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Output axis `i` is input axis `perm[i]`.
        perm: Vec<usize>,
    },
    /// A block of each of `outer` runs: values `start..start + len` of every run of `stride`
    /// (one part of a `Split`, a `Slice` along one axis), copied contiguously.
    Crop {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Number of runs.
        outer: usize,
        /// Run length in the input.
        stride: usize,
        /// First value taken of each run.
        start: usize,
        /// Values taken of each run.
        len: usize,
    },
    /// Blocks of `inner` values of each of `outer` runs of `stride`, taken in the order
    /// `indices` gives (a `Gather` with constant 1-D indices; along the channels of an NHWC
    /// value, a channel shuffle).
    Gather {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Number of runs.
        outer: usize,
        /// Run length in the input.
        stride: usize,
        /// Values per index.
        inner: usize,
        /// Block `k` of each output run is block `indices[k]` of the input run.
        indices: Vec<usize>,
    },
    /// LayerNormalization over the trailing `len` values of a plain value, with per-position
    /// scale and bias constants.
    LayerNorm {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Normalized length.
        len: usize,
        /// Scale constant (`len` values).
        scale: usize,
        /// Bias constant (`len` values).
        bias: Option<usize>,
        /// Added to the variance.
        epsilon: f32,
    },
    /// The time loop of an `LSTM` or `GRU` whose input products (`[seq·batch rows,
    /// directions·gates·hidden]`, every foldable bias added) a `Gemm` step computed; writes
    /// the sequence output `Y`.
    Recurrence {
        /// The layer.
        cell: Box<Recurrent>,
        /// The input products.
        xw: usize,
        /// `Y`.
        output: usize,
    },
    /// Softmax over `len` values at stride `inner`, `outer` times.
    Softmax {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// (outer, len, inner).
        dims: (usize, usize, usize),
    },
    /// GroupNormalization (InstanceNormalization: a channel per group) with per-channel scale
    /// and bias constants: rows of `len` values, each a group of whole channels of
    /// `channel_len` values, of a plain NCHW value, or of an NHWC one in one group (the
    /// channels interleaved, each row a whole image).
    GroupNorm {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Values per group (channels per group × `channel_len`).
        len: usize,
        /// Values per channel.
        channel_len: usize,
        /// Scale constant (one value per channel).
        scale: usize,
        /// Bias constant (one value per channel).
        bias: usize,
        /// Added to the variance.
        epsilon: f32,
    },
}

/// A step with the name of the node it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// ONNX node name.
    pub node: String,
    /// Operator (with fused parts, e.g. `Conv+HardSwish`).
    pub op: String,
    /// What runs.
    pub step: Step,
}

/// An executable plan for one kernel set and fixed input shapes.
#[derive(Debug)]
pub struct Plan {
    /// The kernel set it was packed for.
    pub kernel_set: KernelSetId,
    /// That set's name as its packed weights record it (`avx2`, `emulated-avx512`, …).
    pub kernel_name: String,
    /// Every value.
    pub values: Vec<PlanValue>,
    /// Steps in order.
    pub steps: Vec<PlannedStep>,
    /// Graph inputs (NCHW plain values).
    pub inputs: Vec<usize>,
    /// Graph outputs (plain values).
    pub outputs: Vec<usize>,
    /// Element counts of the buffer slots.
    pub slots: Vec<usize>,
    /// Float constants.
    pub consts: Vec<Vec<f32>>,
    /// Packed convolution weights.
    pub convs: Vec<PackedConv>,
    /// Packed GEMM weights.
    pub gemms: Vec<PackedB>,
    /// FLOPs of one run (2 per multiply-add of convolutions and GEMMs).
    pub flops: u64,
    /// The tuning knobs in force when it was built, as `kernels::Tuning::overrides` gives
    /// them (`EDGEPACK_BLOCKING=kc,mc,nc`, …); empty for the defaults. Recorded in the plan
    /// file, so a plan says which blocking its packed weights and steps were made for.
    pub tuning: Vec<String>,
}

impl Plan {
    /// The output tensor of plan value `v` read from its arena words.
    pub(crate) fn read_value(&self, v: usize, words: &[f32]) -> crate::Tensor {
        let pv = &self.values[v];
        if pv.dtype.is_int() {
            crate::Tensor::int(pv.shape.clone(), pv.dtype, eval::decode_ints(&words[..pv.words()]))
        } else {
            crate::Tensor::float(pv.shape.clone(), words[..pv.len()].to_vec())
        }
    }

    /// Peak activation memory in bytes: the sum of the buffer slots.
    pub fn activation_bytes(&self) -> usize {
        self.slots.iter().sum::<usize>() * 4
    }

    /// Bytes of packed weights and constants.
    pub fn weight_bytes(&self) -> usize {
        let c: usize = self.consts.iter().map(Vec::len).sum::<usize>() * 4;
        c + self.convs.iter().map(|p| p.to_bytes().len()).sum::<usize>()
            + self.gemms.iter().map(|p| p.to_bytes().len()).sum::<usize>()
    }

    /// Count of steps per operator label, sorted.
    pub fn step_counts(&self) -> Vec<(String, usize)> {
        let mut m = std::collections::BTreeMap::new();
        for s in &self.steps {
            *m.entry(s.op.clone()).or_insert(0) += 1;
        }
        m.into_iter().collect()
    }

    /// Writes the plan to bytes (see [`Plan::from_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        file::write(self)
    }

    /// Reads a plan written by [`Plan::to_bytes`], checking every part.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Plan> {
        file::read(bytes)
    }
}
