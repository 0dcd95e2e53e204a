//! Lowering a specialised, optimised [`Graph`] to a [`Plan`] for one kernel set.

use std::collections::HashMap;

use kernels::{Activation, KernelSet, MatRef};

use super::{memory, EvalInput, FusedConv, Layout, MapOp, Operand, Plan, PlanValue, PlannedStep, Step};
use crate::error::{unsupported, ModelError, Result};
use crate::ir::{Binary, Graph, Node, Op, ValueId};
use crate::shape;
use crate::tensor::{broadcast_strides, DType, Tensor};

/// NHWC position of each logical NCHW axis.
const NHWC_OF: [usize; 4] = [0, 3, 1, 2];

struct Builder<'g> {
    g: &'g Graph,
    set: &'g dyn KernelSet,
    values: Vec<PlanValue>,
    steps: Vec<PlannedStep>,
    /// Physical plan value of each graph value.
    map: HashMap<ValueId, usize>,
    /// Plain (NCHW) copies of NHWC values, and NHWC copies of plain ones.
    relayouts: HashMap<(usize, Layout), usize>,
    consts: Vec<Vec<f32>>,
    const_of: HashMap<ValueId, usize>,
    convs: Vec<kernels::PackedConv>,
    gemms: Vec<kernels::PackedB>,
    /// Graph use counts (to extend element-wise chains only over single-use values).
    uses: Vec<usize>,
    /// The Map step that produced each plan value.
    map_step: HashMap<usize, usize>,
    /// The Gemm step that produced each plan value (to fuse a bias and an activation).
    gemm_step: HashMap<usize, usize>,
    flops: u64,
}

/// The lengths of a [`Builder`]'s tables at one point.
#[derive(Clone, Copy)]
struct Mark {
    steps: usize,
    values: usize,
    consts: usize,
    convs: usize,
    gemms: usize,
    flops: u64,
}

/// Builds a plan of `g` (specialised by [`crate::specialize`], usually optimised) for `set`.
pub fn build(g: &Graph, set: &dyn KernelSet) -> Result<Plan> {
    build_with(g, set, set.info().id == kernels::KernelSetId::Cuda)
}

/// [`build`] for a session on `set`'s device ([`Plan::device_session`]): without the CPU
/// executor's own fusions (expansion into depthwise, gated convolutions), so that every step a
/// device has an operation for runs there. CUDA plans are always built so.
pub fn build_for_device(g: &Graph, set: &dyn KernelSet) -> Result<Plan> {
    build_with(g, set, true)
}

fn build_with(g: &Graph, set: &dyn KernelSet, for_device: bool) -> Result<Plan> {
    let mut b = Builder {
        g,
        set,
        values: Vec::new(),
        steps: Vec::new(),
        map: HashMap::new(),
        relayouts: HashMap::new(),
        consts: Vec::new(),
        const_of: HashMap::new(),
        convs: Vec::new(),
        gemms: Vec::new(),
        uses: g.use_counts(),
        map_step: HashMap::new(),
        gemm_step: HashMap::new(),
        flops: 0,
    };
    let mut inputs = Vec::new();
    for &id in &g.inputs {
        if g.values[id].dtype.is_int() {
            return Err(ModelError::Input(format!(
                "input `{}` is an integer tensor: bind it to a constant when planning",
                g.values[id].name
            )));
        }
        let v = b.value(&g.values[id].name, b.shape(id)?, Layout::Plain);
        b.map.insert(id, v);
        inputs.push(v);
    }
    for node in &g.nodes {
        b.node(node)?;
    }
    let mut outputs = Vec::new();
    for &id in &g.outputs {
        let v = match g.constant(id) {
            Some(t) if t.dtype.is_int() => {
                let input = b.eval_input(id)?;
                let v = b.value(&g.values[id].name, b.shape(id)?, Layout::Plain);
                b.values[v].dtype = t.dtype;
                let op = crate::ir::Op::Activation(Activation::Identity);
                b.push(
                    "(constant output)",
                    "Identity",
                    Step::Eval { op, inputs: vec![Some(input)], index: 0, output: v },
                );
                v
            }
            Some(_) => {
                let src = b.operand(id)?;
                let v = b.value(&g.values[id].name, b.shape(id)?, Layout::Plain);
                b.push("(constant output)", "Copy", Step::Copy { input: src, output: v });
                v
            }
            None => b.plain(id)?,
        };
        b.values[v].name = g.values[id].name.clone();
        outputs.push(v);
    }
    let mut plan = Plan {
        kernel_set: set.info().id,
        kernel_name: set.info().name.to_string(),
        values: b.values,
        steps: b.steps,
        inputs,
        outputs,
        slots: Vec::new(),
        consts: b.consts,
        convs: b.convs,
        gemms: b.gemms,
        flops: b.flops,
        // A malformed knob refused the set before any plan was built.
        tuning: kernels::Tuning::host().map(kernels::Tuning::overrides).unwrap_or_default(),
    };
    resize_to_planes(&mut plan);
    if !for_device {
        expand_depthwise(&mut plan);
        gates_into_convs(&mut plan);
    }
    memory::assign(&mut plan);
    Ok(plan)
}

/// A `Resize` whose only reader is a relayout to NCHW (a segmentation model's upsampled
/// output) writes NCHW itself: the relayout step, a full pass over the largest value of such
/// models, goes away. The executor picks the planar resize from the output's layout.
fn resize_to_planes(plan: &mut Plan) {
    let readers = readers(plan);
    let mut producer: HashMap<usize, usize> = HashMap::new();
    let mut removed = std::collections::HashSet::new();
    for s in 0..plan.steps.len() {
        if let Step::Relayout { input, output } = plan.steps[s].step {
            let fusable = plan.values[output].layout == Layout::Plain
                && readers[input] == 1
                && !plan.outputs.contains(&input)
                && producer.get(&input).is_some_and(|&p| matches!(plan.steps[p].step, Step::Resize { .. }));
            if fusable {
                let p = producer[&input];
                if let Step::Resize { output: o, .. } = &mut plan.steps[p].step {
                    *o = output;
                }
                plan.steps[p].op.push_str("+Relayout");
                removed.insert(s);
            }
        }
        producer.insert(memory::writes(&plan.steps[s].step), s);
    }
    remove_steps(plan, &removed);
}

/// How many steps read each value.
fn readers(plan: &Plan) -> Vec<usize> {
    let mut readers = vec![0usize; plan.values.len()];
    for step in &plan.steps {
        for r in memory::reads(&step.step).0 {
            readers[r] += 1;
        }
    }
    readers
}

/// Drops the steps at the indices `removed` holds.
fn remove_steps(plan: &mut Plan, removed: &std::collections::HashSet<usize>) {
    let mut index = 0;
    plan.steps.retain(|_| {
        index += 1;
        !removed.contains(&(index - 1))
    });
}

/// Expanded values smaller than this are left to the two convolutions: they stay in the
/// caches between the steps anyway, and the fused kernel's bands would cut their GEMM into
/// small pieces and compute the rows where two threads' shares meet twice.
const EXPAND_FUSE_MIN_BYTES: usize = 1 << 20;

/// A pointwise convolution (no residual) whose only reader is a depthwise convolution becomes
/// one [`Step::ExpandDepthwise`] at the depthwise step's place, where the expanded value is
/// large (MobileNet's and EfficientNet's inverted residual blocks at high resolution): it is
/// then never written to memory and read back. CPU sessions only (a device runs each
/// convolution as its own operation).
fn expand_depthwise(plan: &mut Plan) {
    let readers = readers(plan);
    let mut producer: HashMap<usize, usize> = HashMap::new();
    let mut removed = std::collections::HashSet::new();
    for s in 0..plan.steps.len() {
        if let Step::Conv { weights, bias, input: mid, residual, activation, output, gate: None } = plan.steps[s].step {
            let expansion = producer.get(&mid).and_then(|&p| match plan.steps[p].step {
                Step::Conv { weights, bias, input, residual: None, activation, gate: None, .. } => {
                    Some((p, FusedConv { weights, bias, activation }, input))
                }
                _ => None,
            });
            let fusable = plan.convs[weights].algorithm() == kernels::ConvAlgorithm::Depthwise
                && readers[mid] == 1
                && !plan.outputs.contains(&mid)
                && plan.values[mid].len() * std::mem::size_of::<f32>() >= EXPAND_FUSE_MIN_BYTES
                && expansion.is_some_and(|(_, e, _)| {
                    let c = &plan.convs[e.weights];
                    c.algorithm() == kernels::ConvAlgorithm::ImplicitGemm && c.params().is_pointwise()
                });
            if let (true, Some((p, expand, input))) = (fusable, expansion) {
                let depthwise = FusedConv { weights, bias, activation };
                let op = format!("{}>{}", plan.steps[p].op, plan.steps[s].op);
                plan.steps[s].op = op;
                plan.steps[s].node = plan.steps[p].node.clone();
                plan.steps[s].step = Step::ExpandDepthwise { expand, depthwise, input, residual, output };
                removed.insert(p);
            }
        }
        producer.insert(memory::writes(&plan.steps[s].step), s);
    }
    remove_steps(plan, &removed);
}

