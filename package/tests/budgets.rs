//! Issue 27, item 6: a model whose estimated peak memory is over the budget is refused at
//! import (ValidationException naming the figures, nothing stored) and fails its packaging
//! job with the figures when the budget shrank after import.

mod common;

use common::{settings, start, x86};
use package::contract::{InputSpec, ModelContract, OutputSpec};
use package::projects::ImportModel;
use package::{ErrorKind, Service, Settings};

fn contract() -> ModelContract {
    ModelContract {
        input: InputSpec { name: "x".into(), shape: vec![1, 3, 1, 1], scale: 1.0, mean: [0.0; 3], std: [1.0; 3] },
        output: OutputSpec::Classification { score_output: "y".into(), score_index: 0, threshold: 0.5 },
    }
}

fn import(svc: &Service, onnx: Vec<u8>, contract: ModelContract) -> package::Result<String> {
    let req = ImportModel { project_name: "p".into(), onnx, source: "test".into(), description: None, contract };
    svc.import_model(&req).map(|d| d.model.model_version)
}

#[test]
fn a_small_file_over_the_memory_budget_is_refused_at_import_with_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::open(dir.path(), Settings { memory_budget: Some(1 << 30), ..settings(dir.path()) }).unwrap();
    svc.create_project("p").unwrap();
    // 8 expansions to 8×3×1024×1024: 200 MB each in float64, summed at the end.
    let onnx = onnx::build::expand_chain(8, &[8, 3, 1024, 1024]);
    assert!(onnx.len() < 1024, "{} bytes", onnx.len());
    let e = import(&svc, onnx, contract()).expect_err("over the budget");
    assert_eq!(e.kind, ErrorKind::Validation, "{e}");
    for s in ["at input shape [1, 3, 1, 1]", "needs about", "float64 reference 1.7 GiB", "memory budget of 1.0 GiB"] {
        assert!(e.message.contains(s), "{s:?} in {e}");
    }
    assert!(svc.list_models("p", None, None).unwrap().models.is_empty(), "nothing stored");
    // Within the budget, the same shape of model imports.
    let small = onnx::build::expand_chain(2, &[1, 3, 8, 8]);
    import(&svc, small, contract()).expect("a small chain fits");
}

#[test]
fn a_job_over_the_budget_fails_with_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::open(dir.path(), settings(dir.path())).unwrap();
    svc.create_project("p").unwrap();
    let v = import(&svc, onnx::build::expand_chain(2, &[1, 3, 64, 64]), contract()).expect("fits the default budget");
    // The budget shrinks (another setting, a smaller machine) before the job runs.
    let svc = Service::open(dir.path(), Settings { memory_budget: Some(1 << 20), ..settings(dir.path()) }).unwrap();
    let job = svc.start_model_packaging_job(&start("p", &v, x86("core-avx2", "c"))).unwrap().job_name;
    svc.run_job("p", &job).unwrap();
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "FAILED");
    let m = d.job.status_message.unwrap();
    assert!(m.contains("needs about") && m.contains("memory budget of 1.0 MiB (the service's setting)"), "{m}");
}
