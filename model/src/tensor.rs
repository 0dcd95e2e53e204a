//! Tensors: a shape and row-major values, floating point or integer.

use serde::{Deserialize, Serialize};

/// Element types a graph value can have. Floating-point values are computed in float32
/// (float64 in the reference); every integer type and `BOOL` is held widened to `i64` and
/// wrapped back to its own range where an operator can leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// `FLOAT`: activations and weights.
    F32,
    /// `INT32`: shape arithmetic in some exporters.
    I32,
    /// `INT64`: shapes, indices.
    I64,
    /// `BOOL`: masks, comparison results (0 or 1).
    Bool,
    /// `UINT8`: quantized tensors.
    U8,
    /// `INT8`: quantized tensors.
    I8,
    /// `UINT16`.
    U16,
    /// `INT16`.
    I16,
    /// `UINT32`.
    U32,
    /// `UINT64` (values above `i64::MAX` wrap).
    U64,
}

impl DType {
    /// From `TensorProto.DataType`; `None` for types edgepack does not execute (see
    /// [`onnx::tensor::type_name`] for their names).
    pub fn from_onnx(code: i32) -> Option<DType> {
        use onnx::tensor as t;
        Some(match code {
            t::FLOAT => DType::F32,
            t::INT32 => DType::I32,
            t::INT64 => DType::I64,
            t::BOOL => DType::Bool,
            t::UINT8 => DType::U8,
            t::INT8 => DType::I8,
            t::UINT16 => DType::U16,
            t::INT16 => DType::I16,
            t::UINT32 => DType::U32,
            t::UINT64 => DType::U64,
            _ => return None,
        })
    }

    /// The `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        use onnx::tensor as t;
        match self {
            DType::F32 => t::FLOAT,
            DType::I32 => t::INT32,
            DType::I64 => t::INT64,
            DType::Bool => t::BOOL,
            DType::U8 => t::UINT8,
            DType::I8 => t::INT8,
            DType::U16 => t::UINT16,
            DType::I16 => t::INT16,
            DType::U32 => t::UINT32,
            DType::U64 => t::UINT64,
        }
    }

    /// The ONNX name (`FLOAT`, `UINT8`, …).
    pub fn onnx_name(self) -> String {
        onnx::tensor::type_name(self.onnx_code())
    }

    /// Whether the values are held as integers.
    pub fn is_int(self) -> bool {
        !matches!(self, DType::F32)
    }

    /// Whether this is one of the 8-bit types quantized models store.
    pub fn is_quantized(self) -> bool {
        matches!(self, DType::U8 | DType::I8)
    }

    /// `v` wrapped into this type's range (two's complement, as a C cast of an integer).
    pub fn wrap(self, v: i64) -> i64 {
        match self {
            DType::Bool => i64::from(v != 0),
            DType::U8 => i64::from(v as u8),
            DType::I8 => i64::from(v as i8),
            DType::U16 => i64::from(v as u16),
            DType::I16 => i64::from(v as i16),
            DType::I32 => i64::from(v as i32),
            DType::U32 => i64::from(v as u32),
            DType::I64 | DType::U64 | DType::F32 => v,
        }
    }

    /// The float `f` as this type, as ONNX `Cast` defines it: truncation toward zero, NaN
    /// to 0, `BOOL` true for any non-zero value; out-of-range values saturate at the
    /// 64-bit bounds, then wrap into the type.
    pub fn from_float(self, f: f64) -> i64 {
        match self {
            DType::Bool => i64::from(f != 0.0),
            _ => self.wrap(f as i64),
        }
    }
}

/// Values of a tensor: floats of type `F` or integers.
#[derive(Debug, Clone, PartialEq)]
pub enum Data<F> {
    /// Floating-point values.
    Float(Vec<F>),
    /// Integer values (`INT32` or `INT64`), widened.
    Int(Vec<i64>),
}

/// A dense tensor in ONNX order (row-major, outermost dimension first).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<F = f32> {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type as the model declares it.
    pub dtype: DType,
    /// Values; `len == shape.iter().product()`.
    pub data: Data<F>,
}

impl<F: Copy> Tensor<F> {
    /// A float tensor. Panics are avoided by the callers: `values.len()` must match `shape`.
    pub fn float(shape: Vec<usize>, values: Vec<F>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor { shape, dtype: DType::F32, data: Data::Float(values) }
    }

    /// An integer tensor of type `dtype`.
    pub fn int(shape: Vec<usize>, dtype: DType, values: Vec<i64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor { shape, dtype, data: Data::Int(values) }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The float values, if this is a float tensor.
    pub fn floats(&self) -> Option<&[F]> {
        match &self.data {
            Data::Float(v) => Some(v),
            Data::Int(_) => None,
        }
    }

    /// The integer values, if this is an integer tensor.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            Data::Int(v) => Some(v),
            Data::Float(_) => None,
        }
    }

    /// The same tensor with floats converted by `f`.
    pub fn map_float<G>(&self, f: impl Fn(F) -> G) -> Tensor<G> {
        Tensor {
            shape: self.shape.clone(),
            dtype: self.dtype,
            data: match &self.data {
                Data::Float(v) => Data::Float(v.iter().map(|&x| f(x)).collect()),
                Data::Int(v) => Data::Int(v.clone()),
            },
        }
    }
}

impl<F: Copy + Into<f64>> Tensor<F> {
    /// Every value as float64 (integers converted), for comparisons.
    pub fn reals(&self) -> Vec<f64> {
        match &self.data {
            Data::Float(v) => v.iter().map(|&x| x.into()).collect(),
            Data::Int(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

impl Tensor<f32> {
    /// Decodes an ONNX `TensorProto` (FLOAT, or any integer type or BOOL).
    pub fn from_onnx(t: &onnx::proto::TensorProto) -> Result<Self, onnx::OnnxError> {
        match DType::from_onnx(t.data_type) {
            Some(DType::F32) => {
                let d = onnx::tensor::to_f32(t)?;
                Ok(Tensor::float(d.dims, d.data))
            }
            Some(dtype) => {
                let d = onnx::tensor::to_ints(t)?;
                Ok(Tensor::int(d.dims, dtype, d.data))
            }
            None => Err(onnx::OnnxError::Unsupported(format!(
                "tensor `{}` has data type {}; edgepack executes FLOAT, BOOL and the integer types",
                t.name,
                onnx::tensor::type_name(t.data_type)
            ))),
        }
    }

    /// Widened to float64 (the reference executor's precision).
    pub fn to_f64(&self) -> Tensor<f64> {
        self.map_float(f64::from)
    }
}

impl Tensor<f64> {
    /// Rounded to float32.
    pub fn to_f32(&self) -> Tensor<f32> {
        self.map_float(|x| x as f32)
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The shape two shapes broadcast to (numpy rules), or `None` if they do not.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
            let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Strides to read an operand of `shape` as if it had the (broadcast) shape `out`: 0 on
/// broadcast axes.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len()).map(|i| if i < lead || shape[i - lead] == 1 { 0 } else { own[i - lead] }).collect()
}

/// Resolves a possibly negative `axis` against `rank`.
pub fn axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}
