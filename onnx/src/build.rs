//! Building ONNX messages in code: for tests and for the single-node models benchmarks give
//! to peers.

use prost::Message;

use crate::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};

/// An `INTS` attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}

/// An `INT` attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

/// A `FLOAT` attribute.
pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 1, f: v, ..Default::default() }
}

/// A `STRING` attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}

/// A float tensor's type and shape (`None` dims are symbolic).
pub fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(v) => Dimension { dim_value: Some(*v as i64), ..Default::default() },
            None => Dimension { dim_param: Some("N".into()), ..Default::default() },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: crate::tensor::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float tensor (raw little-endian data).
pub fn float_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: crate::tensor::FLOAT,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An `INT64` tensor.
pub fn int_tensor(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: crate::tensor::INT64,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// A node.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

/// A model file of `graph` at default-domain `opset`.
pub fn model(opset: i64, graph: GraphProto) -> Vec<u8> {
    model_with_opsets(&[("", opset)], graph)
}

/// A model file of `graph` importing each `(domain, version)` of `opsets` (`""` is ONNX's).
pub fn model_with_opsets(opsets: &[(&str, i64)], graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: opsets
            .iter()
            .map(|&(domain, version)| OperatorSetIdProto { domain: domain.into(), version })
            .collect(),
        producer_name: "edgepack".into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A few hundred bytes that need gigabytes to run: input `x` [1, 3, 1, 1] expanded `n` times
/// to `shape` (each from the previous), the expansions summed into output `y`. For the
/// memory budget tests.
pub fn expand_chain(n: usize, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let mut node_list = vec![node("Expand", "e0", &["x", "shape"], &["e0"], vec![])];
    for i in 1..n {
        let (from, to) = (format!("e{}", i - 1), format!("e{i}"));
        node_list.push(node("Expand", &to, &[&from, "shape"], &[&to], vec![]));
    }
    let names: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    node_list.push(node("Sum", "sum", &names, &["y"], vec![]));
    let graph = GraphProto {
        node: node_list,
        input: vec![value_info("x", &[Some(1), Some(3), Some(1), Some(1)])],
        output: vec![value_info("y", &shape.iter().map(|&d| Some(d)).collect::<Vec<_>>())],
        initializer: vec![int_tensor("shape", &[dims.len()], &dims)],
        ..Default::default()
    };
    model(17, graph)
}
