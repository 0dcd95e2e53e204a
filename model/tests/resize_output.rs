//! A `Resize` that produces a model output (a segmentation model's upsampled logits) writes
//! NCHW itself instead of being followed by a relayout pass, and computes the same bits as
//! the resize-then-relayout it replaces, for linear and nearest modes, several images and
//! non-square sizes; its plan file loads back.

mod common;

use common::{check_plans, input, ops, Builder};
use model::Tensor;

/// A 1×1 convolution (6 → 5 channels), then a Resize by (2.5, 4) of `mode`; with `tap`, the
/// resized value also feeds a second output (a ReLU), so the relayout cannot be fused away.
fn conv_resize(mode: &str, tap: bool) -> (model::Prepared, Vec<usize>) {
    let shape = vec![2, 6, 6, 5];
    let mut b = Builder::new(&shape);
    b.conv("x", 6, 5, 1, 0, "c");
    let roi = b.constant("roi", &[0], &[]);
    let scales = b.constant("scales", &[4], &[1.0, 1.0, 2.5, 4.0]);
    let attrs =
        vec![onnx::build::string("mode", mode), onnx::build::string("coordinate_transformation_mode", "half_pixel")];
    b.node("Resize", &["c", &roi, &scales], "y", attrs);
    b.output("y");
    if tap {
        b.node("Relu", &["y"], "z", vec![]);
        b.output("z");
    }
    (model::prepare(&b.bytes(13), std::slice::from_ref(&shape)).unwrap(), shape)
}

#[test]
fn a_resized_output_is_written_nchw_without_a_relayout_and_matches_the_unfused_bits() {
    for mode in ["linear", "nearest"] {
        let (fused, shape) = conv_resize(mode, false);
        let (unfused, _) = conv_resize(mode, true);
        let x = input(&shape);
        for set in kernels::host_kernel_sets().0 {
            let a = model::plan::build(&fused.optimized, &*set).unwrap();
            let b = model::plan::build(&unfused.optimized, &*set).unwrap();
            assert!(ops(&a).contains(&"Resize+Relayout"), "{mode}, {}: {:?}", set.info().name, ops(&a));
            // The only relayout left is the input's (to NHWC); with a second reader the resize
            // stays NHWC and relayouts to NCHW follow it and the ReLU.
            let relayouts = |p: &model::plan::Plan| ops(p).iter().filter(|&&o| o == "Relayout").count();
            assert_eq!(relayouts(&a), 1, "{mode}, {}: {:?}", set.info().name, ops(&a));
            assert!(relayouts(&b) == 3 && ops(&b).contains(&"Resize"), "{mode}: {:?}", ops(&b));
            // The fusion leaves the NHWC intermediate without a buffer: the plan file still
            // loads back (its check once demanded a slot for every value) and runs the same.
            let a = model::plan::Plan::from_bytes(&a.to_bytes())
                .unwrap_or_else(|e| panic!("{mode}, {}: the plan file does not load back: {e}", set.info().name));
            for threads in [1, 2] {
                let ya = a.session(threads).unwrap().run(std::slice::from_ref(&x)).unwrap();
                let yb = b.session(threads).unwrap().run(std::slice::from_ref(&x)).unwrap();
                assert_eq!(ya[0].shape, vec![2, 5, 15, 20]);
                let bits = |t: &Tensor| t.floats().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert!(bits(&ya[0]) == bits(&yb[0]), "{mode}, {}, {threads} threads", set.info().name);
            }
        }
        let expected = model::reference::run(&fused.specialized, &[x.to_f64()]).unwrap();
        check_plans(&fused.optimized, &x, &expected, 1e-5);
    }
}
