//! Each optimiser rewrite on a small graph: it applies (or, where it must not, does not),
//! and the optimised graph computes what the original computes, in the float64 reference
//! and in plans on this host's kernel sets.

mod common;

use common::{check_plans, input, rel_err, Builder};
use model::plan::{Layout, Step};
use onnx::build;

/// Prepares `b` for `shape`, checks the rewrite counts with `expect`, and compares
/// original, optimised and planned outputs.
fn check(b: &Builder, shape: &[usize], expect: impl Fn(&model::optimize::Rewrites, &[(&'static str, usize)])) {
    let p = model::prepare(&b.bytes(13), &[shape.to_vec()]).unwrap();
    let ops = p.optimized.op_counts();
    println!("{:?} -> {ops:?}", p.rewrites);
    expect(&p.rewrites, &ops);
    let x = input(shape);
    let a = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    let o = model::reference::run(&p.optimized, &[x.to_f64()]).unwrap();
    for (a, o) in a.iter().zip(&o) {
        let err = rel_err(o.to_f32().floats().unwrap(), a.floats().unwrap());
        assert!(err < 1e-6, "optimised vs original: {err:e}");
    }
    check_plans(&p.optimized, &x, &a, 1e-5);
}

#[test]
fn batchnorm_and_activation_fold_into_the_convolution() {
    let mut b = Builder::new(&[1, 3, 9, 11]);
    b.conv("x", 3, 8, 3, 1, "c");
    let s = b.weight("s", &[8]);
    let t = b.weight("t", &[8]);
    let m = b.weight("m", &[8]);
    let v = b.constant("v", &[8], &[0.5, 1.0, 2.0, 0.25, 1.5, 0.75, 3.0, 1.25]);
    b.node("BatchNormalization", &["c", &s, &t, &m, &v], "bn", vec![build::float("epsilon", 1e-3)]);
    b.node("Relu", &["bn"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 3, 9, 11], |r, ops| {
        assert_eq!((r.batchnorm_folded, r.activation_fused), (1, 1));
        assert_eq!(ops, &[("Conv", 1)]);
    });
}

#[test]
fn constant_affine_ops_fold_into_the_convolution_and_hardswish_is_recognised() {
    // Conv → ·k[c] → +s → x·Clip(x+3, 0, 6)/6 (PP-LCNetV3's learnable affine + hard swish).
    let mut b = Builder::new(&[2, 4, 8, 8]);
    b.conv("x", 4, 6, 1, 0, "c");
    let k = b.weight("k", &[1, 6, 1, 1]);
    let s = b.constant("s", &[1], &[0.25]);
    b.node("Mul", &[&k, "c"], "m", vec![]);
    b.node("Add", &["m", &s], "a", vec![]);
    let three = b.constant("three", &[], &[3.0]);
    let zero = b.constant("zero", &[], &[0.0]);
    let six = b.constant("six", &[], &[6.0]);
    b.node("Add", &["a", &three], "a3", vec![]);
    b.node("Clip", &["a3", &zero, &six], "cl", vec![]);
    b.node("Mul", &["a", "cl"], "mc", vec![]);
    b.node("Div", &["mc", &six], "y", vec![]);
    b.output("y");
    check(&b, &[2, 4, 8, 8], |r, ops| {
        assert_eq!((r.affine_folded, r.hardswish, r.activation_fused), (2, 1, 1));
        assert_eq!(ops, &[("Conv", 1)]);
    });
}

#[test]
fn x_times_hard_sigmoid_of_x_is_hardswish() {
    let mut b = Builder::new(&[1, 5, 6, 7]);
    b.conv("x", 5, 5, 3, 1, "c");
    b.node("HardSigmoid", &["c"], "h", vec![build::float("alpha", 1.0 / 6.0), build::float("beta", 0.5)]);
    b.node("Mul", &["c", "h"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 5, 6, 7], |r, ops| {
        assert_eq!((r.hardswish, r.activation_fused), (1, 1));
        assert_eq!(ops, &[("Conv", 1)]);
    });
}

#[test]
fn residual_add_and_the_activation_after_it_fuse() {
    let mut b = Builder::new(&[1, 8, 10, 10]);
    b.conv("x", 8, 8, 1, 0, "c1");
    b.node("Relu", &["c1"], "r1", vec![]);
    b.conv("r1", 8, 8, 3, 1, "c2");
    b.node("Add", &["c2", "x"], "sum", vec![]);
    b.node("Clip", &["sum"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 8, 10, 10], |r, ops| {
        assert_eq!((r.residual_fused, r.activation_fused), (1, 2));
        assert_eq!(ops, &[("Conv", 2)]);
    });
}

#[test]
fn scale_and_shift_fold_forward_only_into_padding_free_convolutions() {
    for (k, pad, folds) in [(1, 0, 2), (3, 1, 0)] {
        let mut b = Builder::new(&[1, 4, 6, 6]);
        b.node("Relu", &["x"], "r", vec![]);
        let a = b.constant("a", &[1], &[1.5]);
        let s = b.constant("s", &[1], &[-0.75]);
        b.node("Mul", &["r", &a], "m", vec![]);
        b.node("Add", &["m", &s], "t", vec![]);
        b.conv("t", 4, 5, k, pad, "y");
        b.output("y");
        check(&b, &[1, 4, 6, 6], |r, _| assert_eq!(r.affine_folded_forward, folds, "k = {k}, pad = {pad}"));
    }
}

#[test]
fn a_convolution_output_used_twice_keeps_its_epilogue_separate() {
    let mut b = Builder::new(&[1, 3, 5, 5]);
    b.conv("x", 3, 4, 3, 1, "c");
    b.node("Relu", &["c"], "r", vec![]);
    b.node("Add", &["r", "c"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 3, 5, 5], |r, ops| {
        assert_eq!((r.activation_fused, r.residual_fused), (0, 0));
        assert!(ops.contains(&("Relu", 1)) && ops.contains(&("Add", 1)), "{ops:?}");
    });
}

#[test]
fn identity_at_the_output_is_bypassed_and_the_output_keeps_its_name() {
    let mut b = Builder::new(&[1, 2, 4, 4]);
    b.conv("x", 2, 3, 1, 0, "c");
    b.node("Identity", &["c"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 2, 4, 4], |r, ops| {
        assert_eq!(r.identity_removed, 1);
        assert_eq!(ops, &[("Conv", 1)]);
    });
    let p = model::prepare(&b.bytes(13), &[vec![1, 2, 4, 4]]).unwrap();
    assert_eq!(p.optimized.values[p.optimized.outputs[0]].name, "y");
}

#[test]
fn x_times_sigmoid_of_x_is_silu_and_fuses_into_the_convolution() {
    let mut b = Builder::new(&[1, 4, 7, 9]);
    b.conv("x", 4, 6, 3, 1, "c");
    b.node("Sigmoid", &["c"], "s", vec![]);
    b.node("Mul", &["s", "c"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 4, 7, 9], |r, ops| {
        assert_eq!((r.gated_activations, r.activation_fused), (1, 1));
        assert_eq!(ops, &[("Conv", 1)]);
    });
}

#[test]
fn x_times_tanh_of_softplus_of_x_is_mish() {
    let mut b = Builder::new(&[1, 3, 5, 5]);
    b.conv("x", 3, 4, 1, 0, "c");
    b.node("Softplus", &["c"], "sp", vec![]);
    b.node("Tanh", &["sp"], "t", vec![]);
    b.node("Mul", &["c", "t"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 3, 5, 5], |r, ops| {
        assert_eq!((r.gated_activations, r.activation_fused), (1, 1));
        assert_eq!(ops, &[("Conv", 1)]);
    });
}

/// GELU as exporters write it, in both orders of its halving; `scale_first` divides by √2
/// (torch) or multiplies by 1/√2.
fn gelu_graph(halve_first: bool, divide: bool) -> Builder {
    let mut b = Builder::new(&[1, 4, 6, 6]);
    b.conv("x", 4, 5, 3, 1, "c");
    let (op, k) = if divide { ("Div", std::f32::consts::SQRT_2) } else { ("Mul", std::f32::consts::FRAC_1_SQRT_2) };
    let k = b.constant("k", &[], &[k]);
    let one = b.constant("one", &[], &[1.0]);
    let half = b.constant("half", &[], &[0.5]);
    b.node(op, &["c", &k], "t", vec![]);
    b.node("Erf", &["t"], "e", vec![]);
    b.node("Add", &["e", &one], "e1", vec![]);
    if halve_first {
        b.node("Mul", &["c", &half], "h", vec![]);
        b.node("Mul", &["h", "e1"], "y", vec![]);
    } else {
        b.node("Mul", &["c", "e1"], "m", vec![]);
        b.node("Mul", &["m", &half], "y", vec![]);
    }
    b.output("y");
    b
}

#[test]
fn gelu_in_the_forms_exporters_write_is_recognised_and_fused() {
    for (halve_first, divide) in [(false, true), (true, true), (false, false), (true, false)] {
        check(&gelu_graph(halve_first, divide), &[1, 4, 6, 6], |r, ops| {
            assert_eq!((r.gelu, r.activation_fused), (1, 1), "halve first {halve_first}, divide {divide}");
            assert_eq!(ops, &[("Conv", 1)]);
        });
    }
}

#[test]
fn a_gelu_whose_parts_are_used_elsewhere_is_left_alone() {
    let mut b = gelu_graph(false, true);
    b.output("e1"); // 1 + erf is an output too
    check(&b, &[1, 4, 6, 6], |r, _| assert_eq!(r.gelu, 0));
}

/// A transformer block's operators on run-time tensors: Linear (MatMul + bias) with GELU
/// fused into the GEMM, LayerNormalization, a Split into heads, a transposed key, the
/// attention product of two run-time values, Softmax, in a plan on every host kernel set.
#[test]
fn attention_operators_run_natively_and_match_the_reference() {
    let mut b = Builder::new(&[1, 6, 8]);
    let w = b.weight("w", &[8, 16]);
    let bias = b.weight("bias", &[16]);
    let (gamma, beta) = (b.weight("gamma", &[8]), b.weight("beta", &[8]));
    b.node("LayerNormalization", &["x", &gamma, &beta], "ln", vec![build::int("axis", -1)]);
    b.node("MatMul", &["ln", &w], "h", vec![]);
    b.node("Add", &["h", &bias], "hb", vec![]);
    let (sqrt2, one, half) = (
        b.constant("sqrt2", &[], &[std::f32::consts::SQRT_2]),
        b.constant("one", &[], &[1.0]),
        b.constant("half", &[], &[0.5]),
    );
    b.node("Div", &["hb", &sqrt2], "t", vec![]);
    b.node("Erf", &["t"], "e", vec![]);
    b.node("Add", &["e", &one], "e1", vec![]);
    b.node("Mul", &["hb", "e1"], "m", vec![]);
    b.node("Mul", &["m", &half], "g", vec![]);
    let sizes = b.int_constant("sizes", &[2], &[8, 8]);
    b.node_n("Split", &["g", &sizes], &["q", "k"], vec![build::int("axis", 2)]);
    b.node("Transpose", &["k"], "kt", vec![build::ints("perm", &[0, 2, 1])]);
    b.node("MatMul", &["q", "kt"], "scores", vec![]);
    b.node("Softmax", &["scores"], "y", vec![build::int("axis", -1)]);
    b.output("y");
    let p = model::prepare(&b.bytes(17), &[vec![1, 6, 8]]).unwrap();
    assert_eq!(p.rewrites.gelu, 1);
    let x = input(&[1, 6, 8]);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).unwrap();
    let plan = model::plan::build(&p.optimized, &*set).unwrap();
    let labels: Vec<&str> = plan.steps.iter().map(|s| s.op.as_str()).collect();
    for want in ["LayerNormalization", "MatMul+Add+Gelu", "Split", "Transpose", "MatMul", "Softmax"] {
        assert!(labels.contains(&want), "{want} not in {labels:?}");
    }
    assert!(!plan.steps.iter().any(|s| matches!(s.step, model::plan::Step::Eval { .. })), "{labels:?}");
    check_plans(&p.optimized, &x, &expected, 1e-5);
}

#[test]
fn a_slice_that_keeps_every_channel_is_bypassed() {
    // GhostNet's `torch.cat([x1, x2], 1)[:, :out]` where the two halves make exactly `out`.
    let mut b = Builder::new(&[1, 3, 6, 5]);
    b.conv("x", 3, 4, 1, 0, "c1");
    b.conv("c1", 4, 4, 3, 1, "c2");
    b.node("Concat", &["c1", "c2"], "cat", vec![build::int("axis", 1)]);
    let (starts, ends, axes) =
        (b.int_constant("s", &[1], &[0]), b.int_constant("e", &[1], &[8]), b.int_constant("a", &[1], &[1]));
    b.node("Slice", &["cat", &starts, &ends, &axes], "sl", vec![]);
    b.node("Relu", &["sl"], "y", vec![]);
    // A slice that drops a channel stays.
    let short = b.int_constant("e7", &[1], &[7]);
    b.node("Slice", &["cat", &starts, &short, &axes], "y7", vec![]);
    b.output("y");
    b.output("y7");
    check(&b, &[1, 3, 6, 5], |r, ops| {
        assert_eq!(r.identity_removed, 1);
        assert_eq!(ops, &[("Concat", 1), ("Conv", 2), ("Relu", 1), ("Slice", 1)]);
    });
}

#[test]
fn taps_that_read_only_padding_are_trimmed_from_dilated_convolutions() {
    // On a 5×2 map, a 3×3 kernel at dilation 2 with pads 2: the outer columns of taps read
    // only padding (a 3×1 kernel remains); at dilation 6 on 5×6, only the centre tap reads
    // the input (a 1×1 kernel). A stride-2 case keeps its output size.
    for (shape, dilation, stride, kernel) in
        [([1, 3, 5, 2], 2, 1, [3, 1]), ([1, 3, 5, 6], 6, 1, [1, 1]), ([1, 3, 9, 3], 5, 2, [3, 1])]
    {
        let mut b = Builder::new(&shape);
        let w = b.weight("w", &[4, 3, 3, 3]);
        let bias = b.weight("bias", &[4]);
        let d = dilation;
        let attrs = vec![
            build::ints("kernel_shape", &[3, 3]),
            build::ints("pads", &[d, d, d, d]),
            build::ints("dilations", &[d, d]),
            build::ints("strides", &[stride, stride]),
        ];
        b.node("Conv", &["x", &w, &bias], "y", attrs);
        b.output("y");
        check(&b, &shape, |r, _| assert_eq!(r.taps_trimmed, 1));
        let p = model::prepare(&b.bytes(13), &[shape.to_vec()]).unwrap();
        let trimmed = p.optimized.nodes.iter().find_map(|n| match &n.op {
            model::ir::Op::Conv(c) => c.kernel,
            _ => None,
        });
        assert_eq!(trimmed, Some(kernel), "{shape:?} at dilation {dilation}");
    }
}

#[test]
fn a_spatial_reduce_mean_runs_as_global_average_pooling() {
    // Squeeze-excitation blocks as timm exports them: ReduceMean over H and W, kept or not.
    for keepdims in [1, 0] {
        let mut b = Builder::new(&[2, 5, 6, 7]);
        b.conv("x", 5, 8, 3, 1, "c");
        b.node("ReduceMean", &["c"], "y", vec![build::ints("axes", &[-1, 2]), build::int("keepdims", keepdims)]);
        b.output("y");
        check(&b, &[2, 5, 6, 7], |_, _| {});
        let p = model::prepare(&b.bytes(13), &[vec![2, 5, 6, 7]]).unwrap();
        for set in kernels::host_kernel_sets().0 {
            let plan = model::plan::build(&p.optimized, &*set).unwrap();
            let ops: Vec<&str> = plan.steps.iter().map(|s| s.op.as_str()).collect();
            assert!(
                plan.steps.iter().any(|s| matches!(s.step, model::plan::Step::GlobalAveragePool { .. })),
                "keepdims {keepdims}: {ops:?}"
            );
            assert!(!plan.steps.iter().any(|s| matches!(s.step, model::plan::Step::Eval { .. })), "{ops:?}");
        }
    }
}

#[test]
fn a_channel_shuffle_runs_as_one_gather_in_nhwc() {
    // ShuffleNet's `x.view(n, g, c/g, h, w).transpose(1, 2).reshape(n, c, h, w)`, at 2 and 3
    // groups, then split in halves as ShuffleNetV2 does.
    for groups in [2, 3] {
        let mut b = Builder::new(&[1, 3, 5, 4]);
        b.conv("x", 3, 12, 3, 1, "c");
        let split = b.int_constant("split", &[5], &[1, groups, 12 / groups, 5, 4]);
        b.node("Reshape", &["c", &split], "r", vec![]);
        b.node("Transpose", &["r"], "t", vec![build::ints("perm", &[0, 2, 1, 3, 4])]);
        let back = b.int_constant("back", &[4], &[1, 12, 5, 4]);
        b.node("Reshape", &["t", &back], "s", vec![]);
        b.node_n("Split", &["s"], &["h1", "h2"], vec![build::int("axis", 1)]);
        b.node("Relu", &["h2"], "y2", vec![]);
        b.conv("h1", 6, 4, 1, 0, "y1");
        b.output("y1");
        b.output("y2");
        check(&b, &[1, 3, 5, 4], |r, ops| {
            assert_eq!(r.channel_shuffles, 1);
            assert!(ops.contains(&("Gather", 1)) && !ops.iter().any(|(o, _)| *o == "Transpose"), "{ops:?}");
        });
        let p = model::prepare(&b.bytes(13), &[vec![1, 3, 5, 4]]).unwrap();
        for set in kernels::host_kernel_sets().0 {
            let plan = model::plan::build(&p.optimized, &*set).unwrap();
            let ops: Vec<&str> = plan.steps.iter().map(|s| s.op.as_str()).collect();
            // Converted only where the input arrives and the outputs leave.
            let relayouts = ops.iter().filter(|o| **o == "Relayout").count();
            assert!(ops.contains(&"Gather") && relayouts == 3, "{groups} groups: {ops:?}");
        }
    }
    // A transpose of other axes is no shuffle.
    let mut b = Builder::new(&[1, 4, 3, 2]);
    let split = b.int_constant("split", &[5], &[1, 2, 2, 3, 2]);
    b.node("Reshape", &["x", &split], "r", vec![]);
    b.node("Transpose", &["r"], "t", vec![build::ints("perm", &[0, 1, 2, 4, 3])]);
    let back = b.int_constant("back", &[4], &[1, 4, 2, 3]);
    b.node("Reshape", &["t", &back], "y", vec![]);
    b.output("y");
    check(&b, &[1, 4, 3, 2], |r, _| assert_eq!(r.channel_shuffles, 0));
}

#[test]
fn a_gather_of_constant_indices_runs_natively_and_bad_indices_are_refused() {
    // Negative indices, repeats and a reversed run, on a plain value's middle axis.
    let mut b = Builder::new(&[2, 5, 3]);
    let idx = b.int_constant("idx", &[6], &[4, -1, 0, 2, 1, 0]);
    b.node("Gather", &["x", &idx], "y", vec![build::int("axis", 1)]);
    b.output("y");
    check(&b, &[2, 5, 3], |_, ops| assert_eq!(ops, &[("Gather", 1)]));
    let p = model::prepare(&b.bytes(13), &[vec![2, 5, 3]]).unwrap();
    for set in kernels::host_kernel_sets().0 {
        let plan = model::plan::build(&p.optimized, &*set).unwrap();
        assert!(plan.steps.iter().any(|s| matches!(s.step, model::plan::Step::Gather { .. })));
    }
    let mut b = Builder::new(&[2, 5, 3]);
    let idx = b.int_constant("idx", &[2], &[1, 5]);
    b.node("Gather", &["x", &idx], "y", vec![build::int("axis", 1)]);
    b.output("y");
    // Refused when planned or when run, never a panic or an out-of-bounds read.
    let err = match model::prepare(&b.bytes(13), &[vec![2, 5, 3]]) {
        Err(e) => e.to_string(),
        Ok(p) => kernels::host_kernel_sets()
            .0
            .into_iter()
            .map(|set| match model::plan::build(&p.optimized, &*set) {
                Err(e) => e.to_string(),
                Ok(plan) => plan.session(1).unwrap().run(&[input(&[2, 5, 3])]).unwrap_err().to_string(),
            })
            .next()
            .unwrap_or_default(),
    };
    assert!(err.contains("index") && err.contains('5'), "{err}");
}

#[test]
fn reshapes_with_shape_or_axes_inputs_are_copies_not_evaluations() {
    // A ViT's attention: `Reshape` by an int64 shape input, `Unsqueeze`/`Squeeze` by an axes
    // input (opset 13): copies of static float data, in place where the input dies.
    let mut b = Builder::new(&[1, 3, 6, 5]);
    b.conv("x", 3, 4, 1, 0, "c");
    let shape = b.int_constant("shape", &[3], &[1, 4, 30]);
    b.node("Reshape", &["c", &shape], "r", vec![]);
    let axes = b.int_constant("axes", &[1], &[0]);
    b.node("Unsqueeze", &["r", &axes], "u", vec![]);
    b.node("Squeeze", &["u", &axes], "s", vec![]);
    b.node("Relu", &["s"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 3, 6, 5], |_, _| {});
    let p = model::prepare(&b.bytes(13), &[vec![1, 3, 6, 5]]).unwrap();
    let set = kernels::host_kernel_sets().0.remove(0);
    let plan = model::plan::build(&p.optimized, &*set).unwrap();
    let steps: Vec<(&str, bool)> =
        plan.steps.iter().map(|s| (s.op.as_str(), matches!(s.step, Step::Copy { .. }))).collect();
    for op in ["Reshape", "Unsqueeze", "Squeeze"] {
        assert!(steps.contains(&(op, true)), "{op} is not a copy: {steps:?}");
    }
    assert!(!plan.steps.iter().any(|s| matches!(s.step, Step::Eval { .. })), "{steps:?}");
}

/// LayerNormalization written out over the last axis, as Paddle's exporter and older
/// PyTorch write it: `ReduceMean`, `Sub`, the square (`Pow(d, 2)` or `d·d`), `ReduceMean`,
/// `+ ε`, `Sqrt`, `Div`, then (optionally) `·γ` and `+ β`.
fn written_out_layer_norm(b: &mut Builder, x: &str, pow: bool, affine: bool, axes_input: bool) -> String {
    let mean = |b: &mut Builder, i: &str, o: &str| match axes_input {
        true => {
            let axes = b.int_constant(&format!("{o}.axes"), &[1], &[-1]);
            b.node("ReduceMean", &[i, &axes], o, vec![])
        }
        false => b.node("ReduceMean", &[i], o, vec![build::ints("axes", &[-1])]),
    };
    mean(b, x, "m");
    b.node("Sub", &[x, "m"], "d", vec![]);
    match pow {
        true => {
            let two = b.constant("two", &[], &[2.0]);
            b.node("Pow", &["d", &two], "sq", vec![])
        }
        false => b.node("Mul", &["d", "d"], "sq", vec![]),
    };
    mean(b, "sq", "v");
    let eps = b.constant("eps", &[], &[1e-5]);
    b.node("Add", &["v", &eps], "ve", vec![]);
    b.node("Sqrt", &["ve"], "s", vec![]);
    b.node("Div", &["d", "s"], "n", vec![]);
    if !affine {
        return "n".into();
    }
    let (gamma, beta) = (b.weight("gamma", &[8]), b.weight("beta", &[1, 1, 8]));
    b.node("Mul", &["n", &gamma], "ng", vec![]);
    b.node("Add", &[&beta, "ng"], "y", vec![])
}

#[test]
fn a_written_out_layer_norm_runs_as_one_layer_norm_kernel() {
    for (pow, affine, axes_input) in
        [(true, true, false), (false, true, false), (true, false, false), (true, true, true)]
    {
        let mut b = Builder::new(&[2, 6, 8]);
        let y = written_out_layer_norm(&mut b, "x", pow, affine, axes_input);
        b.node("Relu", &[&y], "out", vec![]);
        b.output("out");
        let opset = if axes_input { 18 } else { 13 };
        let p = model::prepare(&b.bytes(opset), &[vec![2, 6, 8]]).unwrap();
        let ops = p.optimized.op_counts();
        let case = format!("pow {pow}, affine {affine}, axes input {axes_input}: {ops:?}");
        assert_eq!(p.rewrites.layer_norms, 1, "{case}");
        assert!(ops.contains(&("LayerNormalization", 1)), "{case}");
        assert!(!ops.iter().any(|(o, _)| ["ReduceMean", "Pow", "Sqrt", "Div", "Sub"].contains(o)), "{case}");
        let x = input(&[2, 6, 8]);
        let original = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
        let optimized = model::reference::run(&p.optimized, &[x.to_f64()]).unwrap();
        let err = rel_err(optimized[0].to_f32().floats().unwrap(), original[0].floats().unwrap());
        assert!(err < 1e-6, "{case}: optimised vs original {err:e}");
        for set in kernels::host_kernel_sets().0 {
            let plan = model::plan::build(&p.optimized, &*set).unwrap();
            assert!(plan.steps.iter().any(|s| matches!(s.step, Step::LayerNorm { .. })), "{case}");
            assert!(!plan.steps.iter().any(|s| matches!(s.step, Step::Eval { .. })), "{case}");
        }
        check_plans(&p.optimized, &x, &original, 1e-5);
    }
}

#[test]
fn a_layer_norm_whose_parts_are_read_elsewhere_or_over_leading_axes_is_left_alone() {
    // The centred value is also an output.
    let mut b = Builder::new(&[2, 6, 8]);
    written_out_layer_norm(&mut b, "x", true, true, false);
    b.output("y");
    b.output("d");
    check(&b, &[2, 6, 8], |r, _| assert_eq!(r.layer_norms, 0));
    // Means over the middle axis: not the trailing axes a LayerNormalization normalises.
    let mut b = Builder::new(&[2, 6, 8]);
    b.node("ReduceMean", &["x"], "m", vec![build::ints("axes", &[1])]);
    b.node("Sub", &["x", "m"], "d", vec![]);
    b.node("Mul", &["d", "d"], "sq", vec![]);
    b.node("ReduceMean", &["sq"], "v", vec![build::ints("axes", &[1])]);
    let eps = b.constant("eps", &[], &[1e-5]);
    b.node("Add", &["v", &eps], "ve", vec![]);
    b.node("Sqrt", &["ve"], "s", vec![]);
    b.node("Div", &["d", "s"], "y", vec![]);
    b.output("y");
    check(&b, &[2, 6, 8], |r, _| assert_eq!(r.layer_norms, 0));
}

#[test]
fn a_gather_of_one_scalar_index_runs_natively_in_any_layout() {
    // A ViT's class token (`x[:, 0]` of `[n, tokens, dim]`), a detector's box coordinate
    // (`boxes[:, k]`), and one channel of a convolution's NHWC output (rank 4 → 3).
    let mut b = Builder::new(&[2, 5, 4]);
    let (i0, i3) = (b.int_constant("i0", &[], &[0]), b.int_constant("i3", &[], &[-1]));
    b.node("Gather", &["x", &i0], "token", vec![build::int("axis", 1)]);
    b.node("Gather", &["x", &i3], "coord", vec![build::int("axis", 2)]);
    b.output("token");
    b.output("coord");
    check(&b, &[2, 5, 4], |_, ops| assert_eq!(ops, &[("Gather", 2)]));
    let mut c = Builder::new(&[1, 3, 5, 4]);
    c.conv("x", 3, 6, 3, 1, "f");
    let i2 = c.int_constant("i2", &[], &[2]);
    c.node("Gather", &["f", &i2], "y", vec![build::int("axis", 1)]);
    c.output("y");
    check(&c, &[1, 3, 5, 4], |_, _| {});
    for (b, shape) in [(&b, vec![2, 5, 4]), (&c, vec![1, 3, 5, 4])] {
        let p = model::prepare(&b.bytes(13), &[shape]).unwrap();
        for set in kernels::host_kernel_sets().0 {
            let plan = model::plan::build(&p.optimized, &*set).unwrap();
            let ops = common::ops(&plan);
            assert!(plan.steps.iter().any(|s| matches!(s.step, Step::Gather { .. })), "{ops:?}");
            assert!(!plan.steps.iter().any(|s| matches!(s.step, Step::Eval { .. })), "{ops:?}");
        }
    }
}

#[test]
fn rounding_and_other_exact_functions_run_as_map_steps_equal_to_the_reference() {
    // 8x is exact in float32, so Floor, Ceil and Round see the reference's values (halves
    // among them); |−x|, √ and 1/x chain into one step.
    let mut b = Builder::new(&[1, 4, 6, 5]);
    let eight = b.constant("eight", &[], &[8.0]);
    b.node("Mul", &["x", &eight], "x8", vec![]);
    for op in ["Floor", "Ceil", "Round"] {
        b.node(op, &["x8"], &op.to_lowercase(), vec![]);
        b.output(&op.to_lowercase());
    }
    b.node("Neg", &["x"], "n", vec![]);
    b.node("Abs", &["n"], "a", vec![]);
    b.node("Sqrt", &["a"], "s", vec![]);
    b.node("Reciprocal", &["s"], "r", vec![]);
    b.output("r");
    let p = model::prepare(&b.bytes(13), &[vec![1, 4, 6, 5]]).unwrap();
    let x = input(&[1, 4, 6, 5]);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    for set in kernels::host_kernel_sets().0 {
        let plan = model::plan::build(&p.optimized, &*set).unwrap();
        let ops = common::ops(&plan);
        assert!(!plan.steps.iter().any(|s| matches!(s.step, Step::Eval { .. })), "{ops:?}");
        assert!(ops.contains(&"Neg+Abs+Sqrt+Reciprocal"), "{ops:?}");
        let outs = plan.session(1).unwrap().run(std::slice::from_ref(&x)).unwrap();
        for (k, (o, e)) in outs.iter().zip(&expected).enumerate().take(3) {
            // Correctly rounded: the float64 result rounded to float32, exactly (the chain
            // rounds after each function, so it is checked within the bound below).
            let want: Vec<f32> = e.floats().unwrap().iter().map(|&v| v as f32).collect();
            assert_eq!(o.floats().unwrap(), &want[..], "{}: output {k}", set.info().name);
        }
    }
    check_plans(&p.optimized, &x, &expected, 1e-7);
}

#[test]
fn zero_pads_before_a_convolution_become_its_pads_and_empty_pads_are_bypassed() {
    // timm's `Conv2dSame` writes TensorFlow's "same" padding as a Pad of the spatial axes
    // (uneven: one more row and column at the end) before an unpadded convolution; Swin pads
    // to a multiple of its window, nothing at all where the window divides the map.
    let mut b = Builder::new(&[1, 3, 10, 9]);
    let same = b.int_constant("same", &[8], &[0, 0, 0, 1, 0, 0, 1, 2]);
    b.node("Pad", &["x", &same], "xp", vec![]);
    let w = b.weight("w", &[6, 3, 3, 3]);
    b.node("Conv", &["xp", &w], "c", vec![build::ints("strides", &[2, 2])]);
    let none = b.int_constant("none", &[8], &[0; 8]);
    b.node("Pad", &["c", &none], "y", vec![]);
    b.output("y");
    check(&b, &[1, 3, 10, 9], |r, ops| {
        assert_eq!((r.pads_folded, r.identity_removed), (1, 1), "{r:?}");
        assert_eq!(ops, &[("Conv", 1)]);
    });
}

#[test]
fn pads_by_a_value_other_than_zero_or_of_the_channels_stay_pads() {
    let mut b = Builder::new(&[1, 3, 6, 7]);
    let spatial = b.int_constant("spatial", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]);
    let half = b.constant("half", &[], &[0.5]);
    b.node("Pad", &["x", &spatial, &half], "xp", vec![]);
    let channels = b.int_constant("channels", &[8], &[0, 1, 0, 0, 0, 2, 0, 0]);
    b.node("Pad", &["x", &channels], "xc", vec![]);
    let w = b.weight("w", &[4, 3, 3, 3]);
    b.node("Conv", &["xp", &w], "c", vec![]);
    let w6 = b.weight("w6", &[4, 6, 1, 1]);
    b.node("Conv", &["xc", &w6], "d", vec![]);
    b.output("c");
    b.output("d");
    check(&b, &[1, 3, 6, 7], |r, ops| {
        assert_eq!(r.pads_folded, 0, "{r:?}");
        assert!(ops.contains(&("Pad", 2)), "{ops:?}");
    });
}

/// A convolution with random weights and bias and every attribute given.
#[allow(clippy::too_many_arguments)]
fn conv_with(
    b: &mut Builder,
    x: &str,
    [c_in, c_out, groups]: [usize; 3],
    [kh, kw]: [usize; 2],
    stride: usize,
    dilation: usize,
    pads: [i64; 4],
    out: &str,
) -> String {
    let w = b.weight(&format!("{out}.w"), &[c_out, c_in / groups, kh, kw]);
    let bias = b.weight(&format!("{out}.b"), &[c_out]);
    let attrs = vec![
        build::ints("kernel_shape", &[kh as i64, kw as i64]),
        build::ints("strides", &[stride as i64; 2]),
        build::ints("dilations", &[dilation as i64; 2]),
        build::ints("pads", &pads),
        build::int("group", groups as i64),
    ];
    b.node("Conv", &[x, &w, &bias], out, attrs)
}

/// An inference BatchNormalization of `x` with `c` channels and random statistics.
fn batchnorm(b: &mut Builder, x: &str, c: usize, out: &str) -> String {
    let s = b.weight(&format!("{out}.s"), &[c]);
    let t = b.weight(&format!("{out}.t"), &[c]);
    let m = b.weight(&format!("{out}.m"), &[c]);
    let v: Vec<f32> = (0..c).map(|k| 0.25 + k as f32 / c as f32).collect();
    let v = b.constant(&format!("{out}.v"), &[c], &v);
    b.node("BatchNormalization", &[x, &s, &t, &m, &v], out, vec![build::float("epsilon", 1e-3)])
}

#[test]
fn repvgg_branches_become_one_convolution() {
    // RepVGG's training-time block: a 3×3 and a 1×1 convolution and a BatchNorm of the input
    // itself, summed, then ReLU; the 1×1 lands on the 3×3's centre tap, the BatchNorm on the
    // centre tap of each channel's own input channel.
    let mut b = Builder::new(&[1, 6, 9, 11]);
    conv_with(&mut b, "x", [6, 6, 1], [3, 3], 1, 1, [1, 1, 1, 1], "k3");
    conv_with(&mut b, "x", [6, 6, 1], [1, 1], 1, 1, [0, 0, 0, 0], "k1");
    batchnorm(&mut b, "x", 6, "id");
    b.node("Add", &["k1", "k3"], "s", vec![]);
    b.node("Add", &["s", "id"], "a", vec![]);
    b.node("Relu", &["a"], "y", vec![]);
    b.output("y");
    check(&b, &[1, 6, 9, 11], |r, ops| {
        assert_eq!((r.branches_merged, r.activation_fused), (2, 1), "{r:?}");
        assert_eq!(ops, &[("Conv", 1)]);
    });
}

#[test]
fn mobileone_and_fastvit_branches_become_one_convolution_each() {
    let mut b = Builder::new(&[1, 8, 13, 12]);
    // MobileOne: depthwise 3×3 branches at stride 2, a 1×1 "scale" branch, a zero added.
    conv_with(&mut b, "x", [8, 8, 8], [1, 1], 2, 1, [0, 0, 0, 0], "scale");
    let zero = b.constant("zero", &[], &[0.0]);
    b.node("Add", &["scale", &zero], "s0", vec![]);
    for k in 0..3 {
        conv_with(&mut b, "x", [8, 8, 8], [3, 3], 2, 1, [1, 1, 1, 1], &format!("kxk{k}"));
        b.node("Add", &[&format!("s{k}"), &format!("kxk{k}")], &format!("s{}", k + 1), vec![]);
    }
    // FastViT's downsampling: a grouped 7×7 and 3×3 with two outputs per group, summed.
    conv_with(&mut b, "x", [8, 16, 4], [7, 7], 2, 1, [3, 3, 3, 3], "large");
    conv_with(&mut b, "x", [8, 16, 4], [3, 3], 2, 1, [1, 1, 1, 1], "small");
    b.node("Add", &["small", "large"], "down", vec![]);
    // FastViT's RepMixer: x + γ·(BN(x) + dw1×1(x) + dw3×3(x) − BN'(x)).
    batchnorm(&mut b, "x", 8, "bn1");
    conv_with(&mut b, "x", [8, 8, 8], [1, 1], 1, 1, [0, 0, 0, 0], "mix_scale");
    conv_with(&mut b, "x", [8, 8, 8], [3, 3], 1, 1, [1, 1, 1, 1], "mix_kxk");
    batchnorm(&mut b, "x", 8, "bn2");
    b.node("Add", &["mix_scale", "bn1"], "m1", vec![]);
    b.node("Add", &["m1", "mix_kxk"], "m2", vec![]);
    b.node("Sub", &["m2", "bn2"], "m3", vec![]);
    let gamma = b.weight("gamma", &[8, 1, 1]);
    b.node("Mul", &["m3", &gamma], "m4", vec![]);
    b.node("Add", &["x", "m4"], "mixer", vec![]);
    for y in ["s3", "down", "mixer"] {
        b.output(y);
    }
    check(&b, &[1, 8, 13, 12], |r, ops| {
        assert_eq!(r.branches_merged, 3 + 1 + 4, "{r:?}");
        assert_eq!(ops, &[("Conv", 3)]);
    });
}

#[test]
fn dilated_and_uneven_branches_merge_where_their_taps_line_up() {
    let mut b = Builder::new(&[1, 4, 10, 9]);
    // A 3×3 at dilation 2 and a 1×1: the 1×1 is its centre tap.
    conv_with(&mut b, "x", [4, 4, 1], [3, 3], 1, 2, [2, 2, 2, 2], "d3");
    conv_with(&mut b, "x", [4, 4, 1], [1, 1], 1, 2, [0, 0, 0, 0], "d1");
    b.node("Add", &["d3", "d1"], "dil", vec![]);
    // A 3×3 padded only at the end (TensorFlow's "same" at stride 1 would pad both sides)
    // and the input itself: the identity is its top-left tap.
    conv_with(&mut b, "x", [4, 4, 2], [3, 3], 1, 1, [0, 0, 2, 2], "u3");
    b.node("Sub", &["x", "u3"], "uneven", vec![]);
    b.output("dil");
    b.output("uneven");
    check(&b, &[1, 4, 10, 9], |r, ops| {
        assert_eq!(r.branches_merged, 2, "{r:?}");
        assert_eq!(ops, &[("Conv", 2)]);
    });
}

#[test]
fn branches_that_do_not_line_up_or_are_read_elsewhere_stay_apart() {
    let mut b = Builder::new(&[1, 4, 8, 8]);
    // A 1×3 and a 3×1 (ACNet): neither kernel holds the other.
    conv_with(&mut b, "x", [4, 4, 1], [1, 3], 1, 1, [0, 1, 0, 1], "row");
    conv_with(&mut b, "x", [4, 4, 1], [3, 1], 1, 1, [1, 0, 1, 0], "col");
    b.node("Add", &["row", "col"], "cross", vec![]);
    // Different groups.
    conv_with(&mut b, "x", [4, 4, 4], [3, 3], 1, 1, [1, 1, 1, 1], "dw");
    conv_with(&mut b, "x", [4, 4, 1], [3, 3], 1, 1, [1, 1, 1, 1], "dense");
    b.node("Add", &["dw", "dense"], "groups", vec![]);
    // A branch that is also an output, and one of another input.
    conv_with(&mut b, "x", [4, 4, 1], [3, 3], 1, 1, [1, 1, 1, 1], "seen");
    conv_with(&mut b, "x", [4, 4, 1], [1, 1], 1, 1, [0, 0, 0, 0], "one");
    b.node("Add", &["seen", "one"], "read", vec![]);
    b.node("Relu", &["x"], "rx", vec![]);
    conv_with(&mut b, "x", [4, 4, 1], [3, 3], 1, 1, [1, 1, 1, 1], "other");
    b.node("Add", &["other", "rx"], "apart", vec![]);
    for y in ["cross", "groups", "read", "seen", "apart"] {
        b.output(y);
    }
    check(&b, &[1, 4, 8, 8], |r, ops| {
        assert_eq!(r.branches_merged, 0, "{r:?}");
        assert_eq!(ops, &[("Conv", 7), ("Relu", 1)]);
    });
}

/// `nn.GroupNorm` as `torch.onnx.export` writes it: `Reshape(x, [N, G, −1])`,
/// `InstanceNormalization` with a scale and bias per group, `Reshape` back (to `Shape(x)`),
/// then `·γ + β` per channel. Two images of six channels in three groups, and in one: one
/// `GroupNormalization` with the affine folded in, a native step on every kernel set (one
/// group normalised in the convolution's NHWC layout, three in NCHW).
#[test]
fn a_group_norm_as_pytorch_exports_it_is_one_group_norm_step() {
    for (groups, len, layout) in [(3i64, 70, Layout::Plain), (1, 210, Layout::Nhwc)] {
        let mut b = Builder::new(&[2, 6, 5, 7]);
        b.conv("x", 6, 6, 3, 1, "c");
        let split = b.int_constant("split", &[3], &[2, groups, -1]);
        b.node("Reshape", &["c", &split], "r", vec![]);
        let (s, t) = (b.weight("s", &[groups as usize]), b.weight("t", &[groups as usize]));
        b.node("InstanceNormalization", &["r", &s, &t], "n", vec![build::float("epsilon", 1e-5)]);
        b.node("Shape", &["c"], "shape", vec![]);
        b.node("Reshape", &["n", "shape"], "back", vec![]);
        let (gamma, beta) = (b.weight("gamma", &[6, 1, 1]), b.weight("beta", &[6, 1, 1]));
        b.node("Mul", &["back", &gamma], "m", vec![]);
        b.node("Add", &["m", &beta], "a", vec![]);
        b.node("Relu", &["a"], "y", vec![]);
        b.output("y");
        check(&b, &[2, 6, 5, 7], |r, ops| {
            assert_eq!((r.group_norms, r.affine_folded), (1, 2), "{r:?}");
            assert_eq!(ops, &[("Conv", 1), ("GroupNormalization", 1), ("Relu", 1)]);
        });
        let p = model::prepare(&b.bytes(13), &[vec![2, 6, 5, 7]]).unwrap();
        for set in kernels::host_kernel_sets().0 {
            let plan = model::plan::build(&p.optimized, &*set).unwrap();
            let steps: Vec<&str> = plan.steps.iter().map(|s| s.op.as_str()).collect();
            let norm = plan.steps.iter().find_map(|s| match s.step {
                Step::GroupNorm { input, len, channel_len, .. } => Some((plan.values[input].layout, len, channel_len)),
                _ => None,
            });
            assert_eq!(norm, Some((layout, len, 35)), "{groups} groups: {steps:?}");
            assert!(!plan.steps.iter().any(|s| matches!(s.step, Step::Eval { .. })), "{steps:?}");
            // Through a plan file and back: the same steps, the same bits.
            let back = model::plan::Plan::from_bytes(&plan.to_bytes()).unwrap();
            assert_eq!(back.steps, plan.steps);
            let x = input(&[2, 6, 5, 7]);
            let run = |p: &model::plan::Plan| p.session(1).unwrap().run(std::slice::from_ref(&x)).unwrap();
            assert_eq!(run(&back), run(&plan));
        }
    }
}

/// What must not become a group norm: a reshape back to another shape, an affine that
/// varies along the batch (not the channels). An `InstanceNormalization` of the image itself
/// takes a following per-channel division into its scale, and runs as a native step.
#[test]
fn instance_norms_fold_only_per_channel_affines() {
    let mut b = Builder::new(&[2, 4, 3, 5]);
    let split = b.int_constant("split", &[3], &[2, 2, -1]);
    b.node("Reshape", &["x", &split], "r", vec![]);
    let (s, t) = (b.weight("s", &[2]), b.weight("t", &[2]));
    b.node("InstanceNormalization", &["r", &s, &t], "n", vec![]);
    let other = b.int_constant("other", &[3], &[2, 4, 15]);
    b.node("Reshape", &["n", &other], "flat", vec![]);
    b.output("flat");
    let (s4, t4) = (b.weight("s4", &[4]), b.weight("t4", &[4]));
    b.node("InstanceNormalization", &["x", &s4, &t4], "i", vec![]);
    let per_channel = b.constant("k", &[4, 1, 1], &[2.0, -4.0, 0.5, 8.0]);
    b.node("Div", &["i", &per_channel], "d", vec![]);
    // [2, 1, 1, 1] against [2, 4, 3, 5]: one value per image, which no scale per channel holds.
    let per_image = b.constant("batch", &[2, 1, 1, 1], &[3.0, -1.0]);
    b.node("Mul", &["d", &per_image], "y", vec![]);
    b.output("y");
    check(&b, &[2, 4, 3, 5], |r, ops| {
        assert_eq!((r.group_norms, r.affine_folded), (0, 1), "{r:?}");
        assert_eq!(ops, &[("InstanceNormalization", 2), ("Mul", 1), ("Reshape", 2)]);
    });
    let p = model::prepare(&b.bytes(13), &[vec![2, 4, 3, 5]]).unwrap();
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).unwrap();
    let plan = model::plan::build(&p.optimized, &*set).unwrap();
    let norms: Vec<(usize, usize)> = plan
        .steps
        .iter()
        .filter_map(|s| match s.step {
            Step::GroupNorm { len, channel_len, .. } => Some((len, channel_len)),
            _ => None,
        })
        .collect();
    assert_eq!(norms, [(30, 30), (15, 15)]);
}

