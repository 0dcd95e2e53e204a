//! Portable operators: every ONNX operator edgepack executes without a kernel of its own,
//! each as one shape rule and one evaluation on float64 / integer tensors, written once.
//! Shape inference at plan time, constant folding, the float64 reference executor and the
//! plans' `Eval` steps all call the same functions, so what folds at plan time and what
//! runs on the device cannot disagree. ONNX's own node tests check them
//! (`harness/tests/onnx_node_conformance.rs`).
//!
//! Every evaluation is linear in its output (and inputs) where the ONNX definition is, and
//! refuses bad indices, shapes and attributes with an error naming the node.

mod detect;
mod elementwise;
mod linalg;
mod movement;
mod norm;
mod pool;
mod quant;
mod reduce;
mod resize;
mod rnn;

use serde::{Deserialize, Serialize};

use crate::error::{shape_error, unsupported, ModelError, Result};
use crate::ir::Node;
use crate::tensor::{DType, Data, Tensor};

pub use elementwise::{cast, Compare, Logic, Unary, Variadic};
pub(crate) use movement::pad_pairs;
pub use pool::PoolNd;
pub use quant::QLinearBinary;
pub use reduce::ReduceKind;
pub use resize::{AspectPolicy, Coordinates, Interp, ResizeAttrs};
pub use rnn::{rnn_act, Direction, Rnn, RnnAct, RnnKind};

/// `ScatterND`'s `reduction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduction {
    /// Replace.
    None,
    /// Add.
    Add,
    /// Multiply.
    Mul,
    /// Keep the larger.
    Max,
    /// Keep the smaller.
    Min,
}

/// `Pad`'s `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PadMode {
    /// Fill with the constant.
    Constant,
    /// Mirror without repeating the edge.
    Reflect,
    /// Repeat the edge.
    Edge,
    /// Wrap around.
    Wrap,
}

