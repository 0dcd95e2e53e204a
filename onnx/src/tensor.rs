//! Decoding `TensorProto` values.

use crate::proto::TensorProto;
use crate::{OnnxError, Result};

/// `TensorProto.DataType.FLOAT`.
pub const FLOAT: i32 = 1;
/// `TensorProto.DataType.INT32`.
pub const INT32: i32 = 6;
/// `TensorProto.DataType.INT64`.
pub const INT64: i32 = 7;

/// A decoded tensor: shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T> {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<T>,
}

fn dims(t: &TensorProto) -> Result<Vec<usize>> {
    t.dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| OnnxError::Unsupported(format!("tensor `{}` has dimension {d}", t.name)))
        })
        .collect()
}

fn element_count(t: &TensorProto, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| OnnxError::Unsupported(format!("tensor `{}` dims {dims:?} overflow", t.name)))
}

/// Decodes a tensor of `width`-byte elements from `raw_data` or its typed field.
fn decode<T, const W: usize>(
    t: &TensorProto,
    data_type: i32,
    type_name: &str,
    typed: &[T],
    from_le: fn([u8; W]) -> T,
) -> Result<Tensor<T>>
where
    T: Copy,
{
    if t.data_type != data_type {
        return Err(OnnxError::Unsupported(format!(
            "tensor `{}` has data type {}, expected {type_name} ({data_type})",
            t.name, t.data_type
        )));
    }
    if t.data_location != 0 {
        return Err(OnnxError::Unsupported(format!("tensor `{}` keeps its data in an external file", t.name)));
    }
    let dims = dims(t)?;
    let count = element_count(t, &dims)?;
    let data: Vec<T> = if !t.raw_data.is_empty() {
        if t.raw_data.len() != count * W {
            return Err(OnnxError::Unsupported(format!(
                "tensor `{}` {dims:?} needs {} raw bytes, has {}",
                t.name,
                count * W,
                t.raw_data.len()
            )));
        }
        t.raw_data.chunks_exact(W).map(|c| from_le(c.try_into().expect("chunk of W bytes"))).collect()
    } else {
        typed.to_vec()
    };
    if data.len() != count {
        return Err(OnnxError::Unsupported(format!("tensor `{}` {dims:?} has {} values", t.name, data.len())));
    }
    Ok(Tensor { dims, data })
}

/// The values of a `FLOAT` tensor.
pub fn to_f32(t: &TensorProto) -> Result<Tensor<f32>> {
    decode::<f32, 4>(t, FLOAT, "FLOAT", &t.float_data, f32::from_le_bytes)
}

/// The values of an `INT64` tensor.
pub fn to_i64(t: &TensorProto) -> Result<Tensor<i64>> {
    decode::<i64, 8>(t, INT64, "INT64", &t.int64_data, i64::from_le_bytes)
}

/// The values of an `INT32` tensor, widened to `i64`.
pub fn to_i32(t: &TensorProto) -> Result<Tensor<i64>> {
    let narrow = decode::<i32, 4>(t, INT32, "INT32", &t.int32_data, i32::from_le_bytes)?;
    Ok(Tensor { dims: narrow.dims, data: narrow.data.into_iter().map(i64::from).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn raw_and_typed_floats_decode_alike() {
        let typed = TensorProto {
            dims: vec![2, 2],
            data_type: FLOAT,
            float_data: vec![1.0, -2.0, 3.5, 0.25],
            ..Default::default()
        };
        let raw = TensorProto {
            dims: vec![2, 2],
            data_type: FLOAT,
            raw_data: typed.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        let back = crate::decode_tensor(&raw.encode_to_vec()).unwrap();
        assert_eq!(to_f32(&typed).unwrap(), to_f32(&back).unwrap());
        assert_eq!(to_f32(&back).unwrap().dims, vec![2, 2]);
    }

    #[test]
    fn bad_tensors_are_errors_naming_the_problem() {
        let short = TensorProto {
            name: "w".into(),
            dims: vec![3],
            data_type: FLOAT,
            raw_data: vec![0; 8],
            ..Default::default()
        };
        assert!(to_f32(&short).unwrap_err().to_string().contains("needs 12 raw bytes"));
        let ints = TensorProto {
            name: "w".into(),
            dims: vec![1],
            data_type: INT64,
            int64_data: vec![4],
            ..Default::default()
        };
        assert!(to_f32(&ints).unwrap_err().to_string().contains("expected FLOAT"));
        assert_eq!(to_i64(&ints).unwrap().data, vec![4]);
        let negative = TensorProto { name: "w".into(), dims: vec![-1], data_type: FLOAT, ..Default::default() };
        assert!(to_f32(&negative).unwrap_err().to_string().contains("dimension -1"));
        assert!(crate::decode_tensor(&[0xff, 0xff, 0xff]).is_err());
    }
}
