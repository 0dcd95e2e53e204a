//! ONNX protobuf to [`Graph`]: values, constants, typed operators. Every refusal names the
//! node and the reason; no input byte string panics (see the importer fuzz test).

use std::collections::HashMap;

use kernels::Activation;
use onnx::attr;
use onnx::proto::{ModelProto, NodeProto};

use crate::error::{unsupported, ModelError, Result};
use crate::ir::{AutoPad, Binary, Conv, CoordinateMode, Graph, NearestMode, Node, Op, Pool, Resize, ResizeMode};
use crate::tensor::{DType, Tensor};

/// Default-domain opsets the importer accepts. The operators it knows have the same
/// semantics for float tensors across this range except where the importer reads the
/// version (`Softmax` before 13).
pub const OPSETS: std::ops::RangeInclusive<i64> = 11..=22;

/// Decodes and imports a model file's bytes.
pub fn import(bytes: &[u8]) -> Result<Graph> {
    let model = onnx::decode_model(bytes)?;
    import_model(&model)
}

/// Imports a decoded model.
pub fn import_model(model: &ModelProto) -> Result<Graph> {
    let opset = default_opset(model)?;
    let graph = model.graph.as_ref().ok_or_else(|| ModelError::Malformed("the model has no graph".into()))?;
    let mut g = Graph { opset, ..Graph::default() };
    let mut names: HashMap<String, usize> = HashMap::new();
    for init in &graph.initializer {
        let t = Tensor::from_onnx(init).map_err(|e| ModelError::Unsupported {
            node: init.name.clone(),
            op: "initializer".into(),
            reason: e.to_string(),
        })?;
        define(&mut names, &init.name, g.add_constant(init.name.clone(), t))?;
    }
    for input in &graph.input {
        if names.contains_key(&input.name) {
            continue; // an initializer listed as an input (IR < 4 style): a constant
        }
        let tt = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        let dtype = tt.and_then(|t| DType::from_onnx(t.elem_type)).ok_or_else(|| {
            unsupported(&input.name, "graph input", "only FLOAT, INT32 and INT64 tensors are supported")
        })?;
        let id = g.add_value(input.name.clone(), dtype, None);
        define(&mut names, &input.name, id)?;
        if let Some(shape) = tt.and_then(|t| t.shape.as_ref()) {
            let dims = shape.dim.iter().map(|d| d.dim_value.filter(|&v| v > 0).map(|v| v as usize)).collect();
            g.declared.insert(id, dims);
        }
        g.inputs.push(id);
    }
    for (index, node) in graph.node.iter().enumerate() {
        import_node(&mut g, &mut names, node, index)?;
    }
    for out in &graph.output {
        let id = *names
            .get(&out.name)
            .ok_or_else(|| ModelError::Malformed(format!("graph output `{}` is not produced by any node", out.name)))?;
        g.outputs.push(id);
    }
    if g.outputs.is_empty() {
        return Err(ModelError::Malformed("the graph has no outputs".into()));
    }
    Ok(g)
}

fn default_opset(model: &ModelProto) -> Result<i64> {
    let mut opset = None;
    for o in &model.opset_import {
        if o.domain.is_empty() || o.domain == "ai.onnx" {
            opset = Some(o.version);
        }
    }
    let v = opset.ok_or_else(|| ModelError::Malformed("the model imports no default-domain opset".into()))?;
    if !OPSETS.contains(&v) {
        return Err(ModelError::Unsupported {
            node: "(model)".into(),
            op: "opset_import".into(),
            reason: format!(
                "default-domain opset {v} is not supported (supported: {}–{})",
                OPSETS.start(),
                OPSETS.end()
            ),
        });
    }
    Ok(v)
}

fn define(names: &mut HashMap<String, usize>, name: &str, id: usize) -> Result<()> {
    if name.is_empty() {
        return Err(ModelError::Malformed("a value has an empty name".into()));
    }
    if names.insert(name.to_string(), id).is_some() {
        return Err(ModelError::Malformed(format!("value `{name}` is defined twice")));
    }
    Ok(())
}

/// Context for one node's attribute parsing: errors name the node.
struct Ctx<'a> {
    node: &'a NodeProto,
    name: String,
    opset: i64,
}

