//! Decoding `TensorProto` values.

use crate::proto::TensorProto;
use crate::{OnnxError, Result};

/// `TensorProto.DataType.FLOAT`.
pub const FLOAT: i32 = 1;
/// `TensorProto.DataType.INT32`.
pub const INT32: i32 = 6;
/// `TensorProto.DataType.INT64`.
pub const INT64: i32 = 7;

/// `TensorProto.DataType.UINT8`.
pub const UINT8: i32 = 2;
/// `TensorProto.DataType.INT8`.
pub const INT8: i32 = 3;
/// `TensorProto.DataType.UINT16`.
pub const UINT16: i32 = 4;
/// `TensorProto.DataType.INT16`.
pub const INT16: i32 = 5;
/// `TensorProto.DataType.BOOL`.
pub const BOOL: i32 = 9;
/// `TensorProto.DataType.FLOAT16`.
pub const FLOAT16: i32 = 10;
/// `TensorProto.DataType.DOUBLE`.
pub const DOUBLE: i32 = 11;
/// `TensorProto.DataType.UINT32`.
pub const UINT32: i32 = 12;
/// `TensorProto.DataType.UINT64`.
pub const UINT64: i32 = 13;

/// The ONNX name of a `TensorProto.DataType` code (`UINT8`, `FLOAT16`, …), as the ONNX
/// specification spells it; codes it does not define read `UNKNOWN(<code>)`.
pub fn type_name(code: i32) -> String {
    const NAMES: [&str; 26] = [
        "UNDEFINED",
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
        "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ",
        "UINT4",
        "INT4",
        "FLOAT4E2M1",
        "FLOAT8E8M0",
        "UINT2",
    ];
    usize::try_from(code).ok().and_then(|c| NAMES.get(c)).map_or_else(|| format!("UNKNOWN({code})"), |n| n.to_string())
}

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
            "tensor `{}` has data type {}, expected {type_name}",
            t.name,
            self::type_name(t.data_type)
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

/// The values of any integer or `BOOL` tensor (`UINT8`, `INT8`, `UINT16`, `INT16`, `INT32`,
/// `INT64`, `UINT32`, `UINT64`, `BOOL`), widened to `i64` (`UINT64` values above `i64::MAX`
/// wrap, as a C cast would).
pub fn to_ints(t: &TensorProto) -> Result<Tensor<i64>> {
    let name = type_name(t.data_type);
    // Small types travel in `int32_data` when not raw (the ONNX rule for 8- and 16-bit
    // integers and BOOL); UINT32/UINT64 in `uint64_data`.
    let narrow = |v: &[i32]| -> Vec<i64> { v.iter().map(|&x| i64::from(x)).collect() };
    let wide = |v: &[u64]| -> Vec<i64> { v.iter().map(|&x| x as i64).collect() };
    let d = match t.data_type {
        UINT8 | BOOL => decode::<i64, 1>(t, t.data_type, &name, &narrow(&t.int32_data), |b| i64::from(b[0]))?,
        INT8 => decode::<i64, 1>(t, INT8, &name, &narrow(&t.int32_data), |b| i64::from(b[0] as i8))?,
        UINT16 => decode::<i64, 2>(t, UINT16, &name, &narrow(&t.int32_data), |b| i64::from(u16::from_le_bytes(b)))?,
        INT16 => decode::<i64, 2>(t, INT16, &name, &narrow(&t.int32_data), |b| i64::from(i16::from_le_bytes(b)))?,
        INT32 => to_i32(t)?,
        INT64 => to_i64(t)?,
        UINT32 => decode::<i64, 4>(t, UINT32, &name, &wide(&t.uint64_data), |b| i64::from(u32::from_le_bytes(b)))?,
        UINT64 => decode::<i64, 8>(t, UINT64, &name, &wide(&t.uint64_data), |b| u64::from_le_bytes(b) as i64)?,
        _ => {
            return Err(OnnxError::Unsupported(format!(
                "tensor `{}` has data type {name}, not an integer type",
                t.name
            )))
        }
    };
    Ok(d)
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
        assert!(to_f32(&ints).unwrap_err().to_string().contains("has data type INT64, expected FLOAT"));
        assert_eq!(to_i64(&ints).unwrap().data, vec![4]);
        let negative = TensorProto { name: "w".into(), dims: vec![-1], data_type: FLOAT, ..Default::default() };
        assert!(to_f32(&negative).unwrap_err().to_string().contains("dimension -1"));
        assert!(crate::decode_tensor(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn every_integer_type_decodes_raw_and_typed() {
        let raw = |code: i32, bytes: Vec<u8>, n: i64| TensorProto {
            dims: vec![n],
            data_type: code,
            raw_data: bytes,
            ..Default::default()
        };
        assert_eq!(to_ints(&raw(UINT8, vec![0, 200, 255], 3)).unwrap().data, vec![0, 200, 255]);
        assert_eq!(to_ints(&raw(INT8, vec![0, 200, 255], 3)).unwrap().data, vec![0, -56, -1]);
        assert_eq!(to_ints(&raw(BOOL, vec![1, 0], 2)).unwrap().data, vec![1, 0]);
        assert_eq!(to_ints(&raw(INT16, (-3i16).to_le_bytes().to_vec(), 1)).unwrap().data, vec![-3]);
        assert_eq!(to_ints(&raw(UINT16, 65535u16.to_le_bytes().to_vec(), 1)).unwrap().data, vec![65535]);
        assert_eq!(to_ints(&raw(UINT32, u32::MAX.to_le_bytes().to_vec(), 1)).unwrap().data, vec![u32::MAX as i64]);
        let typed = TensorProto { dims: vec![2], data_type: UINT8, int32_data: vec![7, 250], ..Default::default() };
        assert_eq!(to_ints(&typed).unwrap().data, vec![7, 250]);
        let wide = TensorProto { dims: vec![1], data_type: UINT64, uint64_data: vec![9], ..Default::default() };
        assert_eq!(to_ints(&wide).unwrap().data, vec![9]);
        let short = raw(INT16, vec![1], 1);
        assert!(to_ints(&short).unwrap_err().to_string().contains("needs 2 raw bytes"));
        let float = raw(FLOAT, vec![0; 4], 1);
        assert!(to_ints(&float).unwrap_err().to_string().contains("FLOAT, not an integer type"));
    }

    #[test]
    fn type_names_follow_the_onnx_spelling() {
        assert_eq!(type_name(2), "UINT8");
        assert_eq!(type_name(16), "BFLOAT16");
        assert_eq!(type_name(99), "UNKNOWN(99)");
        assert_eq!(type_name(-1), "UNKNOWN(-1)");
    }
}
