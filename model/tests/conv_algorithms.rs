//! Which algorithm a convolution plans as, from its attributes and input size: a 3×3
//! stride-1 convolution on a large enough map runs as Winograd F(4×4, 3×3) on the CPU sets,
//! and computes what the float64 reference computes; on a small map it stays a direct GEMM. A
//! grouped convolution with groups narrower than the set's tile runs the direct grouped kernel.

mod common;

use common::{check_plans, input, Builder};
use kernels::{ConvAlgorithm, KernelSetId};

/// A 3×3 convolution (16 → 24 channels, padded) with a ReLU, on `side × side` images.
fn conv_relu(side: usize) -> (model::Prepared, Vec<usize>) {
    let shape = vec![1, 16, side, side];
    let mut b = Builder::new(&shape);
    b.conv("x", 16, 24, 3, 1, "c");
    b.node("Relu", &["c"], "y", vec![]);
    b.output("y");
    (model::prepare(&b.bytes(13), std::slice::from_ref(&shape)).unwrap(), shape)
}

/// The plan of `p`'s one convolution on `set` runs `want`, and its step is labelled `label`
/// exactly when `want` is the algorithm `labelled`.
fn assert_plans_as(
    p: &model::Prepared,
    set: &dyn kernels::KernelSet,
    want: ConvAlgorithm,
    labelled: ConvAlgorithm,
    label: &str,
) {
    let plan = model::plan::build(&p.optimized, set).unwrap();
    assert_eq!(plan.convs.len(), 1);
    assert_eq!(plan.convs[0].algorithm(), want, "{}", set.info().name);
    let conv = plan.steps.iter().find(|s| s.op.starts_with("Conv")).expect("a convolution step");
    assert_eq!(conv.op.contains(label), want == labelled, "{}: {}", set.info().name, conv.op);
}

#[test]
fn a_3x3_convolution_on_a_large_map_plans_as_winograd_and_matches_the_reference() {
    let (p, shape) = conv_relu(30);
    for set in kernels::host_kernel_sets().0 {
        let want =
            if set.info().id == KernelSetId::Cuda { ConvAlgorithm::ImplicitGemm } else { ConvAlgorithm::Winograd };
        assert_plans_as(&p, &*set, want, ConvAlgorithm::Winograd, "Winograd");
    }
    let x = input(&shape);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    // Norm-wise: the transforms cost a few bits against the direct sum (see the kernel suite).
    check_plans(&p.optimized, &x, &expected, 1e-5);
}

#[test]
fn a_3x3_convolution_on_a_small_map_stays_a_direct_gemm() {
    let (p, _) = conv_relu(8);
    for set in kernels::host_kernel_sets().0 {
        let plan = model::plan::build(&p.optimized, &*set).unwrap();
        assert_eq!(plan.convs[0].algorithm(), ConvAlgorithm::ImplicitGemm, "{}", set.info().name);
    }
}

#[test]
fn a_grouped_convolution_with_narrow_groups_plans_as_the_direct_kernel_and_matches_the_reference() {
    // RegNet's shape: groups of 8 channels, stride 2, with the block's ReLU.
    let shape = vec![1, 48, 15, 15];
    let mut b = Builder::new(&shape);
    let w = b.weight("g.w", &[48, 8, 3, 3]);
    let bias = b.weight("g.b", &[48]);
    let attrs = vec![
        onnx::build::ints("kernel_shape", &[3, 3]),
        onnx::build::ints("pads", &[1, 1, 1, 1]),
        onnx::build::ints("strides", &[2, 2]),
        onnx::build::int("group", 6),
    ];
    b.node("Conv", &["x", &w, &bias], "c", attrs);
    b.node("Relu", &["c"], "y", vec![]);
    b.output("y");
    let p = model::prepare(&b.bytes(13), std::slice::from_ref(&shape)).unwrap();
    for set in kernels::host_kernel_sets().0 {
        // Groups of 8 are narrower than every SIMD set's tile (the scalar set's is 8 wide).
        let direct = set.info().id != KernelSetId::Cuda && 8 < set.info().nr;
        let want = if direct { ConvAlgorithm::Grouped } else { ConvAlgorithm::ImplicitGemm };
        assert_plans_as(&p, &*set, want, ConvAlgorithm::Grouped, "Grouped");
    }
    let x = input(&shape);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    check_plans(&p.optimized, &x, &expected, 1e-5);
}
