//! The model zoo (`ci/fetch-zoo.sh`, manifest-driven): every model imports, plans at its
//! input shape and matches both the float64 reference and ONNX Runtime within the float32
//! bound on every CPU kernel set this host runs (scalar, AVX2, AVX-512; NEON when the suite
//! runs as aarch64 under qemu, on the `EDGEPACK_ZOO` subset ci/test-arm64.sh names). The
//! dynamic-H/W exports plan at the fixed shape; the detector's NonMaxSuppression output is
//! data-dependent and compared exactly. Reports: target/reports/zoo-<set>.{json,junit.xml}.
//! Without the zoo's files these tests fail, they do not skip.

use std::path::PathBuf;
use std::sync::OnceLock;

use harness::model_parity::{compare, write_json, write_junit, ModelParity, F32_BOUND};
use harness::zoo::ZooModel;
use kernels::{KernelSet, KernelSetId};
use model::Tensor;
use rayon::prelude::*;

struct Case {
    model: ZooModel,
    prepared: model::Prepared,
    input: Tensor,
    ort: Vec<Tensor>,
    reference: Vec<Tensor<f64>>,
}

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let models = harness::zoo::selected().unwrap();
        // The float64 references (when not cached yet) take most of the time: one model per core.
        models
            .into_par_iter()
            .map(|m| {
                let prepared = model::prepare(&m.bytes().unwrap(), std::slice::from_ref(&m.shape))
                    .unwrap_or_else(|e| panic!("{}: {e}", m.name));
                let (input, ort) = m.ort_case().unwrap();
                assert_eq!(input.shape, m.shape, "{}: ORT input shape", m.name);
                // Computed once and cached beside ORT's outputs (harness::zoo).
                let reference = m
                    .reference(|| {
                        model::reference::run(&prepared.specialized, &[input.to_f64()]).map_err(harness::Error::from)
                    })
                    .unwrap_or_else(|e| panic!("{}: reference: {e}", m.name));
                assert_eq!(reference.len(), ort.len(), "{}: output count", m.name);
                Case { model: m, prepared, input, ort, reference }
            })
            .collect()
    })
}

fn reports() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/reports")
}

#[test]
fn the_zoo_is_complete_and_its_dynamic_exports_are_dynamic() {
    let all = harness::zoo::all().unwrap();
    assert!(all.len() >= 15, "the zoo has {} models", all.len());
    for m in &all {
        let g = model::import(&m.bytes().unwrap()).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let declared = &g.declared[&g.inputs[0]];
        // Dynamic exports declare H and W symbolic; the others declare every dimension.
        let symbolic_hw = declared.len() == 4 && declared[2].is_none() && declared[3].is_none();
        assert_eq!(symbolic_hw, m.dynamic_hw, "{}: declared {declared:?}", m.name);
        println!("{:<26} {:>4} nodes  {:<12} {}", m.name, g.nodes.len(), m.source, m.about);
    }
}

#[test]
fn the_reference_matches_onnx_runtime() {
    for c in cases() {
        for (k, (r, o)) in c.reference.iter().zip(&c.ort).enumerate() {
            let p = compare(&format!("output {k}"), &r.to_f32(), &o.reals(), &o.shape, F32_BOUND);
            println!("{:<26} output {k}: float64 reference vs ORT max rel err {:.2e}", c.model.name, p.max_rel_err);
            assert!(p.passed(), "{} output {k}: {:?}", c.model.name, p.failure);
        }
    }
}

/// Every model on `set` against the reference and ORT; writes the set's reports.
fn zoo_matches_on(id: KernelSetId) {
    let set: Box<dyn KernelSet> = kernels::kernel_set(id).unwrap();
    let name = set.info().name;
    let mut runs = Vec::new();
    for c in cases() {
        let plan = model::plan::build(&c.prepared.optimized, &*set).unwrap_or_else(|e| panic!("{}: {e}", c.model.name));
        let outs = plan.session(1).unwrap().run(std::slice::from_ref(&c.input)).unwrap();
        let mut vs_ref = Vec::new();
        let mut vs_ort = Vec::new();
        for (k, ((y, r), o)) in outs.iter().zip(&c.reference).zip(&c.ort).enumerate() {
            vs_ref.push(compare(&format!("output {k}"), y, &r.reals(), &r.shape, F32_BOUND));
            vs_ort.push(compare(&format!("output {k}"), y, &o.reals(), &o.shape, F32_BOUND));
        }
        let worst = |v: &[harness::model_parity::OutputParity]| v.iter().map(|p| p.max_rel_err).fold(0.0, f64::max);
        let evals = plan.steps.iter().filter(|s| matches!(s.step, model::plan::Step::Eval { .. })).count();
        println!(
            "{:<26} {name:<8} vs reference {:.2e}, vs ORT {:.2e} (bound {F32_BOUND:e}); {} steps, {evals} evaluated",
            c.model.name,
            worst(&vs_ref),
            worst(&vs_ort),
            plan.steps.len()
        );
        for (against, outputs) in
            [("float64 reference", vs_ref), (format!("ONNX Runtime {}", harness::models::ORT_VERSION).as_str(), vs_ort)]
        {
            runs.push(ModelParity {
                model: c.model.name.clone(),
                shapes: vec![c.model.shape.clone()],
                kernel_set: name.to_string(),
                threads: 1,
                against: against.to_string(),
                outputs,
            });
        }
    }
    write_json(&reports().join(format!("zoo-{name}.json")), &runs).unwrap();
    write_junit(&reports().join(format!("zoo-{name}.junit.xml")), &runs).unwrap();
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{} vs {}: {:?}",
                r.model,
                r.against,
                r.outputs.iter().filter_map(|o| o.failure.clone()).collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(failed.is_empty(), "on {name}:\n{}", failed.join("\n"));
}