/// BiT's `StdConv2d` as exported: the weight standardised by `BatchNormalization` in
/// training mode (its batch statistics over the reshaped weight, running statistics as
/// unused outputs) on a constant, reshaped back: folded when the model is specialised, so
/// the convolution has a constant weight and runs natively.
#[test]
fn a_weight_standardised_by_a_training_mode_batch_norm_folds() {
    let mut b = Builder::new(&[1, 4, 6, 6]);
    let w = b.weight("w", &[1, 8, 36]);
    let (ones, zeros) = (b.constant("ones", &[8], &[1.0; 8]), b.constant("zeros", &[8], &[0.0; 8]));
    let (mean, var) = (b.constant("mean", &[8], &[0.5; 8]), b.constant("var", &[8], &[2.0; 8]));
    let attrs = vec![build::float("epsilon", 1e-8), build::float("momentum", 1.0), build::int("training_mode", 1)];
    b.node_n("BatchNormalization", &[&w, &ones, &zeros, &mean, &var], &["ws", "rm", "rv"], attrs);
    let shape = b.int_constant("wshape", &[4], &[8, 4, 3, 3]);
    b.node("Reshape", &["ws", &shape], "wk", vec![]);
    b.node("Conv", &["x", "wk"], "y", vec![build::ints("pads", &[1, 1, 1, 1])]);
    b.output("y");
    let p = model::prepare(&b.bytes(15), &[vec![1, 4, 6, 6]]).unwrap();
    assert_eq!(p.optimized.op_counts(), [("Conv", 1)]);
    // Each output channel's weights have mean 0 and variance 1 after standardisation.
    let x = input(&[1, 4, 6, 6]);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    check_plans(&p.optimized, &x, &expected, 1e-5);
}

/// Constant work is bounded by the folded constants alive at once, not by all ever made: a
/// chain of 17 steps on a weight of 2²² values (the largest folded; 17 of them would pass the
/// 2²⁶ budget) folds, each step's input dropped once read.
#[test]
fn a_long_chain_of_weight_sized_constant_steps_folds() {
    let mut b = Builder::new(&[1, 256, 8, 8]);
    let mut w = b.weight("w", &[256, 256, 8, 8]);
    let half = b.constant("half", &[], &[0.5]);
    for k in 0..17 {
        w = b.node("Mul", &[&w, &half], &format!("w{k}"), vec![]);
    }
    b.node("Conv", &["x", &w], "y", vec![]);
    b.output("y");
    let p = model::prepare(&b.bytes(13), &[vec![1, 256, 8, 8]]).unwrap();
    assert_eq!(p.optimized.op_counts(), [("Conv", 1)]);
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).unwrap();
    model::plan::build(&p.optimized, &*set).expect("a convolution with a folded weight");
}