/// An operator evaluated by this module, attributes parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Generic {
    /// One-input element-wise math and activations.
    Unary(Unary),
    /// `Pow` (base, exponent).
    Pow,
    /// `Mod`; `fmod` as the attribute says.
    Mod(bool),
    /// `PRelu` (x, slope).
    PRelu,
    /// `Equal`, `Less`, … (BOOL output).
    Compare(Compare),
    /// `And`, `Or`, `Xor` (BOOL).
    Logic(Logic),
    /// `Sum`, `Mean`, `Max`, `Min` over any number of broadcast inputs.
    Variadic(Variadic),
    /// `Where(condition, x, y)`.
    Where,
    /// `CastLike(x, like)`.
    CastLike,
    /// `Transpose` with `perm` (default: reversed axes).
    Transpose(Option<Vec<i64>>),
    /// `Split` along `axis` into `outputs` parts: sizes from input 1, the `split`
    /// attribute, or equal parts (the last smaller, as `num_outputs` defines).
    Split {
        /// Axis.
        axis: i64,
        /// The `split` attribute (opsets before 13).
        sizes: Option<Vec<i64>>,
        /// Number of outputs.
        outputs: usize,
    },
    /// `Gather` along an axis.
    Gather(i64),
    /// `GatherElements` along an axis.
    GatherElements(i64),
    /// `GatherND` with `batch_dims`.
    GatherNd(i64),
    /// `ScatterND` with its reduction.
    ScatterNd(Reduction),
    /// `ScatterElements` along an axis with its reduction.
    ScatterElements(i64, Reduction),
    /// `Squeeze` (axes from the attribute, or input 1, or every axis of length 1).
    Squeeze(Option<Vec<i64>>),
    /// `Unsqueeze` (axes from the attribute or input 1).
    Unsqueeze(Option<Vec<i64>>),
    /// `Expand(x, shape)`.
    Expand,
    /// `Tile(x, repeats)`.
    Tile,
    /// `Range(start, limit, delta)`.
    Range,
    /// `ConstantOfShape(shape)` filled with the value (default float 0).
    ConstantOfShape(Option<(DType, f64)>),
    /// `Size`.
    Size,
    /// `Pad`: mode, and for opsets before 11 the `pads` and `value` attributes.
    Pad {
        /// Mode.
        mode: PadMode,
        /// `pads` attribute (opset < 11).
        pads: Option<Vec<i64>>,
        /// `value` attribute (opset < 11).
        value: f32,
    },
    /// `DepthToSpace`: block size, `CRD` mode (else `DCR`).
    DepthToSpace(usize, bool),
    /// `SpaceToDepth` with a block size.
    SpaceToDepth(usize),
    /// `ReduceMean`, `ReduceSum`, …: axes attribute (else input 1), keepdims,
    /// noop_with_empty_axes.
    Reduce {
        /// Which reduction.
        kind: ReduceKind,
        /// The `axes` attribute.
        axes: Option<Vec<i64>>,
        /// Keep reduced axes as length 1.
        keepdims: bool,
        /// Empty axes reduce nothing (else everything).
        noop_with_empty_axes: bool,
    },
    /// `ArgMax` / `ArgMin`.
    ArgExtreme {
        /// `ArgMax` (else `ArgMin`).
        max: bool,
        /// Axis.
        axis: i64,
        /// Keep the axis.
        keepdims: bool,
        /// Ties resolve to the last index.
        select_last_index: bool,
    },
    /// `LogSoftmax` (axis; opset < 13 flattens at the axis).
    LogSoftmax {
        /// Axis.
        axis: i64,
        /// Opset < 13 semantics.
        coerce_2d: bool,
    },
    /// `Hardmax` (same axis rules as softmax).
    Hardmax {
        /// Axis.
        axis: i64,
        /// Opset < 13 semantics.
        coerce_2d: bool,
    },
    /// `LayerNormalization(x, scale, [bias])` over the axes from `axis` on.
    LayerNorm {
        /// First normalised axis.
        axis: i64,
        /// Added to the variance.
        epsilon: f32,
        /// Outputs computed (Y, and optionally Mean, InvStdDev).
        outputs: usize,
    },
    /// `InstanceNormalization(x, scale, bias)`.
    InstanceNorm(f32),
    /// `BatchNormalization(x, scale, bias, mean, var)` with `training_mode = 1`: normalised
    /// by the statistics of `x` itself (over every axis but 1, the variance biased), the
    /// running statistics (outputs 2 and 3) `mean·momentum + current·(1 − momentum)`.
    /// Exporters write it for weight standardisation (BiT's `StdConv2d`) on constant
    /// weights, where it folds when the model is specialised.
    BatchNormTraining {
        /// Added to the variance.
        epsilon: f32,
        /// Weight of the running statistics given.
        momentum: f32,
        /// Outputs computed (Y, and optionally the running mean and variance).
        outputs: usize,
    },
    /// `GroupNormalization(x, scale, bias)`: scale and bias per channel (opset 21) or per
    /// group (opset 18), told apart by their length.
    GroupNorm {
        /// Groups.
        groups: usize,
        /// Added to the variance.
        epsilon: f32,
    },
    /// `LpNormalization` along an axis with p = 1 or 2.
    LpNorm(i64, u8),
    /// `MeanVarianceNormalization` over axes.
    MeanVarianceNorm(Vec<i64>),
    /// `GlobalMaxPool`.
    GlobalMaxPool,
    /// `TopK(x, k)`: axis, largest, sorted.
    TopK {
        /// Axis.
        axis: i64,
        /// Largest (else smallest).
        largest: bool,
    },
    /// `CumSum(x, axis)`: running sums along the axis.
    CumSum {
        /// Each sum leaves out its own element.
        exclusive: bool,
        /// Sums run from the end of the axis.
        reverse: bool,
    },
    /// `Einsum` with its equation.
    Einsum(String),
    /// `LSTM` / `GRU`.
    Rnn(Rnn),
    /// `Resize` / `Upsample`.
    Resize(ResizeAttrs),
    /// `NonMaxSuppression` (`center_point_box`); its output length depends on the data.
    NonMaxSuppression(bool),
    /// `MaxPool` / `AveragePool` beyond the native 2-D pools; outputs computed (values,
    /// and `MaxPool`'s indices).
    Pool(PoolNd, usize),
    /// `Dropout` at inference: the input, and an all-true mask if asked for.
    Dropout(usize),
    /// `QuantizeLinear(x, scale, [zero_point])`: axis, output type.
    Quantize(i64, DType),
    /// `DequantizeLinear(x, scale, [zero_point])`: axis.
    Dequantize(i64),
    /// `DynamicQuantizeLinear(x)` → (y UINT8, scale, zero point).
    DynamicQuantize,
    /// `QLinearMatMul`.
    QLinearMatMul,
    /// `MatMulInteger`.
    MatMulInteger,
    /// `QLinearConv` (index into the node's conv attributes).
    QLinearConv(crate::ir::Conv),
    /// `ConvInteger`.
    ConvInteger(crate::ir::Conv),
    /// `com.microsoft` `QLinearAdd` / `QLinearMul`.
    QLinearBinary(QLinearBinary),
    /// `com.microsoft` `QLinearSigmoid`.
    QLinearSigmoid,
    /// `com.microsoft` `QLinearConcat` along an axis.
    QLinearConcat(i64),
    /// `com.microsoft` `QLinearGlobalAveragePool` (`channels_last`).
    QLinearGlobalAveragePool(bool),
    /// `com.microsoft` `QGemm`: alpha, transA, transB.
    QGemm(f32, bool, bool),
    /// `com.microsoft` `DynamicQuantizeMatMul`.
    DynamicQuantizeMatMul,
}