impl Ctx<'_> {
    fn err(&self, reason: impl Into<String>) -> ModelError {
        unsupported(&self.name, &self.node.op_type, reason)
    }

    fn wrap<T>(&self, r: onnx::Result<T>) -> Result<T> {
        r.map_err(|e| self.err(e.to_string()))
    }

    fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.wrap(attr::int(self.node, name))?.unwrap_or(default))
    }

    fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.wrap(attr::float(self.node, name))?.unwrap_or(default))
    }

    fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.wrap(attr::string(self.node, name))?.unwrap_or_else(|| default.to_string()))
    }

    fn flag(&self, name: &str) -> Result<bool> {
        match self.int(name, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("attribute `{name}` is {v}, expected 0 or 1"))),
        }
    }

    /// A 2-D spatial INTS attribute of `n` values (each ≥ `min`), or `default`.
    fn pair_list<const N: usize>(&self, name: &str, min: i64, default: [usize; N]) -> Result<[usize; N]> {
        let Some(v) = self.wrap(attr::ints(self.node, name))? else { return Ok(default) };
        if v.len() != N {
            return Err(self.err(format!(
                "attribute `{name}` has {} values; only 2-D (spatial rank 2) operators are supported",
                v.len()
            )));
        }
        let mut out = [0usize; N];
        for (o, &x) in out.iter_mut().zip(&v) {
            if x < min || x > (1 << 16) {
                return Err(self.err(format!("attribute `{name}` = {v:?} is out of range")));
            }
            *o = x as usize;
        }
        Ok(out)
    }

    fn auto_pad(&self) -> Result<AutoPad> {
        match self.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" => Ok(AutoPad::NotSet),
            "VALID" => Ok(AutoPad::Valid),
            "SAME_UPPER" => Ok(AutoPad::SameUpper),
            "SAME_LOWER" => Ok(AutoPad::SameLower),
            other => Err(self.err(format!("auto_pad `{other}` is not an ONNX value"))),
        }
    }

    /// `pads` as `[top, left, bottom, right]`.
    fn pads(&self) -> Result<[usize; 4]> {
        let p = self.pair_list::<4>("pads", 0, [0; 4])?;
        Ok([p[0], p[1], p[2], p[3]])
    }

    fn conv(&self, transposed: bool) -> Result<Op> {
        let output_shape = self.wrap(attr::ints(self.node, "output_shape"))?.is_some();
        Ok(Op::Conv(Conv {
            transposed,
            kernel: match self.wrap(attr::ints(self.node, "kernel_shape"))? {
                Some(_) => Some(self.pair_list("kernel_shape", 1, [1, 1])?),
                None => None,
            },
            strides: self.pair_list("strides", 1, [1, 1])?,
            dilations: self.pair_list("dilations", 1, [1, 1])?,
            pads: self.pads()?,
            auto_pad: self.auto_pad()?,
            groups: match self.int("group", 1)? {
                g if (1..=1 << 16).contains(&g) => g as usize,
                g => return Err(self.err(format!("group = {g} is out of range"))),
            },
            output_padding: self.pair_list("output_padding", 0, [0, 0])?,
            output_shape: if output_shape { Some(self.pair_list("output_shape", 1, [1, 1])?) } else { None },
            activation: Activation::Identity,
            residual: false,
        }))
    }

    fn pool(&self) -> Result<Pool> {
        if self.wrap(attr::ints(self.node, "kernel_shape"))?.is_none() {
            return Err(self.err("attribute `kernel_shape` is required"));
        }
        Ok(Pool {
            kernel: self.pair_list("kernel_shape", 1, [1, 1])?,
            strides: self.pair_list("strides", 1, [1, 1])?,
            dilations: self.pair_list("dilations", 1, [1, 1])?,
            pads: self.pads()?,
            auto_pad: self.auto_pad()?,
            ceil_mode: self.flag("ceil_mode")?,
        })
    }

    fn resize(&self) -> Result<Op> {
        if self.int("antialias", 0)? != 0 {
            return Err(self.err("antialias = 1 is not supported"));
        }
        if self.wrap(attr::ints(self.node, "axes"))?.is_some() {
            return Err(self.err("attribute `axes` is not supported"));
        }
        if self.string("keep_aspect_ratio_policy", "stretch")? != "stretch" {
            return Err(self.err("keep_aspect_ratio_policy other than `stretch` is not supported"));
        }
        if self.int("exclude_outside", 0)? != 0 {
            return Err(self.err("exclude_outside = 1 is not supported"));
        }
        let mode = match self.string("mode", "nearest")?.as_str() {
            "nearest" => ResizeMode::Nearest(match self.string("nearest_mode", "round_prefer_floor")?.as_str() {
                "round_prefer_floor" => NearestMode::RoundPreferFloor,
                "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                "floor" => NearestMode::Floor,
                "ceil" => NearestMode::Ceil,
                m => return Err(self.err(format!("nearest_mode `{m}` is not an ONNX value"))),
            }),
            "linear" => ResizeMode::Linear,
            m => return Err(self.err(format!("mode `{m}` is not supported (nearest, linear)"))),
        };
        let coordinates = match self.string("coordinate_transformation_mode", "half_pixel")?.as_str() {
            "half_pixel" => CoordinateMode::HalfPixel,
            "pytorch_half_pixel" => CoordinateMode::PytorchHalfPixel,
            "align_corners" => CoordinateMode::AlignCorners,
            "asymmetric" => CoordinateMode::Asymmetric,
            "tf_half_pixel_for_nearest" => CoordinateMode::TfHalfPixelForNearest,
            m => return Err(self.err(format!("coordinate_transformation_mode `{m}` is not supported"))),
        };
        Ok(Op::Resize(Resize { mode, coordinates }))
    }
}

