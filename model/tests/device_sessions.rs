//! Device sessions (`Plan::device_session`) on this host's kernel sets, whose device is host
//! memory: a plan built for the device runs every step there (one upload, the captured run,
//! one download), a CPU plan's own fusions run on the host between the device's operations,
//! both compute what the CPU session computes; host sessions refuse the device-only calls and
//! CPU sets refuse f16 storage, each with a message naming the problem.

mod common;

use common::{input, ops, rel_err, Builder};
use kernels::device::Precision;
use model::plan::{build, build_for_device};

/// A squeeze-excitation block (its `Mul` folds into the projection in CPU plans: a step only
/// the CPU executor has) with a residual add, a max pool and a resize after it.
fn block() -> (model::Prepared, Vec<usize>) {
    let shape = vec![1, 8, 12, 12];
    let mut b = Builder::new(&shape);
    b.squeeze_excitation();
    b.conv("gated", 48, 8, 1, 0, "p");
    b.node("Add", &["p", "x"], "r", vec![]);
    let pool = vec![onnx::build::ints("kernel_shape", &[2, 2]), onnx::build::ints("strides", &[2, 2])];
    b.node("MaxPool", &["r"], "m", pool);
    b.constant("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    b.node("Resize", &["m", "", "scales"], "y", vec![onnx::build::string("mode", "linear")]);
    b.output("y");
    (model::prepare(&b.bytes(13), std::slice::from_ref(&shape)).unwrap(), shape)
}

/// The gated projection with the residual add in its epilogue.
const GATED: &str = "Mul>Conv+Add";

fn cpu_sets() -> Vec<Box<dyn kernels::KernelSet>> {
    kernels::host_kernel_sets().0.into_iter().filter(|s| s.info().id != kernels::KernelSetId::Cuda).collect()
}

#[test]
fn a_plan_built_for_the_device_runs_whole_there_and_computes_what_the_cpu_computes() {
    let (p, shape) = block();
    let x = input(&shape);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    for set in cpu_sets() {
        let name = set.info().name;
        let plan = build_for_device(&p.optimized, &*set).unwrap();
        assert!(
            !ops(&plan).iter().any(|o| o.starts_with("Mul>")),
            "{name}: a CPU fusion in a device plan: {:?}",
            ops(&plan)
        );
        let mut s = plan.device_session(Precision::F32).unwrap();
        assert!(s.whole_on_device(), "{name}: host steps {:?}", s.host_steps());
        assert_eq!(s.device(), Some(format!("host {name}").as_str()));
        for run in 0..2 {
            let y = s.run(std::slice::from_ref(&x)).unwrap();
            assert_eq!(s.transfers(), (1, 1), "{name} run {run}: one upload, one download");
            assert!(s.graph_error().is_none(), "{name}: {:?}", s.graph_error());
            let err = rel_err(y[0].floats().unwrap(), expected[0].floats().unwrap());
            assert!(err < 1e-5, "{name} run {run}: max rel err {err:e} vs the reference");
            let cpu = plan.session(1).unwrap().run(std::slice::from_ref(&x)).unwrap();
            assert_eq!(y[0].shape, cpu[0].shape);
        }
        // The bound buffers: the same values out of the same captured run.
        let want = s.run(std::slice::from_ref(&x)).unwrap();
        s.input_mut(0).unwrap().copy_from_slice(x.floats().unwrap());
        s.run_bound().unwrap();
        assert_eq!(s.output(0).unwrap(), want[0].floats().unwrap(), "{name}: bound output");
        // A profile: one time per step, the same outputs.
        let mut times = vec![-1.0; plan.steps.len()];
        let (outs, phases) = s.run_device_profiled(std::slice::from_ref(&x), &mut times).unwrap();
        assert_eq!(outs[0].floats(), want[0].floats(), "{name}: profiled run");
        assert!(times.iter().all(|&t| t >= 0.0) && phases.iter().all(|&t| t >= 0.0), "{name}: {times:?}");
    }
}

#[test]
fn a_cpu_plans_own_fusions_run_on_the_host_between_device_operations() {
    let (p, shape) = block();
    let x = input(&shape);
    for set in cpu_sets() {
        let name = set.info().name;
        let plan = build(&p.optimized, &*set).unwrap();
        assert!(ops(&plan).contains(&GATED), "{name}: {:?}", ops(&plan));
        let cpu = plan.session(1).unwrap().run(std::slice::from_ref(&x)).unwrap();
        let mut s = plan.device_session(Precision::F32).unwrap();
        assert!(!s.whole_on_device());
        assert_eq!(s.host_steps(), [GATED], "{name}");
        let y = s.run(std::slice::from_ref(&x)).unwrap();
        // The gated projection's inputs come down, its output goes up: two of each way at
        // least, beside the input and the output.
        let (up, down) = s.transfers();
        assert!(up >= 2 && down >= 2, "{name}: {up} uploads, {down} downloads");
        let err =
            rel_err(y[0].floats().unwrap(), &cpu[0].floats().unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>());
        assert!(err < 1e-5, "{name}: max rel err {err:e} vs the CPU session");
        let e = s.run_bound().unwrap_err().to_string();
        assert!(e.contains("every step on the device") && e.contains("1 run on the host"), "{e}");
        assert!(s.input_mut(0).unwrap_err().to_string().contains("no bound input 0"));
    }
}

#[test]
fn host_sessions_and_f16_on_a_cpu_set_are_refused_by_name() {
    let (p, shape) = block();
    let x = input(&shape);
    let set = &cpu_sets()[0];
    let plan = build(&p.optimized, &**set).unwrap();
    let mut s = plan.session(1).unwrap();
    s.run(std::slice::from_ref(&x)).unwrap();
    assert_eq!((s.transfers(), s.whole_on_device(), s.device()), ((0, 0), false, None));
    for e in [
        s.input_mut(0).unwrap_err().to_string(),
        s.run_bound().unwrap_err().to_string(),
        s.run_device_profiled(std::slice::from_ref(&x), &mut []).unwrap_err().to_string(),
    ] {
        assert!(e.contains("keeps its tensors on the host"), "{e}");
    }
    let e = plan.device_session(Precision::F16).err().expect("f16 on a CPU set").to_string();
    assert!(e.contains("f32 only") && e.contains("F16"), "{e}");
    let mut d = plan.device_session(Precision::F32).unwrap();
    let e = d.run_profiled(std::slice::from_ref(&x), &mut []).unwrap_err().to_string();
    assert!(e.contains("run_device_profiled"), "{e}");
}

/// Attention's shape: `x` `[2, 6, 8]`, scores `x · xᵀ` (a product of two run-time values),
/// softmax along the rows, `· x`, then a layer norm: every step on the device.
#[test]
fn products_of_two_values_and_layer_norms_run_on_the_device() {
    let shape = vec![2, 6, 8];
    let mut b = Builder::new(&shape);
    b.node("Transpose", &["x"], "xt", vec![onnx::build::ints("perm", &[0, 2, 1])]);
    b.node("MatMul", &["x", "xt"], "s", vec![]);
    b.node("Softmax", &["s"], "p", vec![onnx::build::int("axis", -1)]);
    b.node("MatMul", &["p", "x"], "o", vec![]);
    b.weight("gamma", &[8]);
    b.weight("beta", &[8]);
    b.node("LayerNormalization", &["o", "gamma", "beta"], "y", vec![onnx::build::float("epsilon", 1e-5)]);
    b.output("y");
    let p = model::prepare(&b.bytes(17), std::slice::from_ref(&shape)).unwrap();
    let x = input(&shape);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    for set in cpu_sets() {
        let name = set.info().name;
        let plan = build_for_device(&p.optimized, &*set).unwrap();
        let kinds = ops(&plan);
        assert!(kinds.contains(&"MatMul") && kinds.contains(&"LayerNormalization"), "{name}: {kinds:?}");
        let mut s = plan.device_session(Precision::F32).unwrap();
        assert!(s.whole_on_device(), "{name}: host steps {:?}", s.host_steps());
        let y = s.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(s.transfers(), (1, 1));
        let err = rel_err(y[0].floats().unwrap(), expected[0].floats().unwrap());
        assert!(err < 1e-5, "{name}: max rel err {err:e} vs the reference");
    }
}
