//! ONNX protobuf to [`Graph`]: values, constants, typed operators. Every refusal names the
//! node and the reason, and the importer goes on past refused nodes so that one error
//! ([`ModelError::Problems`]) lists every problem of the model; no input byte string
//! panics (see the importer fuzz test).

mod portable;

use std::collections::HashMap;

use kernels::Activation;
use onnx::attr;
use onnx::proto::{ModelProto, NodeProto, ValueInfoProto};

use crate::error::{unsupported, ModelError, Problem, Report, Result};
use crate::ir::{AutoPad, Binary, Conv, Graph, Node, Op, Pool};
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

/// Operators of quantized models (the importer says a model is quantized when it has one).
const QUANTIZED_OPS: [&str; 15] = [
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "QLinearAdd",
    "QLinearMul",
    "QLinearSigmoid",
    "QLinearConcat",
    "QLinearGlobalAveragePool",
    "QGemm",
    "DynamicQuantizeMatMul",
    "DynamicQuantizeLSTM",
];

/// Imports a decoded model. Refused initializers, inputs and nodes are collected (their
/// outputs stand in as unknown values so later nodes still resolve) and returned together
/// as [`ModelError::Problems`]; structural errors (undefined names, cycles) stop at once.
pub fn import_model(model: &ModelProto) -> Result<Graph> {
    let opset = default_opset(model)?;
    let graph = model.graph.as_ref().ok_or_else(|| ModelError::Malformed("the model has no graph".into()))?;
    let mut g = Graph { opset, ..Graph::default() };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut report = Report::default();
    for init in &graph.initializer {
        let id = match Tensor::from_onnx(init) {
            Ok(t) => {
                report.quantized |= t.dtype.is_quantized();
                g.add_constant(init.name.clone(), t)
            }
            Err(e) => {
                refuse(&mut report, unsupported(&init.name, "initializer", e.to_string()))?;
                g.add_value(init.name.clone(), DType::F32, None)
            }
        };
        define(&mut names, &init.name, id)?;
    }
    for input in &graph.input {
        if names.contains_key(&input.name) {
            continue; // an initializer listed as an input (IR < 4 style): a constant
        }
        let tt = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        let dtype = match input_dtype(input) {
            Ok(d) => d,
            Err(e) => refuse(&mut report, e).map(|()| DType::F32)?,
        };
        report.quantized |= dtype.is_quantized();
        let id = g.add_value(input.name.clone(), dtype, None);
        define(&mut names, &input.name, id)?;
        if let Some(shape) = tt.and_then(|t| t.shape.as_ref()) {
            let dims = shape.dim.iter().map(|d| d.dim_value.filter(|&v| v > 0).map(|v| v as usize)).collect();
            g.declared.insert(id, dims);
        }
        g.inputs.push(id);
    }
    for (index, node) in graph.node.iter().enumerate() {
        report.quantized |= QUANTIZED_OPS.contains(&node.op_type.as_str());
        if let Err(e) = import_node(&mut g, &mut names, node, index) {
            refuse(&mut report, e)?;
            // The refused node's outputs stand in as unknown values.
            let missing: Vec<&String> =
                node.output.iter().filter(|o| !o.is_empty() && !names.contains_key(*o)).collect();
            for o in missing {
                let id = g.add_value(o.clone(), DType::F32, None);
                define(&mut names, o, id)?;
            }
        }
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
    if !report.problems.is_empty() {
        return Err(ModelError::Problems(report));
    }
    Ok(g)
}

/// A refusal joins the report (the import goes on); any other error stops the import.
fn refuse(report: &mut Report, e: ModelError) -> Result<()> {
    match e {
        ModelError::Unsupported { node, op, reason } => {
            report.problems.push(Problem { node, op, reason });
            Ok(())
        }
        other => Err(other),
    }
}

/// A graph input's element type, refused when it is not a tensor of a type edgepack executes.
fn input_dtype(input: &ValueInfoProto) -> Result<DType> {
    let tt = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    let code = tt.map(|t| t.elem_type).ok_or_else(|| unsupported(&input.name, "graph input", "it is not a tensor"))?;
    DType::from_onnx(code).ok_or_else(|| {
        let name = onnx::tensor::type_name(code);
        unsupported(
            &input.name,
            "graph input",
            format!("type {name}: edgepack executes FLOAT, BOOL and the integer types"),
        )
    })
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
    let microsoft = node.domain == "com.microsoft";
    if !(node.domain.is_empty() || node.domain == "ai.onnx" || microsoft) {
        return Err(ctx.err(format!("domain `{}` is not supported", node.domain)));
    }
    let ids = input_ids(names, node, &name)?;
    if node.op_type == "Constant" {
        let [out] = node.output.as_slice() else { return Err(ctx.err("a Constant has one output")) };
        let t = constant_value(&ctx)?;
        return define(names, out, g.add_constant(out.clone(), t));
    }
    let (op, arity, outputs) = match portable::parse(&ctx, microsoft)? {
        Some(parsed) => parsed,
        None if microsoft => return Err(ctx.err(format!("operator `com.microsoft.{}` is not supported", node.op_type))),
        None => parse_op(&ctx)?,
    };
    let present = ids.len();
    if present < arity.0 || present > arity.1 {
        return Err(ctx.err(format!("has {present} inputs, expected {}..={}", arity.0, arity.1)));
    }
    if ids.iter().take(arity.0).any(Option::is_none) {
        return Err(ctx.err(format!("the first {} inputs are required", arity.0)));
    }
    let out_ids = output_ids(g, names, &ctx, &op, &ids, outputs)?;
    g.nodes.push(Node { name, op, inputs: ids, outputs: out_ids });
    Ok(())
}

/// The node's input values (`None` for an omitted optional input); each must be defined by
/// an earlier node, initializer or graph input.
fn input_ids(names: &HashMap<String, usize>, node: &NodeProto, name: &str) -> Result<Vec<Option<usize>>> {
    let id = |i: &String| {
        names.get(i).copied().ok_or_else(|| {
            ModelError::Malformed(format!(
                "node `{name}` ({}): input `{i}` is not defined before it (nodes must be in topological order)",
                node.op_type
            ))
        })
    };
    node.input.iter().map(|i| if i.is_empty() { Ok(None) } else { id(i).map(Some) }).collect()
}

/// Defines the node's outputs with their element types. A portable operator may leave
/// optional outputs out (up to `outputs`, empty names kept as unused values); a native one
/// must have exactly the `outputs` edgepack computes.
fn output_ids(
    g: &mut Graph,
    names: &mut HashMap<String, usize>,
    ctx: &Ctx,
    op: &Op,
    ids: &[Option<usize>],
    outputs: usize,
) -> Result<Vec<usize>> {
    let node = ctx.node;
    let mut define_output = |g: &mut Graph, k: usize, o: &String, dtype: DType| -> Result<usize> {
        if o.is_empty() {
            return Ok(g.add_value(format!("{}.unused{k}", ctx.name), dtype, None));
        }
        let id = g.add_value(o.clone(), dtype, None);
        define(names, o, id)?;
        Ok(id)
    };
    if let Op::Generic(gen) = op {
        if node.output.len() > outputs || node.output.iter().all(String::is_empty) {
            return Err(ctx.err(format!("has {} outputs, expected 1..={outputs}", node.output.len())));
        }
        let dtypes = gen.out_dtypes(&ids.iter().map(|i| i.map(|i| g.values[i].dtype)).collect::<Vec<_>>());
        return node
            .output
            .iter()
            .enumerate()
            .map(|(k, o)| define_output(g, k, o, dtypes.get(k).copied().unwrap_or(DType::F32)))
            .collect();
    }
    let real_outputs = node.output.iter().filter(|o| !o.is_empty()).count();
    if real_outputs != outputs || node.output.len() < outputs {
        return Err(ctx.err(format!(
            "has {real_outputs} outputs; edgepack computes {outputs} (optional outputs such as indices or running statistics are not supported)"
        )));
    }
    let dtype = match op {
        Op::Shape(..) => DType::I64,
        Op::Cast(t) => *t,
        Op::Reshape(_)
        | Op::Flatten(_)
        | Op::Slice
        | Op::Concat(_)
        | Op::Binary(_)
        | Op::Activation(Activation::Identity) => ids[0].map(|i| g.values[i].dtype).unwrap_or(DType::F32),
        _ => DType::F32,
    };
    node.output[..outputs].iter().enumerate().map(|(k, o)| define_output(g, k, o, dtype)).collect()
}

/// The operator, its accepted input count range, and its output count.
fn parse_op(ctx: &Ctx) -> Result<(Op, (usize, usize), usize)> {
    let node = ctx.node;
    Ok(match node.op_type.as_str() {
        "Conv" => (ctx.conv(false)?, (2, 3), 1),
        "ConvTranspose" => (ctx.conv(true)?, (2, 3), 1),
        "BatchNormalization" => {
            let epsilon = ctx.float("epsilon", 1e-5)?;
            match ctx.int("training_mode", 0)? {
                0 => (Op::BatchNorm { epsilon }, (5, 5), 1),
                _ => {
                    let (momentum, outputs) = (ctx.float("momentum", 0.9)?, node.output.len().clamp(1, 3));
                    (Op::Generic(crate::portable::Generic::BatchNormTraining { epsilon, momentum, outputs }), (5, 5), 3)
                }
            }
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
        // The attribute form (`min`/`max`, opsets before 11, still written by some exporters)
        // gives the defaults the inputs override.
        "Clip" => (
            Op::Activation(Activation::Clip {
                min: ctx.float("min", f32::NEG_INFINITY)?,
                max: ctx.float("max", f32::INFINITY)?,
            }),
            (1, 3),
            1,
        ),
        "GlobalAveragePool" => (Op::GlobalAveragePool, (1, 1), 1),
        "MaxPool" => {
            if ctx.int("storage_order", 0)? != 0 {
                return Err(ctx.err("storage_order = 1 is not supported"));
            }
            (Op::MaxPool(ctx.pool()?), (1, 1), 1)
        }
        "AveragePool" => (Op::AveragePool(ctx.pool()?, ctx.flag("count_include_pad")?), (1, 1), 1),
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
            let dtype = i32::try_from(to).ok().and_then(DType::from_onnx).ok_or_else(|| {
                ctx.err(format!(
                    "cast to {} is not supported (FLOAT, BOOL and the integer types are)",
                    onnx::tensor::type_name(i32::try_from(to).unwrap_or(-1))
                ))
            })?;
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