fn constant_value(ctx: &Ctx) -> Result<Tensor> {
    let node = ctx.node;
    if let Some(t) = ctx.wrap(attr::tensor(node, "value"))? {
        return Tensor::from_onnx(t).map_err(|e| ctx.err(e.to_string()));
    }
    if let Some(f) = ctx.wrap(attr::float(node, "value_float"))? {
        return Ok(Tensor::float(vec![], vec![f]));
    }
    if let Some(f) = ctx.wrap(attr::floats(node, "value_floats"))? {
        return Ok(Tensor::float(vec![f.len()], f));
    }
    if let Some(i) = ctx.wrap(attr::int(node, "value_int"))? {
        return Ok(Tensor::int(vec![], DType::I64, vec![i]));
    }
    if let Some(i) = ctx.wrap(attr::ints(node, "value_ints"))? {
        return Ok(Tensor::int(vec![i.len()], DType::I64, i));
    }
    Err(ctx.err("a Constant needs `value`, `value_float(s)` or `value_int(s)`"))
}

fn import_node(g: &mut Graph, names: &mut HashMap<String, usize>, node: &NodeProto, index: usize) -> Result<()> {
    let name = if node.name.is_empty() { format!("{}_{index}", node.op_type) } else { node.name.clone() };
    let ctx = Ctx { node, name: name.clone(), opset: g.opset };
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Err(ctx.err(format!("domain `{}` is not supported", node.domain)));
    }
    let ids: Vec<Option<usize>> = node
        .input
        .iter()
        .map(|i| {
            if i.is_empty() {
                Ok(None)
            } else {
                names.get(i).copied().map(Some).ok_or_else(|| {
                    ModelError::Malformed(format!(
                        "node `{name}` ({}): input `{i}` is not defined before it (nodes must be in topological order)",
                        node.op_type
                    ))
                })
            }
        })
        .collect::<Result<_>>()?;
    if node.op_type == "Constant" {
        let [out] = node.output.as_slice() else { return Err(ctx.err("a Constant has one output")) };
        let t = constant_value(&ctx)?;
        return define(names, out, g.add_constant(out.clone(), t));
    }
    let (op, arity, outputs) = parse_op(&ctx)?;
    let present = ids.len();
    if present < arity.0 || present > arity.1 {
        return Err(ctx.err(format!("has {present} inputs, expected {}..={}", arity.0, arity.1)));
    }
    if ids.iter().take(arity.0).any(Option::is_none) {
        return Err(ctx.err(format!("the first {} inputs are required", arity.0)));
    }
    let real_outputs: Vec<&String> = node.output.iter().filter(|o| !o.is_empty()).collect();
    if real_outputs.len() != outputs || node.output.len() < outputs {
        return Err(ctx.err(format!(
            "has {} outputs; edgepack computes {outputs} (optional outputs such as indices or running statistics are not supported)",
            real_outputs.len()
        )));
    }
    let mut out_ids = Vec::new();
    for o in &node.output[..outputs] {
        let dtype = match &op {
            Op::Shape(..) => DType::I64,
            Op::Cast(t) => *t,
            Op::Reshape(_) | Op::Flatten(_) | Op::Slice | Op::Concat(_) | Op::Activation(Activation::Identity) => {
                ids[0].map(|i| g.values[i].dtype).unwrap_or(DType::F32)
            }
            _ => DType::F32,
        };
        let id = g.add_value(o.clone(), dtype, None);
        define(names, o, id)?;
        out_ids.push(id);
    }
    g.nodes.push(Node { name, op, inputs: ids, outputs: out_ids });
    Ok(())
}