/// A per-channel multiply of an NHWC value (a squeeze-excitation block's `x · g`, `g`
/// `[1, C, 1, 1]`) whose only reader is a convolution that takes input scales
/// ([`kernels::PackedConv::scales_inputs`]) becomes that convolution's gate: each run scales
/// the weights instead of the tensor, and the multiply's pass over the gated tensor goes
/// away. Only where the weights are no larger than that tensor (`taps · c_out ≤ H · W`: the
/// projections of MobileNetV3's and EfficientNet's blocks on maps of 14×14 and more), on one
/// image (the gate differs per image), in CPU sessions.
fn gates_into_convs(plan: &mut Plan) {
    let readers = readers(plan);
    // The gated value of each fusable multiply: (its step, the dense operand, the gate).
    let mut gated: HashMap<usize, (usize, usize, usize)> = HashMap::new();
    let mut removed = std::collections::HashSet::new();
    for s in 0..plan.steps.len() {
        match plan.steps[s].step {
            Step::Binary { op: Binary::Mul, a, b, output: (m, dims) } => {
                let sole = readers[m] == 1 && !plan.outputs.contains(&m) && plan.values[m].layout == Layout::Nhwc;
                if let (true, Some((x, g))) = (sole, gate_operands(plan, a, b, dims)) {
                    gated.insert(m, (s, x, g));
                }
            }
            Step::Conv { weights, input, gate: None, .. } => {
                let Some(&(p, x, g)) = gated.get(&input) else { continue };
                // `gate_operands` checked one image and a gate per channel of the conv's input.
                let (conv, [_, h, w, _]) = (&plan.convs[weights], super::dims4(&plan.values[input].physical()));
                if conv.scales_inputs() && conv.params().taps() * conv.params().c_out <= h * w {
                    plan.steps[s].op = format!("{}>{}", plan.steps[p].op, plan.steps[s].op);
                    if let Step::Conv { input, gate, .. } = &mut plan.steps[s].step {
                        (*input, *gate) = (x, Some(g));
                    }
                    removed.insert(p);
                }
            }
            _ => {}
        }
    }
    remove_steps(plan, &removed);
}

/// The dense operand and the gate of a per-channel multiply over NHWC `dims` (`[1, H, W, C]`):
/// one operand a value laid out as the output, the other a value of `C` read once per channel.
fn gate_operands(
    plan: &Plan,
    a: (Operand, [usize; 4]),
    b: (Operand, [usize; 4]),
    dims: [usize; 4],
) -> Option<(usize, usize)> {
    let dense_strides = [0, dims[2] * dims[3], dims[3], 1];
    let dense = |v: usize, s: [usize; 4]| {
        plan.values[v].layout == Layout::Nhwc
            && plan.values[v].physical() == dims
            && (1..4).all(|d| dims[d] == 1 || s[d] == dense_strides[d])
    };
    let gate = |v: usize, s: [usize; 4]| plan.values[v].len() == dims[3] && s[1] == 0 && s[2] == 0 && s[3] == 1;
    if dims[0] != 1 {
        return None;
    }
    match (a, b) {
        ((Operand::Value(x), sx), (Operand::Value(g), sg)) | ((Operand::Value(g), sg), (Operand::Value(x), sx))
            if dense(x, sx) && gate(g, sg) =>
        {
            Some((x, g))
        }
        _ => None,
    }
}

fn node_err(node: &Node, reason: impl Into<String>) -> ModelError {
    unsupported(&node.name, node.op.name(), reason)
}