impl Generic {
    /// The ONNX operator name.
    pub fn name(&self) -> &'static str {
        use Generic::*;
        match self {
            Unary(u) => u.name(),
            Pow => "Pow",
            Mod(_) => "Mod",
            PRelu => "PRelu",
            Compare(c) => c.name(),
            Logic(l) => l.name(),
            Variadic(v) => v.name(),
            Where => "Where",
            CastLike => "CastLike",
            Transpose(_) => "Transpose",
            Split { .. } => "Split",
            Gather(_) => "Gather",
            GatherElements(_) => "GatherElements",
            GatherNd(_) => "GatherND",
            ScatterNd(_) => "ScatterND",
            ScatterElements(..) => "ScatterElements",
            Squeeze(_) => "Squeeze",
            Unsqueeze(_) => "Unsqueeze",
            Expand => "Expand",
            Tile => "Tile",
            Range => "Range",
            ConstantOfShape(_) => "ConstantOfShape",
            Size => "Size",
            Pad { .. } => "Pad",
            DepthToSpace(..) => "DepthToSpace",
            SpaceToDepth(_) => "SpaceToDepth",
            Reduce { kind, .. } => kind.name(),
            ArgExtreme { max: true, .. } => "ArgMax",
            ArgExtreme { max: false, .. } => "ArgMin",
            LogSoftmax { .. } => "LogSoftmax",
            Hardmax { .. } => "Hardmax",
            LayerNorm { .. } => "LayerNormalization",
            InstanceNorm(_) => "InstanceNormalization",
            BatchNormTraining { .. } => "BatchNormalization",
            GroupNorm { .. } => "GroupNormalization",
            LpNorm(..) => "LpNormalization",
            MeanVarianceNorm(_) => "MeanVarianceNormalization",
            GlobalMaxPool => "GlobalMaxPool",
            TopK { .. } => "TopK",
            CumSum { .. } => "CumSum",
            Einsum(_) => "Einsum",
            Rnn(r) if r.quantized => "DynamicQuantizeLSTM",
            Rnn(r) => r.kind.name(),
            Resize(_) => "Resize",
            NonMaxSuppression(_) => "NonMaxSuppression",
            Pool(p, _) if p.average.is_some() => "AveragePool",
            Pool(..) => "MaxPool",
            Dropout(_) => "Dropout",
            Quantize(..) => "QuantizeLinear",
            Dequantize(_) => "DequantizeLinear",
            DynamicQuantize => "DynamicQuantizeLinear",
            QLinearMatMul => "QLinearMatMul",
            MatMulInteger => "MatMulInteger",
            QLinearConv(_) => "QLinearConv",
            ConvInteger(_) => "ConvInteger",
            QLinearBinary(b) => b.name(),
            QLinearSigmoid => "QLinearSigmoid",
            QLinearConcat(_) => "QLinearConcat",
            QLinearGlobalAveragePool(_) => "QLinearGlobalAveragePool",
            QGemm(..) => "QGemm",
            DynamicQuantizeMatMul => "DynamicQuantizeMatMul",
        }
    }

    /// Output element types from the input types (`None`: omitted input).
    pub fn out_dtypes(&self, ins: &[Option<DType>]) -> Vec<DType> {
        use Generic::*;
        let first = ins.first().copied().flatten().unwrap_or(DType::F32);
        let second = ins.get(1).copied().flatten().unwrap_or(DType::F32);
        match self {
            Compare(_) | Logic(_) => vec![DType::Bool],
            Unary(u) if u.is_predicate() => vec![DType::Bool],
            Where => vec![second],
            CastLike => vec![second],
            Split { outputs, .. } => vec![first; *outputs],
            Range => vec![first],
            ConstantOfShape(v) => vec![v.map_or(DType::F32, |v| v.0)],
            Size | ArgExtreme { .. } | NonMaxSuppression(_) => vec![DType::I64],
            TopK { .. } | Pool(..) => vec![first, DType::I64],
            LayerNorm { outputs, .. } | BatchNormTraining { outputs, .. } => vec![DType::F32; *outputs],
            Rnn(r) => vec![DType::F32; r.outputs],
            Dropout(n) => {
                let mut v = vec![first];
                if *n > 1 {
                    v.push(DType::Bool);
                }
                v
            }
            Quantize(_, t) => vec![*t],
            Dequantize(_) => vec![DType::F32],
            DynamicQuantize => vec![DType::U8, DType::F32, DType::U8],
            QLinearMatMul | QLinearConv(_) => vec![ins.get(7).copied().flatten().unwrap_or(DType::U8)],
            MatMulInteger | ConvInteger(_) => vec![DType::I32],
            QLinearBinary(_) | QLinearSigmoid | QLinearGlobalAveragePool(_) => vec![first],
            QLinearConcat(_) => vec![ins.get(2).copied().flatten().unwrap_or(DType::U8)],
            QGemm(..) => {
                vec![if ins.len() > 7 { ins.get(8).copied().flatten().unwrap_or(DType::U8) } else { DType::F32 }]
            }
            DynamicQuantizeMatMul => vec![DType::F32],
            _ => vec![first],
        }
    }

    /// Whether the op belongs to a quantized model (for the importer's message).
    pub fn is_quantized(&self) -> bool {
        use Generic::*;
        matches!(
            self,
            Quantize(..)
                | Dequantize(_)
                | DynamicQuantize
                | QLinearMatMul
                | MatMulInteger
                | QLinearConv(_)
                | ConvInteger(_)
                | QLinearBinary(_)
                | QLinearSigmoid
                | QLinearConcat(_)
                | QLinearGlobalAveragePool(_)
                | QGemm(..)
                | DynamicQuantizeMatMul
        ) || matches!(self, Rnn(r) if r.quantized)
    }
}

