//! The real models (PP-OCRv4 detection at 640×640, the PP-OCR classifier at 48×192) on every
//! kernel set this host runs, the emulated AVX-512 and NEON geometries, against ONNX
//! Runtime's outputs and the float64 reference; plan files round-trip; threads do not change
//! results. Needs `ci/fetch-models.sh` (the README's test command runs it); without its
//! files these tests fail, they do not skip.

use std::sync::OnceLock;

use harness::model_parity::{compare, F32_BOUND};
use harness::models::selected;
use kernels::device::Precision;
use kernels::{KernelSet, KernelSetId};
use model::Tensor;

fn widen(t: &Tensor) -> Vec<f64> {
    t.floats().unwrap().iter().map(|&v| v as f64).collect()
}

/// Per model: the prepared graphs, ORT's input and outputs, and the float64 reference's
/// outputs (computed once per test process: the detection model's takes seconds).
struct Case {
    name: &'static str,
    prepared: model::Prepared,
    input: Tensor,
    ort: Vec<Tensor>,
    reference: Vec<Tensor<f64>>,
}

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        selected()
            .into_iter()
            .map(|m| {
                let prepared = model::prepare(&m.bytes().unwrap(), &[m.shape()]).unwrap();
                let (input, ort) = m.ort_case().unwrap();
                assert_eq!(input.shape, m.shape(), "{}: ORT input shape", m.name);
                let reference = model::reference::run(&prepared.specialized, &[input.to_f64()]).unwrap();
                assert_eq!(reference.len(), ort.len());
                Case { name: m.name, prepared, input, ort, reference }
            })
            .collect()
    })
}

#[test]
fn the_reference_matches_onnx_runtime() {
    for c in cases() {
        for (r, o) in c.reference.iter().zip(&c.ort) {
            let p = compare("reference vs ORT", &r.to_f32(), &widen(o), &o.shape, F32_BOUND);
            println!(
                "{:<32} float64 reference vs ORT {}: max rel err {:.2e}",
                c.name,
                harness::models::ORT_VERSION,
                p.max_rel_err
            );
            assert!(p.passed(), "{}: {:?}", c.name, p.failure);
        }
    }
}

/// Both models on `set` against ORT and the reference.
fn models_match_on(set: impl Fn() -> Box<dyn KernelSet>) {
    for c in cases() {
        let set = set();
        let name = set.info().name;
        let plan = model::plan::build(&c.prepared.optimized, &*set).unwrap();
        let outs = plan.session_on(set, 1).unwrap().run(std::slice::from_ref(&c.input)).unwrap();
        for ((y, r), o) in outs.iter().zip(&c.reference).zip(&c.ort) {
            let vs_ref = compare("plan vs reference", y, r.floats().unwrap(), &r.shape, F32_BOUND);
            let vs_ort = compare("plan vs ORT", y, &widen(o), &o.shape, F32_BOUND);
            println!(
                "{:<32} {name:<16} vs reference {:.2e}, vs ORT {:.2e} (bound {F32_BOUND:e})",
                c.name, vs_ref.max_rel_err, vs_ort.max_rel_err
            );
            assert!(vs_ref.passed(), "{} on {name} vs reference: {:?}", c.name, vs_ref.failure);
            assert!(vs_ort.passed(), "{} on {name} vs ORT: {:?}", c.name, vs_ort.failure);
        }
    }
}

fn set(id: KernelSetId) -> Box<dyn KernelSet> {
    kernels::kernel_set(id).unwrap()
}

#[test]
fn models_match_on_scalar() {
    models_match_on(|| set(KernelSetId::Scalar));
}

#[test]
#[cfg_attr(not(host_avx2), ignore = "skipped: this CPU lacks AVX2+FMA")]
fn models_match_on_avx2() {
    models_match_on(|| set(KernelSetId::Avx2));
}

#[test]
#[cfg_attr(
    not(host_avx512),
    ignore = "skipped: this CPU lacks AVX-512F and VL (models_match_on_emulated_avx512 runs its geometry)"
)]
fn models_match_on_avx512() {
    models_match_on(|| set(KernelSetId::Avx512));
}

#[cfg(target_arch = "aarch64")]
#[test]
fn models_match_on_neon() {
    models_match_on(|| set(KernelSetId::Neon));
}

