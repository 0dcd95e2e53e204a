//! Fixing the input shapes: shape inference for every value and folding of everything that
//! is then constant (shape arithmetic, constant subgraphs), in float64 by the reference.

use std::collections::HashMap;

use crate::error::{ModelError, Problem, Report, Result};
use crate::ir::{Graph, Op};
use crate::tensor::{DType, Data, Tensor};
use crate::{reference, shape};

/// Largest tensor a plan computes (1 GiB of float32).
pub const MAX_ELEMENTS: usize = 1 << 28;
/// Largest constant computed at plan time.
const MAX_FOLD: usize = 1 << 22;
/// Most elements of folded constants alive at once (256 MiB of float32): past it, constant
/// work is left to the plan, so a small model of constant expansions cannot fill memory at
/// import. A folded constant that only folded nodes read is dropped once the last has read
/// it (a chain of weight-sized steps, as in weight standardisation, holds one or two).
const MAX_FOLD_TOTAL: usize = 1 << 26;

/// Most elements folded in all (a few seconds of float64 work): past it, constant work is
/// left to the plan, so a small model of many constant expansions cannot hold up an import.
const MAX_FOLD_WORK: usize = 1 << 29;

/// The folded constants alive while a graph is specialised.
struct Folded {
    /// Their elements.
    live: usize,
    /// Elements folded so far, dropped or not.
    work: usize,
    /// Reads of each value still to come (by nodes, and as a graph output).
    reads: Vec<usize>,
    /// Which values are folded constants.
    made: Vec<bool>,
}

impl Folded {
    fn new(g: &Graph, nodes: &[crate::ir::Node]) -> Self {
        let mut reads = vec![0; g.values.len()];
        for &v in nodes.iter().flat_map(|n| n.inputs.iter().flatten()).chain(&g.outputs) {
            reads[v] += 1;
        }
        Folded { live: 0, work: 0, reads, made: vec![false; g.values.len()] }
    }

    /// Records a folded node's outputs and drops the folded inputs it was the last to read.
    fn fold(&mut self, g: &mut Graph, node: &crate::ir::Node) {
        for &v in &node.outputs {
            let Some(len) = g.constants.get(&v).map(Tensor::len) else { continue };
            self.work += len;
            // An output nothing reads (a running statistic, say) is not kept.
            if self.reads[v] == 0 {
                g.constants.remove(&v);
            } else {
                self.live += len;
                self.made[v] = true;
            }
        }
        for &v in node.inputs.iter().flatten() {
            self.reads[v] = self.reads[v].saturating_sub(1);
            if self.reads[v] == 0 && self.made[v] {
                if let Some(t) = g.constants.remove(&v) {
                    self.live -= t.len();
                }
            }
        }
    }
}

/// Fixes the shape of every graph input (`shapes`, in [`Graph::inputs`] order), binds the
/// inputs named in `bound` as constants, infers every value's shape and folds constant
/// subgraphs. Values whose shape depends on run-time data (`NonMaxSuppression`, a `Range`
/// or `Reshape` of computed values) and everything computed from them keep `shape: None`.
/// Errors name the node whose shapes do not fit.
pub fn specialize(g: &mut Graph, shapes: &[Vec<usize>], bound: HashMap<String, Tensor>) -> Result<()> {
    let mut bound = bound;
    let inputs = std::mem::take(&mut g.inputs);
    let mut free = Vec::new();
    let mut shapes = shapes.iter();
    for id in inputs {
        let name = g.values[id].name.clone();
        if let Some(t) = bound.remove(&name) {
            check_declared(g, id, &t.shape)?;
            g.values[id].shape = Some(t.shape.clone());
            g.constants.insert(id, t);
            continue;
        }
        let s = shapes.next().ok_or_else(|| ModelError::Input(format!("no shape given for input `{name}`")))?;
        check_declared(g, id, s)?;
        if s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|l| l > MAX_ELEMENTS) {
            return Err(ModelError::Input(format!("input `{name}` shape {s:?} is too large")));
        }
        g.values[id].shape = Some(s.clone());
        free.push(id);
    }
    if shapes.next().is_some() {
        return Err(ModelError::Input(format!("more shapes given than the model has free inputs ({})", free.len())));
    }
    if let Some(name) = bound.keys().next() {
        return Err(ModelError::Input(format!("`{name}` is not an input of the model")));
    }
    g.inputs = free;
    let nodes = std::mem::take(&mut g.nodes);
    // Refusals are collected: a refused node's outputs keep no shape, so what follows it is
    // passed over as data-dependent rather than reported again.
    let mut report = Report::default();
    let mut folded = Folded::new(g, &nodes);
    for node in nodes {
        let (name, op) = (node.name.clone(), node.op.name().to_string());
        match node_shapes(g, node, &mut folded) {
            Ok(()) => {}
            Err(ModelError::Unsupported { node, op, reason }) => report.problems.push(Problem { node, op, reason }),
            Err(ModelError::Problems(r)) => report.problems.extend(r.problems),
            Err(e) if e.is_refusal() => report.problems.push(Problem { node: name, op, reason: e.to_string() }),
            Err(e) => return Err(e),
        }
    }
    if !report.problems.is_empty() {
        return Err(ModelError::Problems(report));
    }
    Ok(())
}

