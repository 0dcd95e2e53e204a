//! Small ONNX graphs built in code for the model crate's tests.
#![allow(dead_code)]

use model::plan::Plan;
use model::Tensor;
use onnx::build;
use onnx::proto::{GraphProto, NodeProto, TensorProto};

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A graph under construction: input `x` of `shape`, nodes, initializers, outputs.
pub struct Builder {
    pub nodes: Vec<NodeProto>,
    pub inits: Vec<TensorProto>,
    pub input: Vec<usize>,
    pub outputs: Vec<String>,
    seed: u64,
}

impl Builder {
    pub fn new(input: &[usize]) -> Self {
        Builder { nodes: Vec::new(), inits: Vec::new(), input: input.to_vec(), outputs: Vec::new(), seed: 1 }
    }

    /// A squeeze-excitation block on the 8-channel input `x`: 1×1 to 48 channels + ReLU
    /// (`e`) → the gate (global average pool, 1×1 to 12 + ReLU, 1×1 to 48 + Sigmoid) →
    /// `gated = e · gate`.
    pub fn squeeze_excitation(&mut self) {
        self.conv("x", 8, 48, 1, 0, "e0");
        self.node("Relu", &["e0"], "e", vec![]);
        self.node("GlobalAveragePool", &["e"], "pooled", vec![]);
        self.conv("pooled", 48, 12, 1, 0, "s0");
        self.node("Relu", &["s0"], "s1", vec![]);
        self.conv("s1", 12, 48, 1, 0, "s2");
        self.node("Sigmoid", &["s2"], "gate", vec![]);
        self.node("Mul", &["e", "gate"], "gated", vec![]);
    }

    /// A random float initializer; returns its name.
    pub fn weight(&mut self, name: &str, dims: &[usize]) -> String {
        self.seed += 1;
        let data = values(dims.iter().product(), self.seed);
        self.inits.push(build::float_tensor(name, dims, &data));
        name.into()
    }

    /// A float initializer with given values.
    pub fn constant(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        self.inits.push(build::float_tensor(name, dims, data));
        name.into()
    }

    /// An INT64 initializer with given values.
    pub fn int_constant(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        self.inits.push(build::int_tensor(name, dims, data));
        name.into()
    }

    /// A node with several outputs.
    pub fn node_n(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<onnx::proto::AttributeProto>) {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(build::node(op, &name, inputs, outputs, attrs));
    }

    pub fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<onnx::proto::AttributeProto>) -> String {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(build::node(op, &name, inputs, &[output], attrs));
        output.into()
    }

    /// A 2-D convolution with random weights and bias.
    pub fn conv(&mut self, x: &str, c_in: usize, c_out: usize, k: usize, pad: usize, out: &str) -> String {
        let w = self.weight(&format!("{out}.w"), &[c_out, c_in, k, k]);
        let b = self.weight(&format!("{out}.b"), &[c_out]);
        let p = pad as i64;
        self.node(
            "Conv",
            &[x, &w, &b],
            out,
            vec![build::ints("kernel_shape", &[k as i64, k as i64]), build::ints("pads", &[p, p, p, p])],
        )
    }

    pub fn output(&mut self, name: &str) {
        self.outputs.push(name.into());
    }

    pub fn bytes(&self, opset: i64) -> Vec<u8> {
        let dims: Vec<Option<usize>> = self.input.iter().map(|&d| Some(d)).collect();
        let graph = GraphProto {
            node: self.nodes.clone(),
            name: "test".into(),
            initializer: self.inits.clone(),
            input: vec![build::value_info("x", &dims)],
            output: self.outputs.iter().map(|o| build::value_info(o, &[])).collect(),
            ..Default::default()
        };
        build::model(opset, graph)
    }
}

/// The graph's input filled with pseudo-random values.
pub fn input(shape: &[usize]) -> Tensor {
    Tensor::float(shape.to_vec(), values(shape.iter().product(), 99))
}

/// `max|a − b| / max|b|`.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).abs()).fold(0.0, f64::max) / scale
}

/// Runs a plan of `g` on every kernel set of this host, on one thread and on two, and checks
/// its outputs against `expected` (float64) within `bound` and the two runs' bits equal.
pub fn check_plans(g: &model::Graph, x: &Tensor, expected: &[Tensor<f64>], bound: f64) {
    for set in kernels::host_kernel_sets().0 {
        let plan: Plan = model::plan::build(g, &*set).unwrap();
        let outs = plan.session(1).unwrap().run(std::slice::from_ref(x)).unwrap();
        // Two threads split steps differently (a bidirectional recurrence runs one direction
        // per thread), never the arithmetic: the same bits.
        let two = plan.session(2).unwrap().run(std::slice::from_ref(x)).unwrap();
        for ((o, t), e) in outs.iter().zip(&two).zip(expected) {
            assert_eq!(o.shape, e.shape);
            let err = rel_err(o.floats().unwrap(), e.floats().unwrap());
            assert!(err <= bound, "{}: plan vs reference {err:e} > {bound:e}", set.info().name);
            let bits = |t: &Tensor| t.floats().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(bits(o) == bits(t), "{}: 2 threads differ from 1", set.info().name);
        }
    }
}

/// The operators of a plan's steps, in order (fused steps as `A>B`).
pub fn ops(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.op.as_str()).collect()
}

/// Prepares `b`'s model (opset 13) for `shape`, checks its plans on every host kernel set
/// against the float64 reference within `bound` ([`check_plans`], input [`input`]), and
/// returns the plan on this host's first kernel set, for tests that count its steps.
pub fn check_model(b: &Builder, shape: &[usize], bound: f64) -> Plan {
    let p = model::prepare(&b.bytes(13), &[shape.to_vec()]).unwrap();
    let x = input(shape);
    let expected = model::reference::run(&p.optimized, &[x.to_f64()]).unwrap();
    check_plans(&p.optimized, &x, &expected, bound);
    let set = kernels::host_kernel_sets().0.remove(0);
    model::plan::build(&p.optimized, &*set).unwrap()
}
