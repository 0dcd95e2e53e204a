//! A squeeze-excitation block's per-channel `Mul` is folded into the pointwise convolution
//! that reads the gated tensor (the weights are scaled each run instead of the tensor) where
//! the weights are no larger than that tensor, on one image; it stays a step of its own on
//! small maps, on a batch, where the gated tensor has a second reader, and in GPU plans. The
//! fused plans match the float64 reference, give the same bits on one and two threads, and
//! load back from a plan file.

mod common;

use common::{check_plans, input, ops, Builder};

/// `x: [n, 8, side, side]` → 1×1 to 48 channels + ReLU (`e`) → the gate (global average pool,
/// 1×1 to 12 + ReLU, 1×1 to 48 + Sigmoid) → `e · gate` → 1×1 to `c_out` → `y`. With `tap`,
/// the gated value is also an output.
fn block(n: usize, side: usize, c_out: usize, tap: bool) -> (model::Prepared, Vec<usize>) {
    let shape = vec![n, 8, side, side];
    let mut b = Builder::new(&shape);
    b.squeeze_excitation();
    b.conv("gated", 48, c_out, 1, 0, "y");
    b.output("y");
    if tap {
        b.output("gated");
    }
    (model::prepare(&b.bytes(13), std::slice::from_ref(&shape)).unwrap(), shape)
}

const FUSED: &str = "Mul>Conv";

#[test]
fn a_gate_folds_into_the_projection_and_computes_the_reference() {
    // 16 output channels on 12×12: 16 ≤ 144.
    let (p, shape) = block(1, 12, 16, false);
    let x = input(&shape);
    for set in kernels::host_kernel_sets().0 {
        let name = set.info().name;
        let plan = model::plan::build(&p.optimized, &*set).unwrap();
        if set.info().id == kernels::KernelSetId::Cuda {
            assert!(!ops(&plan).contains(&FUSED), "the GPU executor has no gated step: {:?}", ops(&plan));
            continue;
        }
        assert!(ops(&plan).contains(&FUSED), "{name}: {:?}", ops(&plan));
        assert!(!ops(&plan).contains(&"Mul"), "{name}: the multiply is still a step: {:?}", ops(&plan));
        // Reloaded from its file, the plan still has the gate and runs the same bits.
        let back = model::plan::Plan::from_bytes(&plan.to_bytes()).unwrap();
        assert_eq!(ops(&back), ops(&plan), "{name}");
        for threads in [1, 2] {
            let a = plan.session(threads).unwrap().run(std::slice::from_ref(&x)).unwrap();
            let b = back.session(threads).unwrap().run(std::slice::from_ref(&x)).unwrap();
            let bits = |t: &model::Tensor| t.floats().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(bits(&a[0]) == bits(&b[0]), "{name}, {threads} threads: the reloaded plan differs");
        }
    }
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    check_plans(&p.optimized, &x, &expected, 1e-5);
}

#[test]
fn a_gate_stays_a_step_where_folding_does_not_pay_or_cannot_apply() {
    for (what, n, side, c_out, tap) in [
        ("weights larger than the map (64 outputs on 6x6)", 1, 6, 64, false),
        ("a batch of two (a gate per image)", 2, 12, 16, false),
        ("a second reader of the gated value", 1, 12, 16, true),
    ] {
        let (p, shape) = block(n, side, c_out, tap);
        for set in kernels::host_kernel_sets().0 {
            let plan = model::plan::build(&p.optimized, &*set).unwrap();
            assert!(!ops(&plan).contains(&FUSED), "{what}, {}: {:?}", set.info().name, ops(&plan));
            assert!(ops(&plan).contains(&"Mul"), "{what}, {}: {:?}", set.info().name, ops(&plan));
        }
        let x = input(&shape);
        let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
        check_plans(&p.optimized, &x, &expected, 1e-5);
    }
}
