//! The typed graph edgepack plans from: values, constants and nodes in topological order,
//! ONNX semantics (NCHW logical layout) throughout.

use std::collections::HashMap;

use kernels::Activation;
use serde::{Deserialize, Serialize};

use crate::tensor::{DType, Tensor};

/// Index of a value in [`Graph::values`].
pub type ValueId = usize;

/// A value: a graph input, a constant or a node output.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The ONNX name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions once known (inputs: fixed by the caller; others: by shape inference).
    pub shape: Option<Vec<usize>>,
}

/// `auto_pad` of convolutions and pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoPad {
    /// Explicit `pads`.
    NotSet,
    /// No padding.
    Valid,
    /// Output = ceil(input / stride), extra pad at the end.
    SameUpper,
    /// Output = ceil(input / stride), extra pad at the beginning.
    SameLower,
}

/// Attributes of `Conv` / `ConvTranspose` (2-D) and the epilogue fused into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    /// `ConvTranspose` rather than `Conv`.
    pub transposed: bool,
    /// `kernel_shape` if given (else from the weights).
    pub kernel: Option<[usize; 2]>,
    /// Strides (rows, columns).
    pub strides: [usize; 2],
    /// Dilations (rows, columns).
    pub dilations: [usize; 2],
    /// `[top, left, bottom, right]` when `auto_pad` is `NotSet`.
    pub pads: [usize; 4],
    /// `auto_pad`.
    pub auto_pad: AutoPad,
    /// Groups.
    pub groups: usize,
    /// `ConvTranspose` `output_padding`.
    pub output_padding: [usize; 2],
    /// `ConvTranspose` `output_shape` (spatial), if given.
    pub output_shape: Option<[usize; 2]>,
    /// Activation applied after bias and residual (fused by the optimizer).
    pub activation: Activation,
    /// Whether input 3 is a residual added before the activation (fused by the optimizer).
    pub residual: bool,
}

/// Attributes of `MaxPool` / `AveragePool` (2-D).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Window (rows, columns).
    pub kernel: [usize; 2],
    /// Strides.
    pub strides: [usize; 2],
    /// Dilations.
    pub dilations: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// `auto_pad`.
    pub auto_pad: AutoPad,
    /// Output size rounds up.
    pub ceil_mode: bool,
}

/// `Resize` interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    /// Nearest neighbour with the given rounding.
    Nearest(NearestMode),
    /// Bilinear over the last two axes.
    Linear,
}

/// `nearest_mode` of `Resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NearestMode {
    /// Round half down.
    RoundPreferFloor,
    /// Round half up.
    RoundPreferCeil,
    /// Floor.
    Floor,
    /// Ceiling.
    Ceil,
}

/// `coordinate_transformation_mode` of `Resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinateMode {
    /// `(x + 0.5) / scale - 0.5`.
    HalfPixel,
    /// Like half_pixel but 0 when the output length is 1.
    PytorchHalfPixel,
    /// `x * (in - 1) / (out - 1)`.
    AlignCorners,
    /// `x / scale`.
    Asymmetric,
    /// `(x + 0.5) / scale`.
    TfHalfPixelForNearest,
}

/// Attributes of `Resize`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resize {
    /// Interpolation.
    pub mode: ResizeMode,
    /// Coordinate transformation.
    pub coordinates: CoordinateMode,
}

/// Element-wise binary operators (numpy broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
}

impl From<Binary> for kernels::device::BinaryOp {
    fn from(b: Binary) -> Self {
        match b {
            Binary::Add => Self::Add,
            Binary::Sub => Self::Sub,
            Binary::Mul => Self::Mul,
            Binary::Div => Self::Div,
        }
    }
}

impl Binary {
    /// Applies the operator.
    pub fn apply<
        T: std::ops::Add<Output = T> + std::ops::Sub<Output = T> + std::ops::Mul<Output = T> + std::ops::Div<Output = T>,
    >(
        self,
        a: T,
        b: T,
    ) -> T {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
        }
    }
}

/// A node's operation, attributes parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// `Conv` / `ConvTranspose`: inputs `x, w, [b], [residual]`.
    Conv(Conv),
    /// `BatchNormalization` (inference): inputs `x, scale, bias, mean, var`.
    BatchNorm {
        /// Added to the variance.
        epsilon: f32,
    },
    /// `Add`, `Sub`, `Mul`, `Div`.
    Binary(Binary),
    /// `Relu`, `Sigmoid`, `HardSigmoid`, `HardSwish`, `Clip` (constant bounds), `Identity`,
    /// `LeakyRelu`, `Tanh`, `Gelu`, `Mish`, and SiLU (`x·Sigmoid(x)`, recognised).
    Activation(Activation),
    /// `GlobalAveragePool`.
    GlobalAveragePool,
    /// `MaxPool` (one output).
    MaxPool(Pool),
    /// `AveragePool`: `count_include_pad` says whether pads count in the divisor.
    AveragePool(Pool, bool),
    /// `Concat` along `axis`.
    Concat(i64),
    /// `Reshape`: inputs `data, shape`; `allowzero`.
    Reshape(bool),
    /// `Flatten` at `axis`.
    Flatten(i64),
    /// `Shape` with `start`, `end`.
    Shape(i64, Option<i64>),
    /// `Slice`: inputs `data, starts, ends, [axes], [steps]`.
    Slice,
    /// `Cast` to a type.
    Cast(DType),
    /// `MatMul`.
    MatMul,
    /// `Gemm`: `alpha`, `beta`, `transA`, `transB`.
    Gemm {
        /// Scales `A·B`.
        alpha: f32,
        /// Scales `C`.
        beta: f32,
        /// Transpose `A`.
        trans_a: bool,
        /// Transpose `B`.
        trans_b: bool,
    },
    /// `Softmax` along `axis`; `coerce_2d` for opsets before 13 (flatten at `axis`).
    Softmax {
        /// The axis.
        axis: i64,
        /// Opset < 13 semantics.
        coerce_2d: bool,
    },
    /// An operator [`crate::portable`] evaluates.
    Generic(crate::portable::Generic),
}