impl Builder<'_> {
    fn shape(&self, id: ValueId) -> Result<Vec<usize>> {
        self.g.shape(id).map(<[usize]>::to_vec).ok_or_else(|| {
            ModelError::Malformed(format!(
                "value `{}` has no shape: specialise the graph first",
                self.g.values[id].name
            ))
        })
    }

    fn value(&mut self, name: &str, shape: Vec<usize>, layout: Layout) -> usize {
        self.values.push(PlanValue {
            name: name.to_string(),
            shape,
            layout,
            slot: usize::MAX,
            dtype: DType::F32,
            dynamic: false,
        });
        self.values.len() - 1
    }

    fn push(&mut self, node: &str, op: &str, step: Step) {
        self.steps.push(PlannedStep { node: node.to_string(), op: op.to_string(), step });
    }

    fn constant(&mut self, values: Vec<f32>) -> usize {
        self.consts.push(values);
        self.consts.len() - 1
    }

    /// The operand for graph value `id`: a plan constant or its physical value.
    fn operand(&mut self, id: ValueId) -> Result<Operand> {
        if let Some(t) = self.g.constant(id) {
            if let Some(&c) = self.const_of.get(&id) {
                return Ok(Operand::Const(c));
            }
            let f = t.floats().ok_or_else(|| {
                ModelError::Input(format!("integer constant `{}` used as a float operand", self.g.values[id].name))
            })?;
            let c = self.constant(f.to_vec());
            self.const_of.insert(id, c);
            return Ok(Operand::Const(c));
        }
        self.map.get(&id).map(|&v| Operand::Value(v)).ok_or_else(|| {
            ModelError::Malformed(format!("value `{}` is used before it is computed", self.g.values[id].name))
        })
    }

    /// Graph value `id` in `layout`, converting (once) if needed.
    fn in_layout(&mut self, id: ValueId, layout: Layout) -> Result<usize> {
        let v = match self.operand(id)? {
            Operand::Value(v) => v,
            Operand::Const(_) => {
                return Err(ModelError::Unsupported {
                    node: self.g.values[id].name.clone(),
                    op: "constant".into(),
                    reason: "a constant where a computed tensor is expected".into(),
                })
            }
        };
        if self.values[v].layout == layout {
            return Ok(v);
        }
        if let Some(&c) = self.relayouts.get(&(v, layout)) {
            return Ok(c);
        }
        let suffix = if layout == Layout::Nhwc { "nhwc" } else { "nchw" };
        let name = format!("{}.{suffix}", self.values[v].name);
        let c = self.value(&name, self.values[v].shape.clone(), layout);
        self.push(&name, "Relayout", Step::Relayout { input: v, output: c });
        self.relayouts.insert((v, layout), c);
        Ok(c)
    }

    fn plain(&mut self, id: ValueId) -> Result<usize> {
        self.in_layout(id, Layout::Plain)
    }

    fn nhwc(&mut self, node: &Node, i: usize) -> Result<usize> {
        let id = node.input(i).ok_or_else(|| node_err(node, format!("input {i} is missing")))?;
        if self.shape(id)?.len() != 4 {
            return Err(node_err(node, "only 4-D inputs are supported"));
        }
        self.in_layout(id, Layout::Nhwc)
    }

    fn define(&mut self, node: &Node, layout: Layout) -> Result<usize> {
        self.define_output(node, 0, layout)
    }

    fn define_output(&mut self, node: &Node, k: usize, layout: Layout) -> Result<usize> {
        let id = node.outputs[k];
        let dynamic = self.g.shape(id).is_none();
        let shape = if dynamic { Vec::new() } else { self.shape(id)? };
        let v = self.value(&self.g.values[id].name.clone(), shape, layout);
        self.values[v].dtype = self.g.values[id].dtype;
        self.values[v].dynamic = dynamic;
        self.map.insert(id, v);
        Ok(v)
    }

    /// An `Eval` step's input for graph value `id`.
    fn eval_input(&mut self, id: ValueId) -> Result<EvalInput> {
        match self.g.constant(id) {
            Some(t) => match (t.floats(), t.ints()) {
                (Some(_), _) => match self.operand(id)? {
                    Operand::Const(index) => Ok(EvalInput::Const { index, shape: t.shape.clone() }),
                    Operand::Value(_) => unreachable!("a constant"),
                },
                (_, Some(v)) => Ok(EvalInput::Ints { shape: t.shape.clone(), dtype: t.dtype, values: v.to_vec() }),
                _ => unreachable!("float or int"),
            },
            None => Ok(EvalInput::Value(self.plain(id)?)),
        }
    }

    /// A node evaluated on its run-time inputs: one `Eval` step per output the plan uses.
    fn eval_node(&mut self, node: &Node) -> Result<()> {
        let inputs =
            node.inputs.iter().map(|i| i.map(|id| self.eval_input(id)).transpose()).collect::<Result<Vec<_>>>()?;
        for (k, &out) in node.outputs.iter().enumerate() {
            if self.uses[out] == 0 {
                continue;
            }
            let output = self.define_output(node, k, Layout::Plain)?;
            let step = Step::Eval { op: node.op.clone(), inputs: inputs.clone(), index: k, output };
            self.push(&node.name, node.op.name(), step);
        }
        Ok(())
    }

    /// Whether a node runs as an `Eval` step: operators without kernels, and any node on
    /// integer, empty or data-dependent tensors.
    fn evaluated(&self, node: &Node) -> bool {
        match node.op {
            // A reshape of static float data is a copy whatever computed its (integer) shape
            // input: the output's shape is known.
            Op::Reshape(_) | Op::Flatten(_) => !self.data_static(node),
            Op::Generic(_) | Op::Shape(..) | Op::Cast(_) | Op::Slice => true,
            _ => self.evaluated_io(node),
        }
    }

    /// Whether the node's data (input 0) and outputs are float tensors of known, non-empty
    /// shapes (its other inputs, such as `Split` sizes or `Slice` bounds, may be integers).
    fn data_static(&self, node: &Node) -> bool {
        let float_static =
            |v: ValueId| !self.g.values[v].dtype.is_int() && self.g.shape(v).is_some_and(|s| !s.contains(&0));
        node.input(0).is_some_and(float_static) && node.outputs.iter().all(|&o| float_static(o))
    }

    fn evaluated_io(&self, node: &Node) -> bool {
        node.inputs
            .iter()
            .flatten()
            .chain(&node.outputs)
            .any(|&v| self.g.values[v].dtype.is_int() || self.g.shape(v).is_none_or(|s| s.contains(&0)))
    }

    /// A 4-D spatial `Resize` the native kernel runs (refused otherwise: the caller then
    /// evaluates it).
    fn resize(&mut self, node: &Node, r: crate::ir::Resize) -> Result<()> {
        let input = self.nhwc(node, 0)?;
        let (_, scales) = shape::resize_shape(self.g, node, &self.values[input].shape.clone())?;
        let output = self.define(node, Layout::Nhwc)?;
        self.push(&node.name, "Resize", Step::Resize { resize: r, scales: [scales[2], scales[3]], input, output });
        Ok(())
    }

    fn const_floats(&self, node: &Node, i: usize, what: &str) -> Result<&[f32]> {
        node.input(i)
            .and_then(|id| self.g.constant(id))
            .and_then(Tensor::floats)
            .ok_or_else(|| node_err(node, format!("{what} must be a float constant")))
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        if let Op::Generic(crate::portable::Generic::Resize(r)) = &node.op {
            // The data and output decide (an empty `roi` or integer `sizes` input is read at
            // plan time); any form the native kernel does not take (not 4-D, not spatial) is
            // evaluated.
            if let (Some(native), true) = (r.native(), self.data_static(node)) {
                let mark = self.mark();
                match self.resize(node, native) {
                    Ok(()) => return Ok(()),
                    Err(_) => self.rollback(mark),
                }
            }
        }
        if let (Op::Generic(crate::portable::Generic::Unary(u)), false) = (&node.op, self.evaluated_io(node)) {
            if let Some(f) = kernel_unary(*u) {
                return self.map_op(node, 0, vec![MapOp::Unary(f)]);
            }
            if let Some(f) = super::Exact::of(*u) {
                return self.map_op(node, 0, vec![MapOp::Exact(f)]);
            }
        }
        if self.data_static(node) && matches!(node.op, Op::Generic(_) | Op::Slice) {
            let mark = self.mark();
            let lowered = match &node.op {
                Op::Generic(gen) => self.generic(node, gen),
                _ => self.slice(node),
            };
            match lowered {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.is_refusal() => self.rollback(mark),
                Err(e) => return Err(e),
            }
        }
        if self.evaluated(node) {
            return self.eval_node(node);
        }
        // A form the native lowering refuses (a run-time operand where it wants a constant,
        // a rank it does not handle) runs as an `Eval` step; what was pushed is undone first.
        let mark = self.mark();
        match self.native(node) {
            Err(e) if e.is_refusal() && !matches!(node.op, Op::Conv(_)) => {
                self.rollback(mark);
                self.eval_node(node)
            }
            r => r,
        }
    }

    /// Where the plan stands, to undo a lowering that failed part-way.
    fn mark(&self) -> Mark {
        Mark {
            steps: self.steps.len(),
            values: self.values.len(),
            consts: self.consts.len(),
            convs: self.convs.len(),
            gemms: self.gemms.len(),
            flops: self.flops,
        }
    }

    fn rollback(&mut self, m: Mark) {
        self.steps.truncate(m.steps);
        self.values.truncate(m.values);
        self.consts.truncate(m.consts);
        self.convs.truncate(m.convs);
        self.gemms.truncate(m.gemms);
        self.flops = m.flops;
        self.map.retain(|_, v| *v < m.values);
        self.relayouts.retain(|k, v| *v < m.values && k.0 < m.values);
        self.map_step.retain(|v, s| *v < m.values && *s < m.steps);
        self.gemm_step.retain(|v, s| *v < m.values && *s < m.steps);
        self.const_of.retain(|_, c| *c < m.consts);
    }

    fn native(&mut self, node: &Node) -> Result<()> {
        match &node.op {
            Op::Conv(c) => self.conv(node, c),
            Op::Activation(Activation::Identity) => self.identity(node),
            Op::Activation(a) => self.map_op(node, 0, vec![MapOp::Act(*a)]),
            Op::BatchNorm { epsilon } => self.batch_norm(node, *epsilon),
            Op::Binary(op) => self.binary(node, *op),
            Op::GlobalAveragePool => {
                let input = self.nhwc(node, 0)?;
                let output = self.define(node, Layout::Nhwc)?;
                self.push(&node.name, "GlobalAveragePool", Step::GlobalAveragePool { input, output });
                Ok(())
            }
            Op::MaxPool(p) | Op::AveragePool(p, _) => {
                let input = self.nhwc(node, 0)?;
                let s = &self.values[input].shape;
                let (pads, _) = shape::pool_geometry(node, p, [s[2], s[3]])?;
                let output = self.define(node, Layout::Nhwc)?;
                let average = match node.op {
                    Op::AveragePool(_, include) => Some(include),
                    _ => None,
                };
                self.push(&node.name, node.op.name(), Step::Pool { pool: p.clone(), pads, average, input, output });
                Ok(())
            }
            Op::Concat(a) => self.concat(node, *a),
            Op::Reshape(_) | Op::Flatten(_) => self.reshape(node),
            Op::MatMul | Op::Gemm { .. } => self.gemm(node),
            Op::Softmax { axis, coerce_2d } => {
                let input = self.plain(node.input(0).expect("required"))?;
                let s = self.values[input].shape.clone();
                let ax = crate::tensor::axis(*axis, s.len()).ok_or_else(|| node_err(node, "axis out of range"))?;
                let outer: usize = s[..ax].iter().product();
                let dims = if *coerce_2d {
                    (outer, s[ax..].iter().product(), 1)
                } else {
                    (outer, s[ax], s[ax + 1..].iter().product())
                };
                let output = self.define(node, Layout::Plain)?;
                self.push(&node.name, "Softmax", Step::Softmax { input, output, dims });
                Ok(())
            }
            Op::Shape(..) | Op::Cast(_) | Op::Slice | Op::Generic(_) => self.eval_node(node),
        }
    }

    /// `Identity`: a copy that keeps its input's layout.
    fn identity(&mut self, node: &Node) -> Result<()> {
        let src = self.operand(node.input(0).expect("required"))?;
        let out = self.define(node, Layout::Plain)?;
        if let Operand::Value(v) = src {
            self.values[out].layout = self.values[v].layout;
        }
        self.push(&node.name, "Identity", Step::Copy { input: src, output: out });
        Ok(())
    }

    /// A `BatchNormalization` left standing (not folded into a convolution): one scale and
    /// shift per channel.
    fn batch_norm(&mut self, node: &Node, epsilon: f32) -> Result<()> {
        let p: Vec<Vec<f32>> = (1..5)
            .map(|i| self.const_floats(node, i, "BatchNorm parameters").map(<[f32]>::to_vec))
            .collect::<Result<_>>()?;
        let scale: Vec<f32> =
            p[0].iter().zip(&p[3]).map(|(&s, &v)| (s as f64 / (v as f64 + epsilon as f64).sqrt()) as f32).collect();
        let shift: Vec<f32> = p[1].iter().zip(&p[2]).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
        let (s, t) = (self.constant(scale), self.constant(shift));
        self.map_op(node, 0, vec![MapOp::Mul(s), MapOp::Add(t)])
    }

    /// `Concat`: in NHWC when any rank-4 input already is, else plain.
    fn concat(&mut self, node: &Node, a: i64) -> Result<()> {
        let rank = self.shape(node.outputs[0])?.len();
        let ax = crate::tensor::axis(a, rank).ok_or_else(|| node_err(node, "axis out of range"))?;
        let nhwc = rank == 4
            && node
                .inputs
                .iter()
                .flatten()
                .any(|&i| self.map.get(&i).is_some_and(|&v| self.values[v].layout == Layout::Nhwc));
        let mut inputs = Vec::new();
        for &i in node.inputs.iter().flatten() {
            inputs.push(match (nhwc, self.g.constant(i)) {
                (true, Some(_)) => return Err(node_err(node, "concatenating a constant with NHWC activations")),
                (true, None) => Operand::Value(self.in_layout(i, Layout::Nhwc)?),
                (false, Some(_)) => self.operand(i)?,
                (false, None) => Operand::Value(self.plain(i)?),
            });
        }
        let layout = if nhwc { Layout::Nhwc } else { Layout::Plain };
        let output = self.define(node, layout)?;
        let axis = if nhwc { NHWC_OF[ax] } else { ax };
        self.push(&node.name, "Concat", Step::Concat { inputs, axis, output });
        Ok(())
    }

    fn conv(&mut self, node: &Node, c: &crate::ir::Conv) -> Result<()> {
        let x = node.input(0).expect("required");
        let w_id = node.input(1).expect("required");
        let (params, out) = shape::conv_params(node, c, &self.shape(x)?, &self.shape(w_id)?)?;
        let w = self.const_floats(node, 1, "the weight")?.to_vec();
        let bias = match node.input(2) {
            Some(_) => Some(self.const_floats(node, 2, "the bias")?.to_vec()),
            None => None,
        };
        if let Some(shuffle) = pixel_shuffle(&params, &w, bias.as_deref()) {
            if node.input(3).is_none() {
                return self.conv_then_depth_to_space(node, c, shuffle, out);
            }
        }
        let x_shape = self.shape(x)?;
        let input_hw = [x_shape[x_shape.len() - 2], x_shape[x_shape.len() - 1]];
        let packed = self.set.pack_conv_for_input(&params, &w, input_hw).map_err(|e| node_err(node, e.to_string()))?;
        let input = self.nhwc(node, 0)?;
        let residual = match node.input(3) {
            Some(_) => Some(self.nhwc(node, 3)?),
            None => None,
        };
        let bias = bias.map(|b| self.constant(b));
        let algorithm = match packed.algorithm() {
            kernels::ConvAlgorithm::Winograd => "(Winograd)",
            kernels::ConvAlgorithm::Grouped => "(Grouped)",
            _ => "",
        };
        self.convs.push(packed);
        let weights = self.convs.len() - 1;
        let output = self.define(node, Layout::Nhwc)?;
        let per_pixel = (params.c_in / params.groups) * params.c_out * params.kernel[0] * params.kernel[1];
        let pixels = if c.transposed { self.values[input].len() / params.c_in } else { out[0] * out[2] * out[3] };
        self.flops += 2 * (pixels * per_pixel) as u64;
        let mut label = node.op.name().to_string() + algorithm;
        if residual.is_some() {
            label += "+Add";
        }
        if c.activation != Activation::Identity {
            label = format!("{label}+{}", Op::Activation(c.activation).name());
        }
        self.push(
            &node.name,
            &label,
            Step::Conv { weights, bias, input, residual, activation: c.activation, output, gate: None },
        );
        Ok(())
    }

    /// A stride-sized `ConvTranspose` as a pointwise convolution to `kh·kw·c_out` channels
    /// (bias and activation fused) followed by a depth-to-space copy.
    fn conv_then_depth_to_space(
        &mut self,
        node: &Node,
        c: &crate::ir::Conv,
        shuffle: Shuffle,
        out: [usize; 4],
    ) -> Result<()> {
        let packed =
            self.set.pack_conv(&shuffle.params, &shuffle.weights).map_err(|e| node_err(node, e.to_string()))?;
        let input = self.nhwc(node, 0)?;
        let bias = Some(self.constant(shuffle.bias));
        self.convs.push(packed);
        let weights = self.convs.len() - 1;
        let [n, _, h, w] = super::dims4(&self.values[input].shape);
        let wide = self.value(&format!("{}.phases", node.name), vec![n, shuffle.params.c_out, h, w], Layout::Nhwc);
        self.flops += 2 * (n * h * w * shuffle.params.c_in * shuffle.params.c_out) as u64;
        let mut label = "ConvTranspose(pointwise)".to_string();
        if c.activation != Activation::Identity {
            label = format!("{label}+{}", Op::Activation(c.activation).name());
        }
        self.push(
            &node.name,
            &label,
            Step::Conv { weights, bias, input, residual: None, activation: c.activation, output: wide, gate: None },
        );
        let output = self.define(node, Layout::Nhwc)?;
        debug_assert_eq!(self.values[output].shape, out.to_vec());
        self.push(&node.name, "DepthToSpace", Step::DepthToSpace { input: wide, output, block: shuffle.params_block });
        Ok(())
    }

    /// Appends element-wise `ops` on input `i` of `node`, extending the chain that produced
    /// it when that value has no other use.
    fn map_op(&mut self, node: &Node, i: usize, ops: Vec<MapOp>) -> Result<()> {
        let id = node.input(i).expect("checked by the caller");
        let input = match self.operand(id)? {
            Operand::Value(v) => v,
            Operand::Const(_) => {
                return Err(node_err(node, "element-wise operation on a constant that was not folded"))
            }
        };
        let label = node.op.name();
        if let (1, [MapOp::Act(act)], Some(&s)) = (self.uses[id], ops.as_slice(), self.gemm_step.get(&input)) {
            if let Step::Gemm { activation: a @ kernels::Activation::Identity, .. } = &mut self.steps[s].step {
                *a = *act;
                self.steps[s].op = format!("{}+{label}", self.steps[s].op);
                self.map.insert(node.outputs[0], input);
                self.gemm_step.remove(&input);
                return Ok(());
            }
        }
        if self.uses[id] == 1 {
            if let Some(&s) = self.map_step.get(&input) {
                if let Step::Map { ops: chain, .. } = &mut self.steps[s].step {
                    chain.extend(ops);
                    self.steps[s].op = format!("{}+{label}", self.steps[s].op);
                    self.map.insert(node.outputs[0], input);
                    return Ok(());
                }
            }
        }
        let v = &self.values[input];
        let channels = match (v.layout, v.shape.len()) {
            (Layout::Nhwc, _) => (v.shape[1], 1),
            (Layout::Plain, r) if r >= 2 => (v.shape[1], v.shape[2..].iter().product()),
            _ => (1, 1),
        };
        let layout = v.layout;
        let output = self.define(node, layout)?;
        self.push(&node.name, label, Step::Map { input, output, ops, channels });
        self.map_step.insert(output, self.steps.len() - 1);
        Ok(())
    }

    fn binary(&mut self, node: &Node, op: Binary) -> Result<()> {
        let (a, b) = (node.input(0).expect("required"), node.input(1).expect("required"));
        let out_shape = self.shape(node.outputs[0])?;
        if op == Binary::Add && self.gemm_bias(node, a, b, &out_shape)? {
            return Ok(());
        }
        // A per-channel or scalar constant on a value of the output's shape: a Map.
        let per_channel = |t: &Tensor| {
            let s = &t.shape;
            t.len() == 1
                || (out_shape.len() >= 2
                    && s.len() <= out_shape.len()
                    && s.len() + 1 >= out_shape.len()
                    && s.iter().rev().take(out_shape.len().saturating_sub(2)).all(|&d| d == 1)
                    && t.len() == out_shape[1]
                    && (s.len() < out_shape.len() || s[0] == 1))
        };
        for (x, k, k_first) in [(a, b, false), (b, a, true)] {
            let Some(t) = self.g.constant(k) else { continue };
            if self.g.constant(x).is_some() || self.shape(x)? != out_shape || !per_channel(t) || t.floats().is_none() {
                continue;
            }
            let vals = t.floats().expect("checked").to_vec();
            let mapped = match (op, k_first) {
                (Binary::Add, _) => MapOp::Add(self.constant(vals)),
                (Binary::Mul, _) => MapOp::Mul(self.constant(vals)),
                (Binary::Sub, false) => MapOp::Add(self.constant(vals.iter().map(|v| -v).collect())),
                (Binary::Div, false) => MapOp::Mul(self.constant(vals.iter().map(|v| 1.0 / v).collect())),
                _ => continue,
            };
            let i = if k_first { 1 } else { 0 };
            return self.map_op(node, i, vec![mapped]);
        }
        if out_shape.len() > 4 {
            return self.binary_coalesced(node, op, [a, b], &out_shape);
        }
        let nhwc = out_shape.len() == 4
            && [a, b].iter().any(|i| self.map.get(i).is_some_and(|&v| self.values[v].layout == Layout::Nhwc));
        let mut ops = Vec::new();
        for id in [a, b] {
            let shape = self.shape(id)?;
            let (operand, logical) = match self.g.constant(id) {
                Some(_) => (self.operand(id)?, broadcast_strides(&shape, &out_shape)),
                None if nhwc && shape.len() == 4 => {
                    let v = self.in_layout(id, Layout::Nhwc)?;
                    let [_, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
                    let phys = [h * w * c, 1, w * c, c];
                    let s = (0..4).map(|d| if shape[d] == 1 { 0 } else { phys[d] }).collect();
                    (Operand::Value(v), s)
                }
                None => (Operand::Value(self.plain(id)?), broadcast_strides(&shape, &out_shape)),
            };
            let mut padded = [0usize; 4];
            let lead = 4 - out_shape.len();
            for (d, s) in logical.iter().enumerate() {
                padded[lead + d] = *s;
            }
            if nhwc {
                padded = [padded[0], padded[2], padded[3], padded[1]];
            }
            ops.push((operand, padded));
        }
        let layout = if nhwc { Layout::Nhwc } else { Layout::Plain };
        let output = self.define(node, layout)?;
        let phys = self.values[output].physical();
        let mut dims = [1usize; 4];
        dims[4 - phys.len()..].copy_from_slice(&phys);
        self.push(&node.name, node.op.name(), Step::Binary { op, a: ops[0], b: ops[1], output: (output, dims) });
        Ok(())
    }

    /// A broadcasting binary op of rank above 4 (split attention's `[N, radix, C, H, W]`
    /// weights, detection heads' anchor axes), in plain layout on at most four axes: the
    /// output's axes that both operands read in step are merged ([`coalesce`]).
    fn binary_coalesced(&mut self, node: &Node, op: Binary, ins: [ValueId; 2], out_shape: &[usize]) -> Result<()> {
        let mut operands = Vec::new();
        let mut strides = Vec::new();
        for id in ins {
            let shape = self.shape(id)?;
            operands.push(match self.g.constant(id) {
                Some(_) => self.operand(id)?,
                None => Operand::Value(self.plain(id)?),
            });
            strides.push(broadcast_strides(&shape, out_shape));
        }
        let (dims, strides) = coalesce(out_shape, &strides);
        if dims.len() > 4 {
            return Err(node_err(node, format!("broadcasting {out_shape:?} needs more than 4 axes")));
        }
        let pad = |v: &[usize], fill: usize| {
            let mut p = [fill; 4];
            p[4 - v.len()..].copy_from_slice(v);
            p
        };
        let output = self.define(node, Layout::Plain)?;
        let [a, b] = [0, 1].map(|k| (operands[k], pad(&strides[k], 0)));
        self.push(&node.name, node.op.name(), Step::Binary { op, a, b, output: (output, pad(&dims, 1)) });
        Ok(())
    }

    /// A reshape (`Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`): the data in plain layout,
    /// copied (in place where it dies here).
    fn reshape(&mut self, node: &Node) -> Result<()> {
        let id = node.input(0).expect("required");
        let input = match self.g.constant(id) {
            Some(_) => self.operand(id)?,
            None => Operand::Value(self.plain(id)?),
        };
        let output = self.define(node, Layout::Plain)?;
        self.push(&node.name, node.op.name(), Step::Copy { input, output });
        Ok(())
    }

    /// Portable operators with a native f32 lowering (movement, LayerNormalization,
    /// GroupNormalization and InstanceNormalization); says whether it lowered the node.
    fn generic(&mut self, node: &Node, gen: &crate::portable::Generic) -> Result<bool> {
        use crate::portable::Generic;
        match gen {
            // Reshapes by an axes input (opset 13), as `Reshape`.
            Generic::Squeeze(_) | Generic::Unsqueeze(_) => self.reshape(node).map(|()| true),
            Generic::Transpose(_) => self.transpose(node).map(|()| true),
            Generic::Split { axis, .. } => self.split(node, *axis).map(|()| true),
            Generic::Gather(axis) => self.gather(node, *axis),
            Generic::LayerNorm { axis, epsilon, .. } => self.layer_norm(node, *axis, *epsilon),
            Generic::GroupNorm { groups, epsilon } => self.group_norm(node, Some(*groups), *epsilon),
            Generic::InstanceNorm(epsilon) => self.group_norm(node, None, *epsilon),
            Generic::Rnn(r) => self.recurrent(node, r),
            Generic::Reduce { kind: crate::portable::ReduceKind::Mean, keepdims, .. } => {
                self.spatial_mean(node, *keepdims)
            }
            Generic::Reduce { kind: crate::portable::ReduceKind::Sum, .. } => self.short_axis_sum(node),
            Generic::Pad { mode: crate::portable::PadMode::Constant, .. } => self.pad(node),
            _ => Ok(false),
        }
    }

    /// A constant-mode `Pad` with constant, non-negative amounts as one `Concat` of the value
    /// between blocks of the fill per padded axis (the borders a convolution does not take
    /// into its own pads: Swin's windows, a detector's letterbox). Says whether it lowered it.
    fn pad(&mut self, node: &Node) -> Result<bool> {
        let x = node.input(0).expect("required");
        let mut shape = self.shape(x)?;
        let (Ok(amounts), Ok(fill)) = (shape::pad_amounts(self.g, node, shape.len()), shape::pad_fill(self.g, node))
        else {
            return Ok(false);
        };
        if amounts.iter().any(|&(b, e)| b < 0 || e < 0) {
            return Ok(false);
        }
        let padded: Vec<usize> = (0..shape.len()).filter(|&a| amounts[a] != (0, 0)).collect();
        let mut current = Operand::Value(self.plain(x)?);
        if padded.is_empty() {
            let output = self.define(node, Layout::Plain)?;
            self.push(&node.name, "Pad", Step::Copy { input: current, output });
            return Ok(true);
        }
        for (k, &a) in padded.iter().enumerate() {
            let (before, after) = (amounts[a].0 as usize, amounts[a].1 as usize);
            let across: usize = shape.iter().enumerate().filter(|&(d, _)| d != a).map(|(_, &n)| n).product();
            let mut inputs = Vec::with_capacity(3);
            if before > 0 {
                inputs.push(Operand::Const(self.constant(vec![fill as f32; across * before])));
            }
            inputs.push(current);
            if after > 0 {
                inputs.push(Operand::Const(self.constant(vec![fill as f32; across * after])));
            }
            shape[a] += before + after;
            let output = match k + 1 == padded.len() {
                true => self.define(node, Layout::Plain)?,
                false => self.value(&format!("{}/pad{a}", node.name), shape.clone(), Layout::Plain),
            };
            self.push(&node.name, "Pad", Step::Concat { inputs, axis: a, output });
            current = Operand::Value(output);
        }
        Ok(true)
    }

    fn transpose(&mut self, node: &Node) -> Result<()> {
        let x = node.input(0).expect("required");
        let shape = self.shape(x)?;
        let out_shape = self.shape(node.outputs[0])?;
        let r = shape.len();
        let perm: Vec<usize> = match &node.op {
            Op::Generic(crate::portable::Generic::Transpose(Some(p))) => p
                .iter()
                .map(|&a| crate::tensor::axis(a, r))
                .collect::<Option<_>>()
                .ok_or_else(|| node_err(node, "bad perm"))?,
            _ => (0..r).rev().collect(),
        };
        let stored = self.map.get(&x).map(|&v| self.values[v].layout);
        // NHWC storage is the plain [N, H, W, C] value, and a plain [N, H, W, C] value is the
        // NHWC storage of [N, C, H, W]: these two permutations are copies.
        if r == 4 && perm == [0, 2, 3, 1] && stored == Some(Layout::Nhwc) {
            let input = self.map[&x];
            let output = self.define(node, Layout::Plain)?;
            self.push(&node.name, "Transpose(NHWC)", Step::Copy { input: Operand::Value(input), output });
            return Ok(());
        }
        if r == 4 && perm == [0, 3, 1, 2] && stored == Some(Layout::Plain) {
            let input = self.plain(x)?;
            let output = self.define(node, Layout::Nhwc)?;
            self.push(&node.name, "Transpose(NHWC)", Step::Copy { input: Operand::Value(input), output });
            return Ok(());
        }
        let input = self.plain(x)?;
        let output = self.define(node, Layout::Plain)?;
        debug_assert_eq!(out_shape, perm.iter().map(|&p| shape[p]).collect::<Vec<_>>());
        self.push(&node.name, "Transpose", Step::Transpose { input, output, perm });
        Ok(())
    }

    /// A float `LSTM`, or `GRU` with `linear_before_reset`, whose weights, biases, sequence
    /// lengths (all full), initial states and peepholes are constants and whose only used
    /// output is `Y`: the input products as one `Gemm` step over every time step and
    /// direction, then a `Recurrence` step. Says whether it lowered the node.
    fn recurrent(&mut self, node: &Node, r: &crate::portable::Rnn) -> Result<bool> {
        use crate::portable::{Direction, RnnKind};
        let lbr_gru = matches!(r.kind, RnnKind::Gru(true));
        if r.quantized || !(r.kind == RnnKind::Lstm || lbr_gru) {
            return Ok(false);
        }
        if node.outputs.iter().skip(1).any(|&o| self.uses[o] > 0) {
            return Ok(false);
        }
        let Some(activations) = r.activations.iter().map(crate::portable::RnnAct::kernel).collect::<Option<Vec<_>>>()
        else {
            return Ok(false);
        };
        let x_id = node.input(0).expect("required");
        let xs = self.shape(x_id)?;
        let [a0, a1, input] = xs[..] else { return Ok(false) };
        let (seq, batch) = if r.batch_first { (a1, a0) } else { (a0, a1) };
        let (dirs, h) = (r.dirs(), r.hidden);
        let gh = r.kind.gates() * h;
        let Some(consts) = RnnConstants::of(self.g, node, r, [seq, batch, input]) else { return Ok(false) };
        let (xb, new_gate_bias) = rnn_input_bias(consts.bias, dirs, h, gh, lbr_gru);
        // Bᵀ of a row-major `[n, k]` weight, packed through its column-major view.
        let pack_t = |m: &[f32], k: usize, n: usize| -> Result<kernels::PackedB> {
            Ok(self.set.pack_b(MatRef::col_major(m, k, n).map_err(|e| node_err(node, e.to_string()))?))
        };
        let xw_packed = pack_t(consts.w, input, dirs * gh)?;
        let mut recurrent = Vec::new();
        for d in 0..dirs {
            let packed = pack_t(&consts.rw[d * gh * h..(d + 1) * gh * h], h, gh)?;
            self.gemms.push(packed);
            recurrent.push(self.gemms.len() - 1);
        }
        let states = |s: &[f32]| rnn_states(s, [dirs, batch, h], r.batch_first);
        let initial_h = consts.h0.map(|s| self.constant(states(s)));
        let initial_c = consts.c0.map(|s| self.constant(states(s)));
        let peepholes = consts.peep.map(|p| self.constant(p.to_vec()));
        let new_gate_bias = (lbr_gru && consts.bias.is_some()).then(|| self.constant(new_gate_bias));
        let x = self.plain(x_id)?;
        self.gemms.push(xw_packed);
        let b = self.gemms.len() - 1;
        let bias = Some(self.constant(xb));
        let xw = self.value(&format!("{}.xw", node.name), vec![a0, a1, dirs * gh], Layout::Plain);
        let activation = Activation::Identity;
        let op = format!("{} input products", node.op.name());
        self.push(&node.name, &op, Step::Gemm { a: x, b, bias, activation, output: xw });
        let output = self.define(node, Layout::Plain)?;
        self.flops += 2 * (seq * batch * dirs * gh * (input + h)) as u64;
        let cell = Box::new(super::Recurrent {
            kind: r.kind,
            reverse: (0..dirs).map(|d| d == 1 || r.direction == Direction::Reverse).collect(),
            hidden: h,
            seq,
            batch,
            batch_first: r.batch_first,
            recurrent,
            new_gate_bias,
            peepholes,
            initial_h,
            initial_c,
            activations,
            clip: r.clip,
            input_forget: r.input_forget,
        });
        self.push(&node.name, node.op.name(), Step::Recurrence { cell, xw, output });
        Ok(true)
    }

    /// A `ReduceMean` over the two spatial axes of a 4-D value (squeeze-excitation blocks
    /// write it for global average pooling) as a `GlobalAveragePool` in NHWC. Says whether
    /// it lowered the node.
    fn spatial_mean(&mut self, node: &Node, keepdims: bool) -> Result<bool> {
        let x = node.input(0).expect("required");
        if self.shape(x)?.len() != 4 || self.g.reduce_axes(node).as_deref() != Some(&[2, 3]) {
            return Ok(false);
        }
        let input = self.nhwc(node, 0)?;
        // Without kept axes, [N, C] has the memory of NHWC [N, 1, 1, C].
        let output = self.define(node, if keepdims { Layout::Nhwc } else { Layout::Plain })?;
        self.push(&node.name, "ReduceMean", Step::GlobalAveragePool { input, output });
        Ok(true)
    }

    /// `ReduceSum` over one short axis of a run-time value (split attention sums its radix
    /// groups, of 2 or 4): the slices along the axis as crops, added in order. Longer axes
    /// and several axes stay `Eval` steps.
    fn short_axis_sum(&mut self, node: &Node) -> Result<bool> {
        const MAX_TERMS: usize = 8;
        let x = node.input(0).expect("required");
        let shape = self.shape(x)?;
        let (Some(&[ax]), None) = (self.g.reduce_axes(node).as_deref(), self.g.constant(x)) else { return Ok(false) };
        let terms = shape[ax];
        if !(2..=MAX_TERMS).contains(&terms)
            || self.g.values[x].dtype.is_int()
            || self.g.shape(node.outputs[0]).is_none()
        {
            return Ok(false);
        }
        let Along { input, outer, stride, inner, .. } = self.along_in(x, ax, false)?;
        let mut slice_shape = shape.clone();
        slice_shape[ax] = 1;
        let name = &node.name;
        let slices: Vec<usize> = (0..terms)
            .map(|k| {
                let output = self.value(&format!("{name}/slice{k}"), slice_shape.clone(), Layout::Plain);
                self.push(name, "ReduceSum", Step::Crop { input, output, outer, stride, start: k * inner, len: inner });
                output
            })
            .collect();
        let dims = [1, 1, 1, outer * inner];
        let contiguous = [0, 0, 0, 1];
        let mut sum = slices[0];
        for (k, &term) in slices.iter().enumerate().skip(1) {
            let output = if k + 1 == terms {
                self.define(node, Layout::Plain)?
            } else {
                self.value(&format!("{name}/sum{k}"), slice_shape.clone(), Layout::Plain)
            };
            let (a, b) = ((Operand::Value(sum), contiguous), (Operand::Value(term), contiguous));
            self.push(name, "ReduceSum", Step::Binary { op: Binary::Add, a, b, output: (output, dims) });
            sum = output;
        }
        Ok(true)
    }

    /// Graph value `x` as runs along its logical axis `ax` for a `Crop`: in NHWC when `ax` is
    /// the channel axis of an NHWC value (runs of one pixel's channels), plain otherwise.
    fn along(&mut self, x: ValueId, ax: usize) -> Result<Along> {
        self.along_in(x, ax, true)
    }

    /// [`Self::along`], in plain layout unless `nhwc_ok`.
    fn along_in(&mut self, x: ValueId, ax: usize, nhwc_ok: bool) -> Result<Along> {
        let nhwc = nhwc_ok && ax == 1 && self.map.get(&x).is_some_and(|&v| self.values[v].layout == Layout::Nhwc);
        let (input, layout) = if nhwc { (self.map[&x], Layout::Nhwc) } else { (self.plain(x)?, Layout::Plain) };
        let phys = self.values[input].physical();
        let pax = if nhwc { 3 } else { ax };
        let inner: usize = phys[pax + 1..].iter().product();
        Ok(Along { input, layout, outer: phys[..pax].iter().product(), stride: phys[pax] * inner, inner })
    }

    /// Each used output of a `Split` as a `Crop`; along the channels of an NHWC value, in NHWC.
    fn split(&mut self, node: &Node, axis: i64) -> Result<()> {
        let x = node.input(0).expect("required");
        let shape = self.shape(x)?;
        let ax = crate::tensor::axis(axis, shape.len()).ok_or_else(|| node_err(node, "axis out of range"))?;
        let Along { input, layout, outer, stride, inner } = self.along(x, ax)?;
        let mut offset = 0;
        for (k, &out) in node.outputs.iter().enumerate() {
            let part = self.shape(out)?[ax];
            if self.uses[out] > 0 {
                let output = self.define_output(node, k, layout)?;
                let step = Step::Crop { input, output, outer, stride, start: offset * inner, len: part * inner };
                self.push(&node.name, "Split", step);
            }
            offset += part;
        }
        Ok(())
    }

    /// A `Slice` along one axis with step 1 (bounds constant) as a `Crop`; along the channels
    /// of an NHWC value, in NHWC. Says whether it lowered the node.
    fn slice(&mut self, node: &Node) -> Result<bool> {
        let x = node.input(0).expect("required");
        let shape = self.shape(x)?;
        let ranges = shape::slice_ranges(self.g, node, &shape)?;
        let cut: Vec<usize> = (0..shape.len()).filter(|&a| ranges[a] != (0, 1, shape[a])).collect();
        let (ax, (start, step, count)) = match cut.as_slice() {
            [] => (0, (0, 1, shape.first().copied().unwrap_or(1))),
            [a] => (*a, ranges[*a]),
            _ => return Ok(false),
        };
        if step != 1 || shape.is_empty() {
            return Ok(false);
        }
        let Along { input, layout, outer, stride, inner } = self.along(x, ax)?;
        let output = self.define(node, layout)?;
        let (start, len) = (start as usize * inner, count * inner);
        self.push(&node.name, "Slice", Step::Crop { input, output, outer, stride, start, len });
        Ok(true)
    }

    /// A float `Gather` with constant 1-D indices as a `Gather` step; along the channels of an
    /// NHWC value, in NHWC. A scalar index (which drops the axis: a ViT's class token, one
    /// coordinate of a detector's boxes) gathers from the plain value. Says whether it
    /// lowered the node.
    fn gather(&mut self, node: &Node, axis: i64) -> Result<bool> {
        let x = node.input(0).expect("required");
        let Some(ind) = node.input(1).and_then(|i| self.g.constant(i)) else { return Ok(false) };
        let (Some(iv), rank @ 0..=1) = (ind.ints(), ind.shape.len()) else { return Ok(false) };
        if self.g.values[x].dtype != crate::tensor::DType::F32 || self.g.constant(x).is_some() {
            return Ok(false);
        }
        let shape = self.shape(x)?;
        let ax = crate::tensor::axis(axis, shape.len()).ok_or_else(|| node_err(node, "axis out of range"))?;
        let len = shape[ax] as i64;
        let indices = iv
            .iter()
            .map(|&i| if i < 0 { i + len } else { i })
            .map(|i| (0..len).contains(&i).then_some(i as usize))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| node_err(node, format!("an index is outside the {len} entries of axis {ax}")))?;
        let Along { input, layout, outer, stride, inner } = self.along_in(x, ax, rank == 1)?;
        let output = self.define(node, layout)?;
        self.push(&node.name, "Gather", Step::Gather { input, output, outer, stride, inner, indices });
        Ok(true)
    }

    /// LayerNormalization over the trailing axes with constant scale (and bias) of the
    /// normalized shape; other forms (broadcast parameters, mean and inverse outputs used)
    /// are evaluated.
    fn layer_norm(&mut self, node: &Node, axis: i64, epsilon: f32) -> Result<bool> {
        let x = node.input(0).expect("required");
        let shape = self.shape(x)?;
        let ax = crate::tensor::axis(axis, shape.len()).ok_or_else(|| node_err(node, "axis out of range"))?;
        let len: usize = shape[ax..].iter().product();
        let full = |i: usize| {
            node.input(i).and_then(|v| self.g.constant(v)).and_then(Tensor::floats).filter(|f| f.len() == len)
        };
        let (Some(scale), bias) = (full(1).map(<[f32]>::to_vec), full(2).map(<[f32]>::to_vec)) else {
            return Ok(false);
        };
        if (node.input(2).is_some() && bias.is_none()) || node.outputs.iter().skip(1).any(|&o| self.uses[o] > 0) {
            return Ok(false);
        }
        let input = self.plain(x)?;
        let scale = self.constant(scale);
        let bias = bias.map(|b| self.constant(b));
        let output = self.define(node, Layout::Plain)?;
        self.push(&node.name, "LayerNormalization", Step::LayerNorm { input, output, len, scale, bias, epsilon });
        Ok(true)
    }

    /// GroupNormalization into `groups` (InstanceNormalization: `None`, a group per channel)
    /// with constant scale and bias, per channel or per group (opset 18's form, repeated for
    /// each of the group's channels), on NCHW values (NHWC ones in one group as they are);
    /// other forms are evaluated.
    fn group_norm(&mut self, node: &Node, groups: Option<usize>, epsilon: f32) -> Result<bool> {
        let x = node.input(0).expect("required");
        let shape = self.shape(x)?;
        let (Some(&c), spatial) = (shape.get(1), shape.iter().skip(2).product::<usize>()) else {
            return Ok(false);
        };
        let groups = groups.unwrap_or(c);
        if shape.len() < 3 || spatial == 0 || groups == 0 || c % groups != 0 {
            return Ok(false);
        }
        let per = c / groups;
        let Some((scale, bias)) = crate::optimize::norm_params(self.g, &node.inputs, groups, c) else {
            return Ok(false);
        };
        // One group of an image held as NHWC is normalised where it lies.
        let nhwc = groups == 1
            && shape.len() == 4
            && matches!(self.operand(x)?, Operand::Value(v) if self.values[v].layout == Layout::Nhwc);
        let layout = if nhwc { Layout::Nhwc } else { Layout::Plain };
        let input = self.in_layout(x, layout)?;
        let (scale, bias) = (self.constant(scale), self.constant(bias));
        let output = self.define(node, layout)?;
        let step = Step::GroupNorm { input, output, len: per * spatial, channel_len: spatial, scale, bias, epsilon };
        self.push(&node.name, node.op.name(), step);
        Ok(true)
    }

    /// MatMul of two run-time values (rank ≥ 2 each).
    fn matmul(&mut self, node: &Node) -> Result<()> {
        let (a_id, b_id) = (node.input(0).expect("required"), node.input(1).expect("required"));
        let (sa, sb, so) = (self.shape(a_id)?, self.shape(b_id)?, self.shape(node.outputs[0])?);
        if sa.len() < 2 || sb.len() < 2 {
            return Err(node_err(node, "a vector operand"));
        }
        let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
        let batch = so[..so.len() - 2].to_vec();
        let strides = |s: &[usize]| {
            let own = &s[..s.len() - 2];
            let mat = s[s.len() - 2] * s[s.len() - 1];
            let st = broadcast_strides(own, &batch);
            st.into_iter().map(|v| v * mat).collect::<Vec<_>>()
        };
        let (a_strides, b_strides) = (strides(&sa), strides(&sb));
        let (a, b) = (self.plain(a_id)?, self.plain(b_id)?);
        let output = self.define(node, Layout::Plain)?;
        self.flops += 2 * (batch.iter().product::<usize>() * m * k * n) as u64;
        self.push(&node.name, "MatMul", Step::MatMul { a, b, output, dims: (m, k, n), batch, a_strides, b_strides });
        Ok(())
    }

    fn gemm(&mut self, node: &Node) -> Result<()> {
        let a_id = node.input(0).expect("required");
        if matches!(node.op, Op::MatMul) && self.g.constant(node.input(1).expect("required")).is_none() {
            return self.matmul(node);
        }
        let a_shape = self.shape(a_id)?;
        let b_shape = self.shape(node.input(1).expect("required"))?;
        let (alpha, beta, trans_a, trans_b) = match node.op {
            Op::Gemm { alpha, beta, trans_a, trans_b } => (alpha, beta, trans_a, trans_b),
            _ => (1.0, 1.0, false, false),
        };
        // MatMul's leading axes are rows of one GEMM (`[…, m, k] × [k, n]`, a Linear layer on
        // a sequence or an NHWC map); Gemm is 2-D.
        let rank_ok = if matches!(node.op, Op::MatMul) { a_shape.len() >= 2 } else { a_shape.len() == 2 };
        if !rank_ok || b_shape.len() != 2 || trans_a {
            return Err(node_err(node, "only [.., m, k] × constant [k, n] products are supported"));
        }
        let b = self.const_floats(node, 1, "the right operand")?;
        let (k, n) = if trans_b { (b_shape[1], b_shape[0]) } else { (b_shape[0], b_shape[1]) };
        let scaled: Vec<f32> = (0..k * n)
            .map(|i| {
                let (p, j) = (i / n, i % n);
                alpha * if trans_b { b[j * k + p] } else { b[p * n + j] }
            })
            .collect();
        let packed = self.set.pack_b(MatRef::row_major(&scaled, k, n).map_err(|e| node_err(node, e.to_string()))?);
        let bias = match node.input(2) {
            None => None,
            Some(c) => {
                let t = self
                    .g
                    .constant(c)
                    .and_then(Tensor::floats)
                    .ok_or_else(|| node_err(node, "C must be a float constant"))?;
                let cs = self.shape(c)?;
                if !(cs == [n] || cs == [1, n] || t.len() == 1) {
                    return Err(node_err(node, "only a per-column C is supported"));
                }
                let v: Vec<f32> = (0..n).map(|j| beta * t[if t.len() == 1 { 0 } else { j }]).collect();
                Some(self.constant(v))
            }
        };
        let a = self.plain(a_id)?;
        self.gemms.push(packed);
        let b = self.gemms.len() - 1;
        let output = self.define(node, Layout::Plain)?;
        self.flops += 2 * (super::gemm_rows(&a_shape) * k * n) as u64;
        let activation = Activation::Identity;
        self.push(&node.name, node.op.name(), Step::Gemm { a, b, bias, activation, output });
        self.gemm_step.insert(output, self.steps.len() - 1);
        Ok(())
    }

    /// `Add(gemm, c)` (either order) with `c` a constant over the GEMM's columns (`[n]`, or
    /// leading 1s), the GEMM's only use and without a bias or activation yet: `c` becomes its
    /// bias. Says whether it did.
    fn gemm_bias(&mut self, node: &Node, a: ValueId, b: ValueId, out_shape: &[usize]) -> Result<bool> {
        for (x, k) in [(a, b), (b, a)] {
            let (Some(t), Some(&v)) = (self.g.constant(k), self.map.get(&x)) else { continue };
            let Some(&s) = self.gemm_step.get(&v) else { continue };
            let n = *out_shape.last().unwrap_or(&0);
            let columns = t.shape.last() == Some(&n) && t.shape.iter().rev().skip(1).all(|&d| d == 1);
            let fresh = matches!(self.steps[s].step, Step::Gemm { bias: None, activation: Activation::Identity, .. });
            if self.uses[x] != 1 || !columns || !fresh || self.shape(x)? != out_shape {
                continue;
            }
            let Some(vals) = t.floats() else { continue };
            let c = self.constant(vals.to_vec());
            if let Step::Gemm { bias, .. } = &mut self.steps[s].step {
                *bias = Some(c);
            }
            self.steps[s].op = format!("{}+Add", self.steps[s].op);
            self.map.insert(node.outputs[0], v);
            return Ok(true);
        }
        Ok(false)
    }
}