/// Shapes (and folding) of one node, which is then appended to the graph; `folded` holds the
/// folded constants alive.
fn node_shapes(g: &mut Graph, mut node: crate::ir::Node, folded: &mut Folded) -> Result<()> {
    // Downstream of a data-dependent value, shapes are known only at run time too.
    if node.inputs.iter().flatten().any(|&i| g.values[i].shape.is_none()) {
        g.nodes.push(node);
        return Ok(());
    }
    resolve_clip(g, &mut node)?;
    let all_const = node.inputs.iter().flatten().all(|i| g.constants.contains_key(i));
    let shape_of_known = matches!(node.op, Op::Shape(..) | Op::Generic(crate::portable::Generic::Size))
        && node.input(0).is_some_and(|i| g.shape(i).is_some());
    // Fold in float64 only what is small; larger constant work is left to the plan.
    let out_len = shape::infer(g, &node).map(|s| {
        s.iter().try_fold(0usize, |sum, s| {
            let l = s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&l| l <= MAX_FOLD)?;
            sum.checked_add(l)
        })
    });
    let small = match out_len {
        Ok(Some(l)) => folded.live + l <= MAX_FOLD_TOTAL && folded.work + l <= MAX_FOLD_WORK,
        Ok(None) => false,
        Err(_) => true,
    };
    if (all_const && small) || shape_of_known {
        let wide: Vec<Option<Tensor<f64>>> = node
            .inputs
            .iter()
            .map(|i| {
                i.map(|i| match g.constant(i) {
                    Some(t) => t.to_f64(),
                    // Shape only reads the shape.
                    None => Tensor {
                        shape: g.shape(i).unwrap_or(&[]).to_vec(),
                        dtype: DType::F32,
                        data: Data::Float(Vec::new()),
                    },
                })
            })
            .collect();
        let refs: Vec<Option<&Tensor<f64>>> = wide.iter().map(Option::as_ref).collect();
        let outs = reference::eval(g, &node, &refs)?;
        for (&id, t) in node.outputs.iter().zip(outs) {
            let t = t.to_f32();
            g.values[id].shape = Some(t.shape.clone());
            g.constants.insert(id, t);
        }
        folded.fold(g, &node);
        return Ok(());
    }
    let shapes = match shape::infer(g, &node) {
        Ok(s) => s,
        // A shape decided by run-time values: the outputs stay without a shape, and
        // the plan computes them (and what depends on them) off the static buffer plan.
        Err(ModelError::DataDependent { .. }) => {
            g.nodes.push(node);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for s in &shapes {
        let len = s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if len.is_none_or(|l| l > MAX_ELEMENTS) {
            return Err(crate::error::unsupported(
                &node.name,
                node.op.name(),
                format!("output shape {s:?} exceeds {MAX_ELEMENTS} elements"),
            ));
        }
    }
    for (&id, s) in node.outputs.iter().zip(shapes) {
        g.values[id].shape = Some(s);
    }
    g.nodes.push(node);
    Ok(())
}

/// Reads `Clip`'s bounds (inputs 1 and 2, constants by now) into the operator.
fn resolve_clip(g: &Graph, node: &mut crate::ir::Node) -> Result<()> {
    let Op::Activation(kernels::Activation::Clip { min: attr_min, max: attr_max }) = node.op else { return Ok(()) };
    let bound = |i: usize, default: f32| -> Result<f32> {
        let Some(id) = node.input(i) else { return Ok(default) };
        let t = g.constant(id);
        if let Some([v]) = t.and_then(Tensor::ints) {
            return Ok(*v as f32);
        }
        match t.and_then(Tensor::floats) {
            Some([v]) if !v.is_nan() => Ok(*v),
            _ => Err(crate::error::unsupported(
                &node.name,
                "Clip",
                format!("bound `{}` must be one float known at plan time", g.values[id].name),
            )),
        }
    };
    let (min, max) = (bound(1, attr_min)?, bound(2, attr_max)?);
    // ONNX: min > max makes every output max.
    node.op = Op::Activation(kernels::Activation::Clip { min: min.min(max), max });
    node.inputs.truncate(1);
    Ok(())
}

fn check_declared(g: &Graph, id: usize, s: &[usize]) -> Result<()> {
    let Some(decl) = g.declared.get(&id) else { return Ok(()) };
    let name = &g.values[id].name;
    let show =
        |d: &[Option<usize>]| d.iter().map(|v| v.map_or("?".into(), |v| v.to_string())).collect::<Vec<_>>().join("x");
    if decl.len() != s.len() {
        return Err(ModelError::Input(format!(
            "input `{name}` is declared {} ({} dims), given {s:?}",
            show(decl),
            decl.len()
        )));
    }
    for (i, (d, &v)) in decl.iter().zip(s).enumerate() {
        if d.is_some_and(|d| d != v) {
            return Err(ModelError::Input(format!(
                "input `{name}` is declared {}, given {s:?}: dimension {i} differs",
                show(decl)
            )));
        }
    }
    Ok(())
}