/// An operand as shape inference sees it: its shape and type, and its values when they are
/// known (constants, or every input at run time).
#[derive(Debug, Clone)]
pub struct Arg<'a> {
    /// Dimensions.
    pub shape: &'a [usize],
    /// Element type.
    pub dtype: DType,
    /// Integer values, if known.
    pub ints: Option<&'a [i64]>,
    /// Float values, if known (float64 at run time, float32 constants at plan time).
    pub floats: Option<Floats<'a>>,
}

/// Known float values of an [`Arg`].
#[derive(Debug, Clone, Copy)]
pub enum Floats<'a> {
    /// Float32 (a plan-time constant).
    F32(&'a [f32]),
    /// Float64 (a run-time value).
    F64(&'a [f64]),
}

impl Floats<'_> {
    fn to_vec(self) -> Vec<f64> {
        match self {
            Floats::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Floats::F64(v) => v.to_vec(),
        }
    }
}

impl<'a> Arg<'a> {
    /// An argument for a run-time tensor (values known).
    pub fn of(t: &'a Tensor<f64>) -> Arg<'a> {
        Arg { shape: &t.shape, dtype: t.dtype, ints: t.ints(), floats: t.floats().map(Floats::F64) }
    }

    /// An argument at plan time: the shape, and the values when `t` is a constant.
    pub fn at_plan(shape: &'a [usize], dtype: DType, t: Option<&'a Tensor>) -> Arg<'a> {
        Arg { shape, dtype, ints: t.and_then(Tensor::ints), floats: t.and_then(Tensor::floats).map(Floats::F32) }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as float64, integers converted, if known.
    pub fn reals(&self) -> Option<Vec<f64>> {
        match (self.floats, self.ints) {
            (Some(f), _) => Some(f.to_vec()),
            (None, Some(i)) => Some(i.iter().map(|&v| v as f64).collect()),
            _ => None,
        }
    }
}

/// Error helpers bound to one node.
pub(crate) struct At<'n> {
    pub node: &'n Node,
    pub op: &'static str,
}