/// The axes of a broadcast over `out` (each operand's element strides per axis, 0 where it
/// broadcasts) with axes of length 1 dropped and neighbours merged wherever every operand
/// steps through both as through one: the same elements in the same order, on fewer axes.
fn coalesce(out: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut dims: Vec<usize> = Vec::new();
    let mut merged: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for (d, &len) in out.iter().enumerate() {
        if len == 1 {
            continue;
        }
        // Index i·len + j of the merged axis lands at i·s_prev + j·s_d = (i·len + j)·s_d.
        let steps_as_one =
            !dims.is_empty() && strides.iter().zip(&merged).all(|(s, m)| m.last() == Some(&(s[d] * len)));
        if steps_as_one {
            *dims.last_mut().expect("not empty") *= len;
        } else {
            dims.push(len);
        }
        for (m, s) in merged.iter_mut().zip(strides) {
            if steps_as_one {
                *m.last_mut().expect("not empty") = s[d];
            } else {
                m.push(s[d]);
            }
        }
    }
    (dims, merged)
}

/// A value laid out for a `Crop` along one axis (see `Builder::along`).
struct Along {
    /// The plan value read.
    input: usize,
    /// Its layout, which the cropped value keeps.
    layout: Layout,
    /// Runs (the product of the axes before the cropped one).
    outer: usize,
    /// Values per run (the cropped axis times `inner`).
    stride: usize,
    /// Values per step along the cropped axis.
    inner: usize,
}