/// Both models on device sessions of set `id` (plans built for the device), every step on the
/// device (one upload, one captured run, one download per output), in each of `precisions`
/// with its bound.
fn models_match_on_device(id: KernelSetId, precisions: &[(Precision, f64)]) {
    for c in cases() {
        let plan = model::plan::build_for_device(&c.prepared.optimized, &*set(id)).unwrap();
        for &(precision, bound) in precisions {
            let mut session = plan.device_session(precision).unwrap();
            // Twice: the first run captures the run, the second replays it.
            session.run(std::slice::from_ref(&c.input)).unwrap();
            let outs = session.run(std::slice::from_ref(&c.input)).unwrap();
            let (up, down) = session.transfers();
            println!(
                "{:<32} {id} device ({}) {precision:?}: host steps {:?}, graph {}",
                c.name,
                session.device().unwrap_or("none"),
                session.host_steps(),
                session.graph_error().map_or_else(|| "captured".to_owned(), ToString::to_string)
            );
            // Every step of these models has a device form: one upload, one download.
            assert!(session.whole_on_device(), "{}: steps on the host: {:?}", c.name, session.host_steps());
            assert_eq!((up, down), (1, outs.len()), "{}: host↔device copies per run", c.name);
            assert!(
                session.graph_error().is_none(),
                "{}: the run was not captured: {:?}",
                c.name,
                session.graph_error()
            );
            for ((y, r), o) in outs.iter().zip(&c.reference).zip(&c.ort) {
                let vs_ref = compare("device plan vs reference", y, r.floats().unwrap(), &r.shape, bound);
                let vs_ort = compare("device plan vs ORT", y, &widen(o), &o.shape, bound);
                println!(
                    "{:<32} {id} {precision:?} vs reference {:.2e}, vs ORT {:.2e} (bound {bound:e}; {up} uploads, {down} downloads)",
                    c.name, vs_ref.max_rel_err, vs_ort.max_rel_err
                );
                assert!(vs_ref.passed(), "{} on {id} {precision:?} vs reference: {:?}", c.name, vs_ref.failure);
                assert!(vs_ort.passed(), "{} on {id} {precision:?} vs ORT: {:?}", c.name, vs_ort.failure);
            }
            // The page-locked run: the same input written into the session's buffer, the same
            // values out (the same captured run; the output buffers hold zeros until this
            // first page-locked run) and one transfer each way.
            session.input_mut(0).unwrap().copy_from_slice(c.input.floats().unwrap());
            session.run_bound().unwrap();
            assert_eq!(session.transfers(), (1, outs.len()), "{}: page-locked run's copies", c.name);
            for (o, y) in outs.iter().enumerate() {
                let got = session.output(o).unwrap();
                assert_eq!(
                    got,
                    y.floats().unwrap(),
                    "{} {precision:?}: page-locked output {o} differs from run's",
                    c.name
                );
            }
        }
    }
}

/// Three sessions over one load of the weights, each with a workspace of its own, run at once
/// from three threads (page-locked I/O), each output equal to a lone session's, bit for bit.
fn sessions_sharing_weights_run_concurrently_on(id: KernelSetId, precisions: &[Precision]) {
    for c in cases() {
        let plan = model::plan::build_for_device(&c.prepared.optimized, &*set(id)).unwrap();
        for &precision in precisions {
            let expected = plan.device_session(precision).unwrap().run(std::slice::from_ref(&c.input)).unwrap();
            let weights = plan.device_weights(precision).unwrap();
            let mut sessions: Vec<_> = (0..3).map(|_| weights.session().unwrap()).collect();
            std::thread::scope(|scope| {
                for s in &mut sessions {
                    let input = c.input.floats().unwrap();
                    scope.spawn(move || {
                        s.input_mut(0).unwrap().copy_from_slice(input);
                        for _ in 0..3 {
                            s.run_bound().unwrap();
                        }
                    });
                }
            });
            for (k, s) in sessions.iter_mut().enumerate() {
                assert_eq!(s.transfers(), (1, expected.len()), "{} {precision:?} session {k}", c.name);
                for (o, y) in expected.iter().enumerate() {
                    let got = s.output(o).unwrap();
                    assert_eq!(got, y.floats().unwrap(), "{} {precision:?}: session {k} output {o}", c.name);
                }
            }
        }
    }
}

/// The device path on this host's fastest kernel set: handles into the memory plan's slots,
/// the operations on host buffers, one upload and one download, the captured run replayed.
#[test]
fn models_match_on_the_host_device() {
    models_match_on_device(kernels::host_kernel_sets().0[0].info().id, &[(Precision::F32, F32_BOUND)]);
}

#[test]
fn sessions_sharing_weights_run_concurrently_on_the_host_device() {
    sessions_sharing_weights_run_concurrently_on(kernels::host_kernel_sets().0[0].info().id, &[Precision::F32]);
}

