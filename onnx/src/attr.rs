//! Typed access to node attributes, with errors that name the node and the attribute.

use crate::proto::{AttributeProto, NodeProto};
use crate::{OnnxError, Result};

/// `AttributeType.FLOAT`.
const FLOAT: i32 = 1;
/// `AttributeType.INT`.
const INT: i32 = 2;
/// `AttributeType.STRING`.
const STRING: i32 = 3;
/// `AttributeType.TENSOR`.
const TENSOR: i32 = 4;
/// `AttributeType.FLOATS`.
const FLOATS: i32 = 6;
/// `AttributeType.INTS`.
const INTS: i32 = 7;
/// `AttributeType.STRINGS`.
const STRINGS: i32 = 8;

fn find<'a>(node: &'a NodeProto, name: &str, kind: i32, kind_name: &str) -> Result<Option<&'a AttributeProto>> {
    match node.attribute.iter().find(|a| a.name == name) {
        None => Ok(None),
        Some(a) if a.r#type == kind => Ok(Some(a)),
        Some(a) => Err(OnnxError::Unsupported(format!(
            "node `{}` ({}): attribute `{name}` has type {}, expected {kind_name}",
            node.name, node.op_type, a.r#type
        ))),
    }
}

/// An `INTS` attribute, if present.
pub fn ints(node: &NodeProto, name: &str) -> Result<Option<Vec<i64>>> {
    Ok(find(node, name, INTS, "INTS")?.map(|a| a.ints.clone()))
}

/// A `FLOATS` attribute, if present.
pub fn floats(node: &NodeProto, name: &str) -> Result<Option<Vec<f32>>> {
    Ok(find(node, name, FLOATS, "FLOATS")?.map(|a| a.floats.clone()))
}

/// A `TENSOR` attribute, if present.
pub fn tensor<'a>(node: &'a NodeProto, name: &str) -> Result<Option<&'a crate::proto::TensorProto>> {
    match find(node, name, TENSOR, "TENSOR")? {
        None => Ok(None),
        Some(a) => a.t.as_ref().map(Some).ok_or_else(|| {
            OnnxError::Unsupported(format!("node `{}`: tensor attribute `{name}` has no tensor", node.name))
        }),
    }
}

/// An `INT` attribute, if present.
pub fn int(node: &NodeProto, name: &str) -> Result<Option<i64>> {
    Ok(find(node, name, INT, "INT")?.map(|a| a.i))
}

/// A `FLOAT` attribute, if present.
pub fn float(node: &NodeProto, name: &str) -> Result<Option<f32>> {
    Ok(find(node, name, FLOAT, "FLOAT")?.map(|a| a.f))
}

/// A `STRING` attribute as UTF-8, if present.
pub fn string(node: &NodeProto, name: &str) -> Result<Option<String>> {
    find(node, name, STRING, "STRING")?
        .map(|a| {
            String::from_utf8(a.s.clone())
                .map_err(|_| OnnxError::Unsupported(format!("node `{}`: attribute `{name}` is not UTF-8", node.name)))
        })
        .transpose()
}

/// A `STRINGS` attribute as UTF-8, if present.
pub fn strings(node: &NodeProto, name: &str) -> Result<Option<Vec<String>>> {
    find(node, name, STRINGS, "STRINGS")?
        .map(|a| {
            a.strings
                .iter()
                .map(|s| {
                    String::from_utf8(s.clone()).map_err(|_| {
                        OnnxError::Unsupported(format!("node `{}`: attribute `{name}` is not UTF-8", node.name))
                    })
                })
                .collect()
        })
        .transpose()
}