/// The kernel set's vectorized function for a portable unary operator, if it has one.
fn kernel_unary(u: crate::portable::Unary) -> Option<kernels::Unary> {
    use crate::portable::Unary as P;
    Some(match u {
        P::Exp => kernels::Unary::Exp,
        P::Log => kernels::Unary::Log,
        P::Erf => kernels::Unary::Erf,
        P::Tanh => kernels::Unary::Tanh,
        _ => return None,
    })
}

/// A `ConvTranspose` whose kernel equals its stride (no pads, dilation, output padding or
/// groups) rewritten as a pointwise convolution to `kh·kw·c_out` channels ordered
/// `(ky, kx, co)`.
struct Shuffle {
    params: kernels::ConvParams,
    params_block: [usize; 2],
    weights: Vec<f32>,
    bias: Vec<f32>,
}

fn pixel_shuffle(p: &kernels::ConvParams, w: &[f32], bias: Option<&[f32]>) -> Option<Shuffle> {
    let kernels::ConvKind::Transposed { output_padding } = p.kind else { return None };
    if p.kernel != p.strides || p.pads != [0; 4] || p.dilations != [1, 1] || output_padding != [0, 0] || p.groups != 1 {
        return None;
    }
    let [kh, kw] = p.kernel;
    let (ci, co) = (p.c_in, p.c_out);
    let wide = kh * kw * co;
    // ConvTranspose weight [ci, co, kh, kw] -> Conv weight [(ky, kx, co), ci, 1, 1].
    let mut weights = vec![0.0; wide * ci];
    for i in 0..ci {
        for o in 0..co {
            for ky in 0..kh {
                for kx in 0..kw {
                    weights[((ky * kw + kx) * co + o) * ci + i] = w[((i * co + o) * kh + ky) * kw + kx];
                }
            }
        }
    }
    let bias = (0..wide).map(|j| bias.map_or(0.0, |b| b[j % co])).collect();
    Some(Shuffle { params: kernels::ConvParams::new(ci, wide, [1, 1]), params_block: [kh, kw], weights, bias })
}