/// Both models on the GPU in f32 (the f32 bound) and in f16 storage (a bound for 11-bit
/// storage).
#[cfg(feature = "cuda")]
#[test]
#[ignore = "skipped: no CUDA device (ci/gpu-check.sh runs it on a GPU machine)"]
fn models_match_on_cuda() {
    use harness::model_parity::F16_MODEL_BOUND;
    models_match_on_device(KernelSetId::Cuda, &[(Precision::F32, F32_BOUND), (Precision::F16, F16_MODEL_BOUND)]);
}

#[cfg(feature = "cuda")]
#[test]
#[ignore = "skipped: no CUDA device (ci/gpu-check.sh runs it on a GPU machine)"]
fn sessions_sharing_weights_run_concurrently_on_cuda() {
    sessions_sharing_weights_run_concurrently_on(KernelSetId::Cuda, &[Precision::F32, Precision::F16]);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn models_match_on_emulated_avx512() {
    models_match_on(|| kernels::emulated::avx512_geometry(None).unwrap());
}

#[cfg(target_arch = "x86_64")]
#[test]
fn models_match_on_emulated_neon() {
    models_match_on(|| kernels::emulated::neon_geometry(None).unwrap());
}

#[test]
fn optimised_graphs_compute_what_the_originals_compute() {
    for c in cases() {
        let (m, prepared) = (c, &c.prepared);
        let b = model::reference::run(&prepared.optimized, &[c.input.to_f64()]).unwrap();
        for (x, y) in c.reference.iter().zip(&b) {
            // Folded weights are rounded to float32 once: differences stay at float32 level.
            let p = compare("optimised vs original", &y.to_f32(), x.floats().unwrap(), &x.shape, F32_BOUND);
            println!("{:<32} {:?}: optimised vs original (float64) {:.2e}", m.name, prepared.rewrites, p.max_rel_err);
            assert!(p.passed(), "{}: {:?}", m.name, p.failure);
        }
        assert!(
            prepared.optimized.nodes.len() < prepared.specialized.nodes.len() / 2,
            "{}: the optimiser did little",
            m.name
        );
        // Every convolution absorbed its BatchNorm / affine / activation where one followed.
        let ops = prepared.optimized.op_counts();
        assert!(!ops.iter().any(|(op, _)| *op == "BatchNormalization"), "{}: {ops:?}", m.name);
    }
}

#[test]
fn plan_files_round_trip_and_threads_do_not_change_results() {
    let set = kernels::kernel_set(kernels::Target::host().kernel_set()).unwrap();
    for c in cases() {
        let (m, input) = (c, &c.input);
        let plan = model::plan::build(&c.prepared.optimized, &*set).unwrap();
        let one = plan.session(1).unwrap().run(std::slice::from_ref(input)).unwrap();
        let two = plan.session(2).unwrap().run(std::slice::from_ref(input)).unwrap();
        assert_eq!(one, two, "{}: 1 and 2 threads differ", m.name);
        let bytes = plan.to_bytes();
        let loaded = model::plan::Plan::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.steps, plan.steps);
        let again = loaded.session(1).unwrap().run(std::slice::from_ref(input)).unwrap();
        assert_eq!(one, again, "{}: the loaded plan computes differently", m.name);
        // A second run of the same session reuses its buffers and gives the same result.
        let mut s = loaded.session(1).unwrap();
        s.run(std::slice::from_ref(input)).unwrap();
        assert_eq!(s.run(std::slice::from_ref(input)).unwrap(), one, "{}: second run differs", m.name);
        // Truncated or edited files are errors, not panics.
        for cut in [0, 3, 8, 100, bytes.len() / 2, bytes.len() - 1] {
            assert!(model::plan::Plan::from_bytes(&bytes[..cut]).is_err(), "{}: truncated at {cut} loaded", m.name);
        }
        // A version this build does not read (a newer one, and one older than any it reads).
        for version in [u32::MAX, 1] {
            let mut edited = bytes.clone();
            edited[4..8].copy_from_slice(&version.to_le_bytes());
            let err = model::plan::Plan::from_bytes(&edited).expect_err("edited version loaded");
            assert!(err.to_string().contains("version"), "{}: {err}", m.name);
        }
        println!(
            "{:<32} plan {} bytes, {} steps, activations {:.1} MiB",
            m.name,
            bytes.len(),
            plan.steps.len(),
            plan.activation_bytes() as f64 / (1 << 20) as f64
        );
    }
}