impl At<'_> {
    /// A shape or value error.
    pub fn err(&self, reason: impl Into<String>) -> ModelError {
        shape_error(&self.node.name, self.op, reason)
    }

    /// A clean refusal (valid ONNX edgepack does not run).
    pub fn refuse(&self, reason: impl Into<String>) -> ModelError {
        unsupported(&self.node.name, self.op, reason)
    }

    /// Input `i`, required.
    pub fn arg<'a>(&self, args: &'a [Option<Arg<'a>>], i: usize) -> Result<&'a Arg<'a>> {
        args.get(i).and_then(Option::as_ref).ok_or_else(|| self.err(format!("input {i} is missing")))
    }

    /// Input `i`'s integer values; not known yet makes the output shape data-dependent.
    pub fn ints<'a>(&self, args: &'a [Option<Arg<'a>>], i: usize, what: &str) -> Result<&'a [i64]> {
        let a = self.arg(args, i)?;
        if !a.dtype.is_int() {
            return Err(self.err(format!("{what} (input {i}) must be an integer tensor")));
        }
        a.ints.ok_or_else(|| self.dynamic(format!("{what} (input {i})")))
    }

    /// The output shape depends on `what`, a run-time value.
    pub fn dynamic(&self, what: impl Into<String>) -> ModelError {
        crate::error::data_dependent(&self.node.name, self.op, what)
    }

    /// A possibly negative axis resolved against `rank`.
    pub fn axis(&self, axis: i64, rank: usize) -> Result<usize> {
        crate::tensor::axis(axis, rank).ok_or_else(|| self.err(format!("axis {axis} is out of range for rank {rank}")))
    }

    /// Input `i` as a run-time tensor.
    pub fn tensor<'a>(&self, ins: &'a [Option<&'a Tensor<f64>>], i: usize) -> Result<&'a Tensor<f64>> {
        ins.get(i).copied().flatten().ok_or_else(|| self.err(format!("input {i} is missing")))
    }

    /// Input `i`'s float values.
    pub fn floats<'a>(&self, ins: &'a [Option<&'a Tensor<f64>>], i: usize) -> Result<&'a [f64]> {
        self.tensor(ins, i)?.floats().ok_or_else(|| self.err(format!("input {i} must be a float tensor")))
    }
}

/// Which module evaluates an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Elementwise,
    Movement,
    Reduce,
    Norm,
    Einsum,
    Rnn,
    Resize,
    Pool,
    Detect,
    Quant,
}

impl Generic {
    fn family(&self) -> Family {
        use Generic::*;
        match self {
            Unary(_) | Pow | Mod(_) | PRelu | Compare(_) | Logic(_) | Variadic(_) | Where | CastLike => {
                Family::Elementwise
            }
            Transpose(_)
            | Split { .. }
            | Gather(_)
            | GatherElements(_)
            | GatherNd(_)
            | ScatterNd(_)
            | ScatterElements(..)
            | Squeeze(_)
            | Unsqueeze(_)
            | Expand
            | Tile
            | Range
            | ConstantOfShape(_)
            | Size
            | Pad { .. }
            | DepthToSpace(..)
            | SpaceToDepth(_)
            | Dropout(_) => Family::Movement,
            Reduce { .. }
            | ArgExtreme { .. }
            | LogSoftmax { .. }
            | Hardmax { .. }
            | GlobalMaxPool
            | TopK { .. }
            | CumSum { .. } => Family::Reduce,
            LayerNorm { .. }
            | InstanceNorm(_)
            | GroupNorm { .. }
            | BatchNormTraining { .. }
            | LpNorm(..)
            | MeanVarianceNorm(_) => Family::Norm,
            Einsum(_) => Family::Einsum,
            Rnn(_) => Family::Rnn,
            Resize(_) => Family::Resize,
            Pool(..) => Family::Pool,
            NonMaxSuppression(_) => Family::Detect,
            _ => Family::Quant,
        }
    }
}

/// Output shapes of a portable operator from its arguments (`None`: omitted input).
pub fn infer(node: &Node, op: &Generic, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let at = At { node, op: op.name() };
    match (op.family(), op) {
        (Family::Elementwise, Generic::Unary(_) | Generic::PRelu | Generic::CastLike) => {
            Ok(vec![at.arg(args, 0)?.shape.to_vec()])
        }
        (Family::Elementwise, _) => elementwise::broadcast_shape(&at, args),
        (Family::Movement, _) => movement::infer(&at, op, args),
        (Family::Reduce, _) => reduce::infer(&at, op, args),
        (Family::Norm, _) => norm::infer(&at, op, args),
        (Family::Einsum, Generic::Einsum(eq)) => linalg::einsum_shape(&at, eq, args),
        (Family::Rnn, Generic::Rnn(r)) => rnn::infer(&at, r, args),
        (Family::Resize, Generic::Resize(r)) => Ok(vec![resize::geometry(&at, r, args)?.0]),
        (Family::Pool, Generic::Pool(p, outputs)) => pool::infer(&at, p, args, *outputs),
        (Family::Detect, Generic::NonMaxSuppression(center)) => detect::infer(&at, *center, args),
        (Family::Quant, _) => quant::infer(&at, op, args),
        _ => unreachable!("family and operator agree"),
    }
}

/// Evaluates a portable operator on known inputs (`None`: omitted input).
pub fn eval(node: &Node, op: &Generic, ins: &[Option<&Tensor<f64>>]) -> Result<Vec<Tensor<f64>>> {
    let at = At { node, op: op.name() };
    let args: Vec<Option<Arg>> = ins.iter().map(|t| t.map(Arg::of)).collect();
    // NonMaxSuppression's shape is its selection: it computes both at once.
    let shapes = if op.family() == Family::Detect { Vec::new() } else { infer(node, op, &args)? };
    match (op.family(), op) {
        (Family::Elementwise, _) => elementwise::eval(&at, op, ins, shapes),
        (Family::Movement, _) => movement::eval(&at, op, ins, &args, shapes),
        (Family::Reduce, _) => reduce::eval(&at, op, ins, &args, shapes),
        (Family::Norm, _) => norm::eval(&at, op, ins, shapes),
        (Family::Einsum, Generic::Einsum(eq)) => linalg::einsum(&at, eq, ins, shapes),
        (Family::Rnn, Generic::Rnn(r)) => rnn::eval(&at, r, ins, shapes),
        (Family::Resize, Generic::Resize(r)) => {
            resize::eval(&at, r, ins, shapes.into_iter().next().unwrap_or_default())
        }
        (Family::Pool, Generic::Pool(p, _)) => pool::eval(&at, p, ins, shapes),
        (Family::Detect, Generic::NonMaxSuppression(center)) => detect::eval(&at, *center, ins),
        (Family::Quant, _) => quant::eval(&at, op, ins, shapes),
        _ => unreachable!("family and operator agree"),
    }
}

/// Row-major strides.
pub(crate) use crate::tensor::strides;

/// The multi-index of flat position `i` in `shape` written into `idx`.
pub(crate) fn unravel(mut i: usize, shape: &[usize], idx: &mut [usize]) {
    for d in (0..shape.len()).rev() {
        let len = shape[d].max(1);
        idx[d] = i % len;
        i /= len;
    }
}

/// Offsets into an operand of `shape` for every element of the broadcast `out` shape, in
/// order: one pass, O(len · rank).
pub(crate) fn broadcast_offsets(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = crate::tensor::broadcast_strides(shape, out);
    let n: usize = out.iter().product();
    let mut idx = vec![0usize; out.len()];
    let mut off = 0usize;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(off);
        // Odometer increment.
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            off += st[d];
            if idx[d] < out[d] {
                break;
            }
            off -= st[d] * idx[d];
            idx[d] = 0;
        }
    }
    v
}

/// The values of `t` at `offsets` (same type).
pub(crate) fn select(t: &Tensor<f64>, shape: Vec<usize>, offsets: &[usize]) -> Tensor<f64> {
    let data = match &t.data {
        Data::Float(v) => Data::Float(offsets.iter().map(|&o| v[o]).collect()),
        Data::Int(v) => Data::Int(offsets.iter().map(|&o| v[o]).collect()),
    };
    Tensor { shape, dtype: t.dtype, data }
}

/// Elements of a shape, checked against the plan's limit.
pub(crate) fn checked_len(at: &At, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&l| l <= crate::specialize::MAX_ELEMENTS)
        .ok_or_else(|| {
            at.refuse(format!("output shape {shape:?} exceeds {} elements", crate::specialize::MAX_ELEMENTS))
        })
}