/// The constant inputs of an LSTM or GRU node that [`Builder::recurrent`] plans (weights,
/// recurrent weights, bias, initial states, peepholes), checked against the node's sizes.
struct RnnConstants<'g> {
    w: &'g [f32],
    rw: &'g [f32],
    bias: Option<&'g [f32]>,
    h0: Option<&'g [f32]>,
    c0: Option<&'g [f32]>,
    peep: Option<&'g [f32]>,
}

impl<'g> RnnConstants<'g> {
    /// The node's constants for an input `[seq, batch, input]`, or `None` where one is a
    /// run-time value, a size does not match, or sequence lengths are given and not all
    /// `seq` (such nodes stay with `Eval`).
    fn of(g: &'g Graph, node: &Node, r: &crate::portable::Rnn, [seq, batch, input]: [usize; 3]) -> Option<Self> {
        let (dirs, h) = (r.dirs(), r.hidden);
        let gh = r.kind.gates() * h;
        // Constant inputs (or absent ones); a run-time one leaves the node to `Eval`.
        let constant = |i: usize| -> Option<Option<&'g [f32]>> {
            match node.input(i) {
                None => Some(None),
                Some(id) => g.constant(id).and_then(Tensor::floats).map(Some),
            }
        };
        let (Some(w), Some(rw)) = (constant(1)?, constant(2)?) else { return None };
        let (bias, h0, c0, peep) = (constant(3)?, constant(5)?, constant(6)?, constant(7)?);
        let full = match node.input(4) {
            None => true,
            Some(id) => g.constant(id).and_then(Tensor::ints).is_some_and(|l| l.iter().all(|&l| l == seq as i64)),
        };
        let sizes_ok = w.len() == dirs * gh * input
            && rw.len() == dirs * gh * h
            && bias.is_none_or(|b| b.len() == dirs * 2 * gh)
            && [h0, c0].iter().all(|s| s.is_none_or(|s| s.len() == dirs * batch * h))
            && peep.is_none_or(|p| p.len() == dirs * 3 * h);
        let lstm = r.kind == crate::portable::RnnKind::Lstm;
        (full && sizes_ok && (lstm || (c0.is_none() && peep.is_none()))).then_some(Self { w, rw, bias, h0, c0, peep })
    }
}

