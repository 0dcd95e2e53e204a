//! Bad models and bad calls get errors that name the problem, never panics: hand-made
//! defects, then proptest over arbitrary bytes and mutations of a valid model (the
//! importer's fuzz test; `fuzz/` holds the same target for cargo-fuzz).

mod common;

use common::Builder;
use model::ModelError;
use onnx::build;
use proptest::prelude::*;

fn small() -> Builder {
    let mut b = Builder::new(&[1, 3, 8, 8]);
    b.conv("x", 3, 4, 3, 1, "c");
    b.node("Relu", &["c"], "y", vec![]);
    b.output("y");
    b
}

fn err_of(bytes: &[u8], shape: &[usize]) -> ModelError {
    model::prepare(bytes, &[shape.to_vec()]).expect_err("must be refused")
}

#[test]
fn malformed_bytes_are_malformed() {
    for bytes in [&b"not a model"[..], &[0xff; 64][..], &[0x0a, 0x80][..]] {
        let e = model::import(bytes).unwrap_err();
        assert!(matches!(e, ModelError::Malformed(_)), "{e}");
    }
    // An empty message decodes but has no opset and no graph.
    assert!(model::import(&[]).unwrap_err().to_string().contains("opset"));
}

#[test]
fn unsupported_opsets_operators_and_attributes_name_the_node() {
    let e = err_of(&small().bytes(9), &[1, 3, 8, 8]);
    assert!(e.to_string().contains("opset 9"), "{e}");

    let mut b = small();
    b.node("Loop", &["y"], "z", vec![]);
    b.outputs = vec!["z".into()];
    let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
    let ModelError::Problems(report) = &e else { panic!("expected the problem report: {e}") };
    assert_eq!(report.problems.len(), 1, "{e}");
    assert_eq!(report.problems[0].node, "Loop_2", "{e}");
    assert!(e.to_string().contains("`Loop` is not supported"), "{e}");
    assert!(e.is_refusal());

    let mut b = small();
    b.nodes[0].attribute.push(build::float("group", 2.0));
    let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
    assert!(e.to_string().contains("attribute `group` has type 1, expected INT"), "{e}");

    let mut b = Builder::new(&[1, 2, 4, 4]);
    let s = b.constant("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
    b.node("Resize", &["x", "", &s], "y", vec![build::string("mode", "area")]);
    b.output("y");
    let e = err_of(&b.bytes(13), &[1, 2, 4, 4]);
    assert!(e.to_string().contains("mode `area` is not an ONNX value"), "{e}");
}

#[test]
fn every_problem_of_a_model_is_reported_at_once_grouped() {
    // Three kinds of unsupported node (two `Loop`s, an `If`, a `Scan`), a FLOAT16
    // initializer, and quantization operators: one error lists them all.
    let mut b = small();
    b.node("Loop", &["y"], "l1", vec![]);
    b.node("Loop", &["l1"], "l2", vec![]);
    b.node("If", &["l2"], "i", vec![]);
    b.node("Scan", &["i"], "z", vec![]);
    let mut half = build::float_tensor("h", &[2], &[0.0, 0.0]);
    half.data_type = onnx::tensor::FLOAT16;
    half.raw_data = vec![0; 4];
    half.float_data.clear();
    b.inits.push(half);
    let scale = b.constant("qs", &[], &[0.5]);
    b.inits.push(build::int_tensor("qz", &[], &[0]));
    b.inits.last_mut().unwrap().data_type = onnx::tensor::UINT8;
    b.inits.last_mut().unwrap().int64_data.clear();
    b.inits.last_mut().unwrap().int32_data = vec![0];
    b.node("QuantizeLinear", &["z", &scale, "qz"], "q", vec![]);
    b.outputs = vec!["q".into()];
    let e = model::import(&b.bytes(13)).expect_err("must be refused");
    let ModelError::Problems(report) = &e else { panic!("expected the problem report: {e}") };
    let text = e.to_string();
    assert_eq!(report.problems.len(), 5, "{text}");
    assert_eq!(report.groups().len(), 4, "{text}");
    assert!(report.quantized, "{text}");
    for needle in [
        "4 problems in 5 nodes",
        "the model is quantized",
        "Loop: operator `Loop` is not supported (2 nodes: `Loop_2`, `Loop_3`)",
        "If: operator `If` is not supported (1 node: `If_4`)",
        "Scan: operator `Scan` is not supported (1 node: `Scan_5`)",
        "initializer: tensor `h` has data type FLOAT16",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(!text.contains("data type 10"), "{text}");
}

#[test]
fn planning_reports_every_refused_node_at_once() {
    // Two 1-D convolutions (the convolution kernels are 2-D) on a reshaped input: both are
    // named in one error, and the node after them is not reported again.
    let mut b = Builder::new(&[1, 3, 8, 8]);
    b.inits.push(build::int_tensor("s", &[3], &[1, 3, 64]));
    b.node("Reshape", &["x", "s"], "r", vec![]);
    let w = b.weight("w", &[4, 3, 3]);
    b.node("Conv", &["r", &w], "c1", vec![]);
    b.node("Conv", &["r", &w], "c2", vec![]);
    b.node("Add", &["c1", "c2"], "y", vec![]);
    b.output("y");
    let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
    let ModelError::Problems(report) = &e else { panic!("expected the problem report: {e}") };
    let nodes: Vec<&str> = report.problems.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes, ["Conv_1", "Conv_2"], "{e}");
    assert!(e.to_string().contains("only 4-D"), "{e}");
}

#[test]
fn broken_graphs_are_malformed_with_the_value_named() {
    let mut b = small();
    b.nodes[1].input[0] = "missing".into();
    let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
    assert!(e.to_string().contains("input `missing` is not defined before it"), "{e}");

    let mut b = small();
    b.nodes[1].output[0] = "c".into();
    let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
    assert!(e.to_string().contains("`c` is defined twice"), "{e}");

    let mut b = small();
    b.outputs = vec!["nowhere".into()];
    let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
    assert!(e.to_string().contains("graph output `nowhere`"), "{e}");
}

#[test]
fn shapes_that_do_not_fit_are_errors_naming_node_or_input() {
    let bytes = small().bytes(13);
    let e = err_of(&bytes, &[1, 4, 8, 8]);
    assert!(e.to_string().contains("input `x` is declared 1x3x8x8"), "{e}");
    let e = err_of(&bytes, &[1, 3, 8]);
    assert!(e.to_string().contains("(4 dims), given [1, 3, 8]"), "{e}");
    let e = model::prepare(&bytes, &[]).unwrap_err();
    assert!(e.to_string().contains("no shape given for input `x`"), "{e}");

    // Weights for 5 input channels on a 3-channel input.
    let mut b = Builder::new(&[1, 3, 8, 8]);
    b.conv("x", 5, 4, 3, 1, "y");
    b.output("y");
    let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
    assert!(matches!(&e, ModelError::Shape { node, .. } if node == "Conv_0"), "{e}");
    assert!(e.to_string().contains("the input has 3 channels"), "{e}");
}

#[test]
fn einsum_equations_numpy_refuses_are_refused_by_name() {
    // A label twice in the output (found by `mutated_models_never_panic`: it indexed past the
    // operand) and a term with two ellipses.
    for (eq, want) in [
        ("nchw,nchv->nhwh", "output label `h` appears more than once"),
        ("nchw,nchv->hhwv", "output label `h` appears more than once"),
        ("n......,nchv->nhv", "has more than one `...`"),
        ("nchw,nchv->......", "has more than one `...`"),
    ] {
        let mut b = Builder::new(&[1, 3, 8, 8]);
        b.node("Einsum", &["x", "x"], "y", vec![build::string("equation", eq)]);
        b.output("y");
        let e = err_of(&b.bytes(13), &[1, 3, 8, 8]);
        assert!(e.to_string().contains(want), "{eq}: {e}");
    }
    // The same operands with a well-formed equation are accepted.
    let mut b = Builder::new(&[1, 3, 8, 8]);
    b.node("Einsum", &["x", "x"], "y", vec![build::string("equation", "nchw,nchv->nhwv")]);
    b.output("y");
    assert!(model::prepare(&b.bytes(13), &[vec![1, 3, 8, 8]]).is_ok());
}

#[test]
fn a_plan_refuses_inputs_of_the_wrong_shape() {
    let p = model::prepare(&small().bytes(13), &[vec![1, 3, 8, 8]]).unwrap();
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).unwrap();
    let plan = model::plan::build(&p.optimized, &*set).unwrap();
    let e = plan.session(1).unwrap().run(&[common::input(&[1, 3, 8, 9])]).unwrap_err();
    assert!(e.to_string().contains("has shape [1, 3, 8, 9], the plan expects [1, 3, 8, 8]"), "{e}");
}