/// The operator, its accepted input count range, and its output count.
fn parse_op(ctx: &Ctx) -> Result<(Op, (usize, usize), usize)> {
    let node = ctx.node;
    Ok(match node.op_type.as_str() {
        "Conv" => (ctx.conv(false)?, (2, 3), 1),
        "ConvTranspose" => (ctx.conv(true)?, (2, 3), 1),
        "BatchNormalization" => {
            if ctx.int("training_mode", 0)? != 0 {
                return Err(ctx.err("training_mode = 1 is not supported (inference only)"));
            }
            (Op::BatchNorm { epsilon: ctx.float("epsilon", 1e-5)? }, (5, 5), 1)
        }
        "Add" => (Op::Binary(Binary::Add), (2, 2), 1),
        "Sub" => (Op::Binary(Binary::Sub), (2, 2), 1),
        "Mul" => (Op::Binary(Binary::Mul), (2, 2), 1),
        "Div" => (Op::Binary(Binary::Div), (2, 2), 1),
        "Relu" => (Op::Activation(Activation::Relu), (1, 1), 1),
        "Sigmoid" => (Op::Activation(Activation::Sigmoid), (1, 1), 1),
        "Identity" => (Op::Activation(Activation::Identity), (1, 1), 1),
        "HardSwish" => (Op::Activation(Activation::HardSwish), (1, 1), 1),
        "HardSigmoid" => (
            Op::Activation(Activation::HardSigmoid { alpha: ctx.float("alpha", 0.2)?, beta: ctx.float("beta", 0.5)? }),
            (1, 1),
            1,
        ),
        // The bounds (inputs 1 and 2) are read when the graph is specialised, once bound
        // inputs and folded constants are known.
        "Clip" => (Op::Activation(Activation::Clip { min: f32::NEG_INFINITY, max: f32::INFINITY }), (1, 3), 1),
        "GlobalAveragePool" => (Op::GlobalAveragePool, (1, 1), 1),
        "MaxPool" => {
            if ctx.int("storage_order", 0)? != 0 {
                return Err(ctx.err("storage_order = 1 is not supported"));
            }
            (Op::MaxPool(ctx.pool()?), (1, 1), 1)
        }
        "AveragePool" => (Op::AveragePool(ctx.pool()?, ctx.flag("count_include_pad")?), (1, 1), 1),
        "Resize" => (ctx.resize()?, (1, 4), 1),
        "Concat" => {
            let axis = ctx.wrap(attr::int(node, "axis"))?.ok_or_else(|| ctx.err("attribute `axis` is required"))?;
            (Op::Concat(axis), (1, usize::MAX), 1)
        }
        "Reshape" => (Op::Reshape(ctx.flag("allowzero")?), (2, 2), 1),
        "Flatten" => (Op::Flatten(ctx.int("axis", 1)?), (1, 1), 1),
        "Shape" => (Op::Shape(ctx.int("start", 0)?, ctx.wrap(attr::int(node, "end"))?), (1, 1), 1),
        "Slice" => (Op::Slice, (3, 5), 1),
        "Cast" => {
            let to = ctx.int("to", 0)?;
            let dtype = i32::try_from(to)
                .ok()
                .and_then(DType::from_onnx)
                .ok_or_else(|| ctx.err(format!("cast to data type {to} is not supported (FLOAT, INT32, INT64)")))?;
            (Op::Cast(dtype), (1, 1), 1)
        }
        "MatMul" => (Op::MatMul, (2, 2), 1),
        "Gemm" => (
            Op::Gemm {
                alpha: ctx.float("alpha", 1.0)?,
                beta: ctx.float("beta", 1.0)?,
                trans_a: ctx.flag("transA")?,
                trans_b: ctx.flag("transB")?,
            },
            (2, 3),
            1,
        ),
        "Softmax" => {
            let coerce_2d = ctx.opset < 13;
            (Op::Softmax { axis: ctx.int("axis", if coerce_2d { 1 } else { -1 })?, coerce_2d }, (1, 1), 1)
        }
        other => return Err(ctx.err(format!("operator `{other}` is not supported"))),
    })
}