#[test]
fn zoo_matches_on_scalar() {
    zoo_matches_on(KernelSetId::Scalar);
}

#[test]
#[cfg_attr(not(host_avx2), ignore = "skipped: this CPU lacks AVX2+FMA")]
fn zoo_matches_on_avx2() {
    zoo_matches_on(KernelSetId::Avx2);
}

#[test]
#[cfg_attr(not(host_avx512), ignore = "skipped: this CPU lacks AVX-512F and VL")]
fn zoo_matches_on_avx512() {
    zoo_matches_on(KernelSetId::Avx512);
}

#[cfg(target_arch = "aarch64")]
#[test]
fn zoo_matches_on_neon() {
    zoo_matches_on(KernelSetId::Neon);
}

/// The zoo's CNN classifiers and segmenters, the vision transformer and the PP-OCRv4
/// recognizer, which run every step on a device.
const WHOLE_ON_DEVICE: [&str; 19] = [
    "resnet18",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_y_400mf",
    "shufflenet_v2",
    "squeezenet1_1",
    "densenet121",
    "convnext_tiny",
    "ghostnet",
    "deit_tiny",
    "mobileone_s0",
    "fastvit_t8",
    "deeplabv3_mobilenet",
    "deeplabv3_mobilenet_dyn",
    "lraspp_mobilenet",
    "lraspp_mobilenet_dyn",
    "unet_small",
    "ch_PP-OCRv4_rec_infer",
];

/// Every model on device sessions of this host's first kernel set (plans built for the device,
/// tensors in host buffers as handles into the memory plan's slots) against the reference and
/// ORT; the CNN classifiers and segmenters with every step on the device (one upload, one
/// download), the others with their host steps between device operations.
#[test]
fn zoo_matches_on_the_host_device() {
    let set = kernels::host_kernel_sets().0.remove(0);
    let name = set.info().name;
    let mut failed = Vec::new();
    for c in cases() {
        let m = &c.model.name;
        let plan = model::plan::build_for_device(&c.prepared.optimized, &*set).unwrap_or_else(|e| panic!("{m}: {e}"));
        let mut s = plan.device_session(kernels::device::Precision::F32).unwrap_or_else(|e| panic!("{m}: {e}"));
        let outs = s.run(std::slice::from_ref(&c.input)).unwrap_or_else(|e| panic!("{m}: {e}"));
        let mut worst = 0.0f64;
        for (k, ((y, r), o)) in outs.iter().zip(&c.reference).zip(&c.ort).enumerate() {
            for (against, want) in [("reference", r.reals()), ("ORT", o.reals())] {
                let p = compare(&format!("output {k}"), y, &want, &o.shape, F32_BOUND);
                worst = worst.max(p.max_rel_err);
                if let Some(f) = p.failure {
                    failed.push(format!("{m} output {k} vs {against}: {f}"));
                }
            }
        }
        let host = s.host_steps();
        println!(
            "{m:<26} {name} device: {} steps, {} on the host {:?}; transfers {:?}; worst {worst:.2e}",
            plan.steps.len(),
            host.len(),
            host.iter().take(4).collect::<Vec<_>>(),
            s.transfers()
        );
        if WHOLE_ON_DEVICE.contains(&m.as_str()) {
            if !s.whole_on_device() {
                failed.push(format!("{m}: steps on the host: {host:?}"));
            } else if s.transfers() != (1, outs.len()) {
                failed.push(format!("{m}: transfers {:?} for {} outputs", s.transfers(), outs.len()));
            }
        }
    }
    assert!(failed.is_empty(), "on {name} device sessions:\n{}", failed.join("\n"));
}