/// Import, specialise, optimise, plan and run whatever the bytes give: any result but a panic.
/// A model on the portable operators, for mutation: shape arithmetic, movement, reductions,
/// normalization, a cubic resize, top-k and an einsum.
fn portable() -> Builder {
    let mut b = Builder::new(&[1, 3, 8, 8]);
    b.inits.push(build::int_tensor("perm_axes", &[1], &[1]));
    b.inits.push(build::int_tensor("k", &[1], &[2]));
    b.inits.push(build::int_tensor("pads", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]));
    b.inits.push(build::int_tensor("idx", &[2], &[2, 0]));
    let sizes = b.constant("scales", &[4], &[1.0, 1.0, 1.5, 1.5]);
    b.node("Transpose", &["x"], "t", vec![build::ints("perm", &[0, 2, 3, 1])]);
    let gamma = b.weight("g", &[3]);
    b.node("LayerNormalization", &["t", &gamma], "ln", vec![]);
    b.node("Transpose", &["ln"], "u", vec![build::ints("perm", &[0, 3, 1, 2])]);
    b.node("Pad", &["u", "pads"], "p", vec![build::string("mode", "reflect")]);
    b.node("Resize", &["p", "", &sizes], "r", vec![build::string("mode", "cubic")]);
    b.node("Gather", &["r", "idx"], "g2", vec![build::int("axis", 1)]);
    b.node("Erf", &["g2"], "e", vec![]);
    b.node("ReduceMean", &["e", "perm_axes"], "m", vec![]);
    b.node("TopK", &["m", "k"], "top", vec![build::int("axis", 3)]);
    b.node("Einsum", &["top", "top"], "y", vec![build::string("equation", "nchw,nchv->nhwv")]);
    b.output("y");
    b
}

