//! An inverted residual block's expansion (a pointwise convolution) and its depthwise
//! convolution run as one step where the expanded value is large, computing the same bits as
//! the two steps; a second reader of the expanded value, a small one, or a GPU plan keep
//! the two steps. Its plan file loads back and runs the same.

mod common;

use common::{check_plans, input, ops, Builder};
use model::Tensor;

/// `x: [2, 8, side, side]` → 1×1 to 128 channels + ReLU6 → depthwise 3×3 at `stride`, padded
/// 1, + ReLU → 1×1 to 8 channels. With `tap`, the expanded value is also an output.
fn block(side: usize, stride: i64, tap: bool) -> (model::Prepared, Vec<usize>) {
    let shape = vec![2, 8, side, side];
    let mut b = Builder::new(&shape);
    b.conv("x", 8, 128, 1, 0, "e");
    let (lo, hi) = (b.constant("lo", &[], &[0.0]), b.constant("hi", &[], &[6.0]));
    b.node("Clip", &["e", &lo, &hi], "e6", vec![]);
    let w = b.weight("d.w", &[128, 1, 3, 3]);
    let bias = b.weight("d.b", &[128]);
    let attrs = vec![
        onnx::build::ints("kernel_shape", &[3, 3]),
        onnx::build::ints("pads", &[1, 1, 1, 1]),
        onnx::build::ints("strides", &[stride, stride]),
        onnx::build::int("group", 128),
    ];
    b.node("Conv", &["e6", &w, &bias], "d", attrs);
    b.node("Relu", &["d"], "dr", vec![]);
    b.conv("dr", 128, 8, 1, 0, "y");
    b.output("y");
    if tap {
        b.output("e6");
    }
    (model::prepare(&b.bytes(13), std::slice::from_ref(&shape)).unwrap(), shape)
}

const FUSED: &str = "Conv+Clip>Conv+Relu";

#[test]
fn a_large_expansion_runs_fused_with_its_depthwise_convolution_and_the_same_bits() {
    // 128 channels of 48×48 floats: 1.2 MB per image.
    for stride in [1, 2] {
        let (fused, shape) = block(48, stride, false);
        let (unfused, _) = block(48, stride, true);
        let x = input(&shape);
        for set in kernels::host_kernel_sets().0 {
            let name = set.info().name;
            let a = model::plan::build(&fused.optimized, &*set).unwrap();
            let b = model::plan::build(&unfused.optimized, &*set).unwrap();
            assert!(!ops(&b).contains(&FUSED), "stride {stride}, {name}: a read expanded value fused: {:?}", ops(&b));
            if set.info().id == kernels::KernelSetId::Cuda {
                assert!(!ops(&a).contains(&FUSED), "the GPU executor has no fused step: {:?}", ops(&a));
                continue;
            }
            assert!(ops(&a).contains(&FUSED), "stride {stride}, {name}: {:?}", ops(&a));
            // The two convolutions' steps are gone (the tapped plan relayouts the tap too).
            assert_eq!(ops(&a), ["Relayout", FUSED, "Conv", "Relayout"], "stride {stride}, {name}");
            assert_eq!(ops(&b), ["Relayout", "Conv+Clip", "Conv+Relu", "Conv", "Relayout", "Relayout"], "{name}");
            // Without a buffer for the expanded value, the plan needs less memory.
            assert!(a.activation_bytes() < b.activation_bytes(), "stride {stride}, {name}");
            let a = model::plan::Plan::from_bytes(&a.to_bytes()).unwrap();
            for threads in [1, 2] {
                let ya = a.session(threads).unwrap().run(std::slice::from_ref(&x)).unwrap();
                let yb = b.session(threads).unwrap().run(std::slice::from_ref(&x)).unwrap();
                let bits = |t: &Tensor| t.floats().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert!(bits(&ya[0]) == bits(&yb[0]), "stride {stride}, {name}, {threads} threads");
            }
        }
        let expected = model::reference::run(&fused.specialized, &[x.to_f64()]).unwrap();
        check_plans(&fused.optimized, &x, &expected, 1e-5);
    }
}

#[test]
fn a_small_expansion_stays_two_steps() {
    // 128 channels of 24×24: 295 KB, which the caches hold between the two steps.
    let (p, _) = block(24, 1, false);
    for set in kernels::host_kernel_sets().0 {
        let plan = model::plan::build(&p.optimized, &*set).unwrap();
        assert!(!ops(&plan).contains(&FUSED), "{}: {:?}", set.info().name, ops(&plan));
    }
}
