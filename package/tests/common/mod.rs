//! Helpers shared by the packaging tests.
#![allow(dead_code)]

use std::time::Duration;

use package::contract::ModelContract;
use package::projects::ImportModel;
use package::sample::{sample_contract, sample_model, SampleKind};
use package::shapes::{
    GreengrassConfiguration, ModelPackagingConfiguration, S3Location, StartModelPackagingJobRequest, TargetPlatform,
};
use package::{Runner, Service, Settings};

/// Agent builds for the packaging tests (`<dir>/agent-builds/<arch>/edgepack-agent`): the
/// jobs publish them as the agent component's artifact. Their bytes are a marker, not a
/// program: the agent crate's tests publish and run the real binary.
pub fn agent_builds(dir: &std::path::Path) -> std::path::PathBuf {
    let builds = dir.join("agent-builds");
    for arch in ["x86_64", "aarch64"] {
        std::fs::create_dir_all(builds.join(arch)).expect("agent builds folder");
        std::fs::write(builds.join(arch).join("edgepack-agent"), format!("edgepack-agent for {arch} (test marker)"))
            .expect("agent build");
    }
    builds
}

/// Settings of a service in `dir` whose jobs the test runs itself.
pub fn settings(dir: &std::path::Path) -> Settings {
    Settings { runner: Runner::Manual, agent_dir: Some(agent_builds(dir)), ..Settings::default() }
}

/// A service in a fresh temporary folder whose jobs the test runs itself.
pub fn service() -> (tempfile::TempDir, Service) {
    let dir = tempfile::tempdir().expect("temp dir");
    let svc = Service::open(dir.path(), settings(dir.path())).expect("open");
    (dir, svc)
}

/// Reopens the service in `dir` with `stale_after` (a restart).
pub fn reopen(dir: &tempfile::TempDir, stale_after: Duration) -> Service {
    Service::open(dir.path(), Settings { stale_after, ..settings(dir.path()) }).expect("reopen")
}

/// Project `p` with the sample segmentation model (32×32) as version 1.
pub fn project_with_sample(svc: &Service, p: &str) {
    svc.create_project(p).expect("create project");
    import_sample(svc, p, SampleKind::Segmentation, 32, 32);
}

/// Imports a sample model into `p`.
pub fn import_sample(svc: &Service, p: &str, kind: SampleKind, h: usize, w: usize) -> String {
    import(svc, p, sample_model(kind, h, w), sample_contract(kind, h, w))
}

/// Imports `onnx` with `contract` into `p`; returns the version.
pub fn import(svc: &Service, p: &str, onnx: Vec<u8>, contract: ModelContract) -> String {
    svc.import_model(&ImportModel { project_name: p.into(), onnx, source: "test".into(), description: None, contract })
        .expect("import")
        .model
        .model_version
}

/// A Greengrass configuration for an X86_64 CPU with `mcpu`.
pub fn x86(mcpu: &str, component: &str) -> GreengrassConfiguration {
    GreengrassConfiguration {
        compiler_options: Some(format!("{{\"mcpu\": \"{mcpu}\"}}")),
        target_device: None,
        target_platform: Some(TargetPlatform {
            os: Some("LINUX".into()),
            arch: Some("X86_64".into()),
            accelerator: None,
        }),
        s3_output_location: Some(S3Location { bucket: Some("components".into()), prefix: Some("factory".into()) }),
        component_name: Some(component.into()),
        component_version: None,
        component_description: None,
        tags: None,
    }
}

/// A start request of model version `v` of `p` with `gg`.
pub fn start(p: &str, v: &str, gg: GreengrassConfiguration) -> StartModelPackagingJobRequest {
    StartModelPackagingJobRequest {
        project_name: Some(p.into()),
        model_version: Some(v.into()),
        configuration: Some(ModelPackagingConfiguration { greengrass: Some(gg) }),
        ..Default::default()
    }
}