fn run_anything(bytes: &[u8]) {
    let Ok(mut g) = model::import(bytes) else { return };
    let shapes: Vec<Vec<usize>> = g.inputs.iter().map(|_| vec![1, 3, 8, 8]).collect();
    if model::specialize(&mut g, &shapes, Default::default()).is_err() {
        return;
    }
    model::optimize(&mut g);
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).unwrap();
    if let Ok(plan) = model::plan::build(&g, &*set) {
        if plan.flops < 1 << 24 && plan.activation_bytes() < 1 << 26 {
            let _ = plan.session(1).unwrap().run(&[common::input(&[1, 3, 8, 8])]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        run_anything(&bytes);
    }

    #[test]
    fn mutated_models_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        seed in any::<bool>(),
    ) {
        let mut bytes = if seed { small() } else { portable() }.bytes(18);
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        run_anything(&bytes);
    }

    #[test]
    fn any_einsum_equation_runs_or_is_refused(
        terms in proptest::collection::vec(label_term(), 1..4),
        output in proptest::option::of(label_term()),
    ) {
        // Operands of ranks 4, 2 and 1 (x, a 3×8 weight, an 8-vector), as many as the terms.
        let mut b = Builder::new(&[1, 3, 8, 8]);
        let w = b.weight("w", &[3, 8]);
        let v = b.weight("v", &[8]);
        let operands = ["x", w.as_str(), v.as_str()];
        let eq = match output {
            Some(o) => format!("{}->{o}", terms.join(",")),
            None => terms.join(","),
        };
        b.node("Einsum", &operands[..terms.len()], "y", vec![build::string("equation", &eq)]);
        b.output("y");
        run_anything(&b.bytes(13));
    }
}

/// One einsum term: up to five tokens among four letters and `...` (so some terms have two
/// ellipses, some repeat a label, some name more axes than their operand has).
fn label_term() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(vec!["a", "b", "c", "d", "..."]), 0..6).prop_map(|t| t.concat())
}

#[test]
fn the_portable_seed_model_runs_and_matches_its_reference() {
    // The mutation seed itself must be a working model, or its mutations test little.
    let bytes = portable().bytes(18);
    let p = model::prepare(&bytes, &[vec![1, 3, 8, 8]]).unwrap();
    let x = common::input(&[1, 3, 8, 8]);
    let want = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    assert_eq!(want[0].shape, vec![1, 15, 2, 2]);
    common::check_plans(&p.optimized, &x, &want, 1e-5);
}

#[test]
fn clip_takes_its_bounds_from_attributes_or_inputs() {
    for (attrs, inputs, want) in [
        (vec![build::float("min", -0.25), build::float("max", 0.5)], vec!["x"], (-0.25f32, 0.5f32)),
        (vec![], vec!["x", "lo", "hi"], (-0.125, 0.75)),
        (vec![build::float("min", -0.25)], vec!["x", "", "hi"], (-0.25, 0.75)),
    ] {
        let mut b = Builder::new(&[1, 3, 8, 8]);
        b.constant("lo", &[], &[-0.125]);
        b.constant("hi", &[], &[0.75]);
        b.node("Clip", &inputs, "y", attrs);
        b.output("y");
        let p = model::prepare(&b.bytes(13), &[vec![1, 3, 8, 8]]).unwrap();
        let x = common::input(&[1, 3, 8, 8]);
        let y = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
        let v = y[0].floats().unwrap();
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        assert_eq!((lo as f32, hi as f32), want, "{inputs:?}");
        common::check_plans(&p.optimized, &x, &y, 0.0);
    }
}