impl Op {
    /// The ONNX operator name (fused nodes keep their base operator's name).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv(c) if c.transposed => "ConvTranspose",
            Op::Conv(_) => "Conv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Binary(Binary::Add) => "Add",
            Op::Binary(Binary::Sub) => "Sub",
            Op::Binary(Binary::Mul) => "Mul",
            Op::Binary(Binary::Div) => "Div",
            Op::Activation(a) => match a {
                Activation::Identity => "Identity",
                Activation::Relu => "Relu",
                Activation::Clip { .. } => "Clip",
                Activation::HardSigmoid { .. } => "HardSigmoid",
                Activation::HardSwish => "HardSwish",
                Activation::Sigmoid => "Sigmoid",
                Activation::LeakyRelu { .. } => "LeakyRelu",
                Activation::Tanh => "Tanh",
                Activation::Silu => "Silu",
                Activation::Gelu | Activation::GeluTanh => "Gelu",
                Activation::Mish => "Mish",
            },
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(..) => "AveragePool",
            Op::Concat(_) => "Concat",
            Op::Reshape(_) => "Reshape",
            Op::Flatten(_) => "Flatten",
            Op::Shape(..) => "Shape",
            Op::Slice => "Slice",
            Op::Cast(_) => "Cast",
            Op::MatMul => "MatMul",
            Op::Gemm { .. } => "Gemm",
            Op::Softmax { .. } => "Softmax",
            Op::Generic(g) => g.name(),
        }
    }
}

/// A node: an operation on values producing values.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The ONNX node name (or a generated `op_index` when the file has none).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Inputs; `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Outputs.
    pub outputs: Vec<ValueId>,
}

impl Node {
    /// Input `i`, if present.
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }
}

/// A model as edgepack holds it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// Every value, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// Constant values (initializers, `Constant` nodes, folded results).
    pub constants: HashMap<ValueId, Tensor>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Graph inputs that are not constants, in file order.
    pub inputs: Vec<ValueId>,
    /// Graph outputs, in file order.
    pub outputs: Vec<ValueId>,
    /// The default domain's opset version.
    pub opset: i64,
    /// Declared dimensions of each graph input (`None`: symbolic), for checking the
    /// caller's shapes.
    pub declared: HashMap<ValueId, Vec<Option<usize>>>,
}

impl Graph {
    /// Adds a value and returns its id.
    pub fn add_value(&mut self, name: String, dtype: DType, shape: Option<Vec<usize>>) -> ValueId {
        self.values.push(Value { name, dtype, shape });
        self.values.len() - 1
    }

    /// Adds a constant value.
    pub fn add_constant(&mut self, name: String, tensor: Tensor) -> ValueId {
        let id = self.add_value(name, tensor.dtype, Some(tensor.shape.clone()));
        self.constants.insert(id, tensor);
        id
    }

    /// The constant behind `id`, if it is one.
    pub fn constant(&self, id: ValueId) -> Option<&Tensor> {
        self.constants.get(&id)
    }

    /// The known shape of `id`.
    pub fn shape(&self, id: ValueId) -> Option<&[usize]> {
        self.values[id].shape.as_deref()
    }

    /// The axes a reduction node `n` reduces when they are known at plan time (its `axes`
    /// attribute, else a constant second input), each in `0..rank`, sorted, without repeats;
    /// `None` for other nodes, run-time axes, an unknown rank or an axis out of range.
    pub fn reduce_axes(&self, n: &Node) -> Option<Vec<usize>> {
        let Op::Generic(crate::portable::Generic::Reduce { axes, .. }) = &n.op else { return None };
        let rank = self.shape(n.input(0)?)?.len();
        let given = match (axes, n.input(1)) {
            (Some(a), _) => a.as_slice(),
            (None, Some(i)) => self.constant(i)?.ints()?,
            (None, None) => return None,
        };
        let mut axes: Vec<usize> = given.iter().map(|&a| crate::tensor::axis(a, rank)).collect::<Option<_>>()?;
        axes.sort_unstable();
        axes.dedup();
        Some(axes)
    }

    /// How many nodes read each value, plus one for each graph output.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.values.len()];
        for n in &self.nodes {
            for i in n.inputs.iter().flatten() {
                uses[*i] += 1;
            }
        }
        for &o in &self.outputs {
            uses[o] += 1;
        }
        uses
    }

    /// The node producing each value, by node index.
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                p[o] = Some(i);
            }
        }
        p
    }

    /// Count of nodes per operator name, sorted by name.
    pub fn op_counts(&self) -> Vec<(&'static str, usize)> {
        let mut m = std::collections::BTreeMap::new();
        for n in &self.nodes {
            *m.entry(n.op.name()).or_insert(0) += 1;
        }
        m.into_iter().collect()
    }
}