/// The input products' bias, per direction and gate row: `Wb + Rb`, except the
/// linear-before-reset GRU's new gate, whose `Rb` the reset gate multiplies (returned apart).
fn rnn_input_bias(bias: Option<&[f32]>, dirs: usize, h: usize, gh: usize, lbr_gru: bool) -> (Vec<f32>, Vec<f32>) {
    let mut xb = vec![0.0f32; dirs * gh];
    let mut new_gate_bias = vec![0.0f32; dirs * h];
    if let Some(b) = bias {
        for d in 0..dirs {
            let (wb, rb) = b[d * 2 * gh..(d + 1) * 2 * gh].split_at(gh);
            for j in 0..gh {
                let keep_apart = lbr_gru && j >= 2 * h;
                xb[d * gh + j] = wb[j] + if keep_apart { 0.0 } else { rb[j] };
                if keep_apart {
                    new_gate_bias[d * h + j - 2 * h] = rb[j];
                }
            }
        }
    }
    (xb, new_gate_bias)
}

/// An initial state in (direction, batch, unit) order, from ONNX's layout (`[dirs, batch, h]`,
/// or `[batch, dirs, h]` with `layout = 1`).
fn rnn_states(s: &[f32], [dirs, batch, h]: [usize; 3], batch_first: bool) -> Vec<f32> {
    let mut out = vec![0.0; dirs * batch * h];
    for d in 0..dirs {
        for b in 0..batch {
            let from = if batch_first { (b * dirs + d) * h } else { (d * batch + b) * h };
            out[(d * batch + b) * h..][..h].copy_from_slice(&s[from..from + h]);
        }
    }
    out
}
