//! Every constraint of the API model and every prose rule, one case per rule and per
//! boundary: the request is refused with the right exception and a message naming the field,
//! and the boundary value just inside is accepted.

mod common;

use common::{project_with_sample, service, start, x86};
use package::shapes::{S3Location, StartModelPackagingJobRequest, Tag, TargetPlatform};
use package::{ErrorKind, Service};

type Edit = fn(&mut StartModelPackagingJobRequest);

fn gg(r: &mut StartModelPackagingJobRequest) -> &mut package::shapes::GreengrassConfiguration {
    r.configuration.as_mut().unwrap().greengrass.as_mut().unwrap()
}

fn s(n: usize, c: char) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// (case, edit, the text the error must contain): each must be a ValidationException.
fn invalid_cases() -> Vec<(&'static str, Edit, &'static str)> {
    vec![
        ("ProjectName missing", |r| r.project_name = None, "'ProjectName' failed to satisfy constraint: Member must not be null"),
        ("ProjectName empty", |r| r.project_name = Some(String::new()), "at 'ProjectName' failed to satisfy constraint: Member must have length greater than or equal to 1"),
        ("ProjectName 256 chars", |r| r.project_name = Some(s(256, 'p')), "at 'ProjectName' failed to satisfy constraint: Member must have length less than or equal to 255"),
        ("ProjectName starts with -", |r| r.project_name = Some("-p".into()), "at 'ProjectName' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        ("ModelVersion missing", |r| r.model_version = None, "'ModelVersion' failed to satisfy constraint: Member must not be null"),
        ("ModelVersion 0", |r| r.model_version = Some("0".into()), "at 'ModelVersion'"),
        ("ModelVersion 01", |r| r.model_version = Some("01".into()), "at 'ModelVersion'"),
        ("ModelVersion LATEST", |r| r.model_version = Some("LATEST".into()), "at 'ModelVersion'"),
        ("ModelVersion 11 digits", |r| r.model_version = Some("12345678901".into()), "Member must have length less than or equal to 10"),
        ("JobName empty", |r| r.job_name = Some(String::new()), "at 'JobName' failed to satisfy constraint: Member must have length greater than or equal to 1"),
        ("JobName 65 chars", |r| r.job_name = Some(s(65, 'j')), "at 'JobName' failed to satisfy constraint: Member must have length less than or equal to 64"),
        ("JobName with _", |r| r.job_name = Some("my_job".into()), "at 'JobName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-]+"),
        ("Description empty", |r| r.description = Some(String::new()), "at 'Description'"),
        ("Description 257 chars", |r| r.description = Some(s(257, 'd')), "at 'Description' failed to satisfy constraint: Member must have length less than or equal to 256"),
        ("Description with !", |r| r.description = Some("great!".into()), "at 'Description' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        ("ClientToken 65 chars", |r| r.client_token = Some(s(65, 't')), "at 'ClientToken'"),
        ("ClientToken with space", |r| r.client_token = Some("a b".into()), "at 'ClientToken' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        ("Configuration missing", |r| r.configuration = None, "at 'Configuration' failed to satisfy constraint: Member must not be null"),
        ("Greengrass missing", |r| r.configuration.as_mut().unwrap().greengrass = None, "at 'Configuration.Greengrass' failed"),
        ("CompilerOptions 2 chars", |r| gg(r).compiler_options = Some("{}".into()), "at 'Configuration.Greengrass.CompilerOptions' failed to satisfy constraint: Member must have length greater than or equal to 3"),
        ("CompilerOptions 1025 chars", |r| gg(r).compiler_options = Some(s(1025, ' ')), "Member must have length less than or equal to 1024"),
        ("CompilerOptions not JSON", |r| gg(r).compiler_options = Some("mcpu=skylake".into()), "Configuration.Greengrass.CompilerOptions"),
        ("CompilerOptions unknown mcpu", |r| gg(r).compiler_options = Some(r#"{"mcpu": "pentium2"}"#.into()), "pentium2"),
        ("CompilerOptions unknown key", |r| gg(r).compiler_options = Some(r#"{"opt": "3"}"#.into()), "opt"),
        ("TargetDevice unknown", |r| { gg(r).target_platform = None; gg(r).compiler_options = None; gg(r).target_device = Some("jetson_nano".into()) }, "at 'Configuration.Greengrass.TargetDevice' failed to satisfy constraint: Member must satisfy enum value set: [jetson_xavier]"),
        ("TargetDevice and TargetPlatform", |r| gg(r).target_device = Some("jetson_xavier".into()), "TargetDevice and TargetPlatform are mutually exclusive"),
        ("neither TargetDevice nor TargetPlatform", |r| { gg(r).target_platform = None; gg(r).compiler_options = None }, "specify TargetDevice or TargetPlatform"),
        ("CompilerOptions with TargetDevice", |r| { gg(r).target_platform = None; gg(r).target_device = Some("jetson_xavier".into()) }, "CompilerOptions cannot be specified with TargetDevice"),
        ("Os missing", |r| gg(r).target_platform.as_mut().unwrap().os = None, "at 'Configuration.Greengrass.TargetPlatform.Os' failed to satisfy constraint: Member must not be null"),
        ("Os WINDOWS", |r| gg(r).target_platform.as_mut().unwrap().os = Some("WINDOWS".into()), "Member must satisfy enum value set: [LINUX]"),
        ("Arch missing", |r| gg(r).target_platform.as_mut().unwrap().arch = None, "at 'Configuration.Greengrass.TargetPlatform.Arch' failed"),
        ("Arch RISCV", |r| gg(r).target_platform.as_mut().unwrap().arch = Some("RISCV".into()), "Member must satisfy enum value set: [ARM64, X86_64]"),
        ("Accelerator TPU", |r| gg(r).target_platform.as_mut().unwrap().accelerator = Some("TPU".into()), "Member must satisfy enum value set: [NVIDIA]"),
        ("NVIDIA without gpu-code", |r| { gg(r).target_platform.as_mut().unwrap().accelerator = Some("NVIDIA".into()); gg(r).compiler_options = Some(r#"{"trt-ver": "8.2.1", "cuda-ver": "10.2"}"#.into()) }, "missing: gpu-code"),
        ("NVIDIA without trt-ver", |r| { gg(r).target_platform.as_mut().unwrap().accelerator = Some("NVIDIA".into()); gg(r).compiler_options = Some(r#"{"gpu-code": "sm_75", "cuda-ver": "10.2"}"#.into()) }, "missing: trt-ver"),
        ("NVIDIA without cuda-ver", |r| { gg(r).target_platform.as_mut().unwrap().accelerator = Some("NVIDIA".into()); gg(r).compiler_options = Some(r#"{"gpu-code": "sm_75", "trt-ver": "8.2.1"}"#.into()) }, "missing: cuda-ver"),
        ("NVIDIA without compiler options", |r| { gg(r).target_platform.as_mut().unwrap().accelerator = Some("NVIDIA".into()); gg(r).compiler_options = None }, "missing: gpu-code, trt-ver, cuda-ver"),
        ("NVIDIA bad trt-ver", |r| { gg(r).target_platform.as_mut().unwrap().accelerator = Some("NVIDIA".into()); gg(r).compiler_options = Some(r#"{"gpu-code": "sm_75", "trt-ver": "8.2", "cuda-ver": "10.2"}"#.into()) }, "trt-ver"),
        ("NVIDIA unknown gpu-code", |r| { gg(r).target_platform.as_mut().unwrap().accelerator = Some("NVIDIA".into()); gg(r).compiler_options = Some(r#"{"gpu-code": "sm_50", "trt-ver": "8.2.1", "cuda-ver": "10.2"}"#.into()) }, "sm_50"),
        ("gpu-code without NVIDIA", |r| gg(r).compiler_options = Some(r#"{"gpu-code": "sm_75"}"#.into()), "gpu-code"),
        ("S3OutputLocation missing", |r| gg(r).s3_output_location = None, "at 'Configuration.Greengrass.S3OutputLocation' failed to satisfy constraint: Member must not be null"),
        ("Bucket missing", |r| gg(r).s3_output_location = Some(S3Location { bucket: None, prefix: None }), "at 'Configuration.Greengrass.S3OutputLocation.Bucket' failed to satisfy constraint: Member must not be null"),
        ("Bucket 2 chars", |r| gg(r).s3_output_location.as_mut().unwrap().bucket = Some("ab".into()), "Member must have length greater than or equal to 3"),
        ("Bucket 64 chars", |r| gg(r).s3_output_location.as_mut().unwrap().bucket = Some(s(64, 'b')), "Member must have length less than or equal to 63"),
        ("Bucket with /", |r| gg(r).s3_output_location.as_mut().unwrap().bucket = Some("a/b".into()), "S3OutputLocation.Bucket' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        ("Prefix starting with /", |r| gg(r).s3_output_location.as_mut().unwrap().prefix = Some("/abs".into()), "S3OutputLocation.Prefix"),
        ("Prefix 1025 chars", |r| gg(r).s3_output_location.as_mut().unwrap().prefix = Some(s(1025, 'x')), "Member must have length less than or equal to 1024"),
        ("ComponentName missing", |r| gg(r).component_name = None, "at 'Configuration.Greengrass.ComponentName' failed to satisfy constraint: Member must not be null"),
        ("ComponentName 129 chars", |r| gg(r).component_name = Some(s(129, 'c')), "Member must have length less than or equal to 128"),
        ("ComponentName with space", |r| gg(r).component_name = Some("my component".into()), "ComponentName' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        ("ComponentVersion 1.0", |r| gg(r).component_version = Some("1.0".into()), "ComponentVersion' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        ("ComponentVersion 7-digit part", |r| gg(r).component_version = Some("1234567.0.0".into()), "ComponentVersion"),
        ("ComponentDescription empty", |r| gg(r).component_description = Some(String::new()), "ComponentDescription"),
        ("ComponentDescription 257 chars", |r| gg(r).component_description = Some(s(257, 'x')), "ComponentDescription' failed to satisfy constraint: Member must have length less than or equal to 256"),
        ("201 tags", |r| gg(r).tags = Some((0..201).map(|i| Tag { key: Some(format!("k{i}")), value: Some("v".into()) }).collect()), "Tags' failed to satisfy constraint: Member must have length less than or equal to 200"),
        ("tag key empty", |r| gg(r).tags = Some(vec![Tag { key: Some(String::new()), value: Some("v".into()) }]), "Tags.1.Key"),
        ("tag key 129 chars", |r| gg(r).tags = Some(vec![Tag { key: Some(s(129, 'k')), value: Some("v".into()) }]), "Tags.1.Key' failed to satisfy constraint: Member must have length less than or equal to 128"),
        ("tag key with #", |r| gg(r).tags = Some(vec![Tag { key: Some("a#b".into()), value: Some("v".into()) }]), "Tags.1.Key' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        ("tag value missing", |r| gg(r).tags = Some(vec![Tag { key: Some("k".into()), value: None }]), "Tags.1.Value' failed to satisfy constraint: Member must not be null"),
        ("tag value 257 chars", |r| gg(r).tags = Some(vec![Tag { key: Some("k".into()), value: Some(s(257, 'v')) }]), "Tags.1.Value' failed to satisfy constraint: Member must have length less than or equal to 256"),
        ("duplicate tag keys", |r| gg(r).tags = Some(vec![Tag { key: Some("k".into()), value: Some("a".into()) }, Tag { key: Some("k".into()), value: Some("b".into()) }]), "duplicate tag key 'k'"),
    ]
}

/// Boundary values just inside each limit: all accepted.
fn valid_cases() -> Vec<(&'static str, Edit)> {
    vec![
        ("ProjectName 255 chars is the limit (the project does not exist: not found, not invalid)", |r| {
            r.project_name = Some(s(255, 'p'))
        }),
        ("JobName 64 chars", |r| r.job_name = Some(s(64, 'j'))),
        ("Description 256 chars", |r| r.description = Some(s(256, 'd'))),
        ("ClientToken 64 chars", |r| r.client_token = Some(s(64, 't'))),
        ("CompilerOptions in single quotes", |r| gg(r).compiler_options = Some("{'mcpu': 'skylake-avx512'}".into())),
        ("Bucket 63 chars", |r| gg(r).s3_output_location.as_mut().unwrap().bucket = Some(s(63, 'b'))),
        ("Prefix empty", |r| gg(r).s3_output_location.as_mut().unwrap().prefix = Some(String::new())),
        ("ComponentName 128 chars", |r| gg(r).component_name = Some(s(128, 'c'))),
        ("ComponentVersion 6-digit parts", |r| gg(r).component_version = Some("123456.0.999999".into())),
        ("200 tags, value empty", |r| {
            gg(r).tags =
                Some((0..200).map(|i| Tag { key: Some(format!("k{i}")), value: Some(String::new()) }).collect())
        }),
        ("tag key 128 chars, unicode letters", |r| {
            gg(r).tags = Some(vec![Tag { key: Some(s(128, 'é')), value: Some("Größe 1".into()) }])
        }),
        ("TargetDevice alone", |r| {
            gg(r).target_platform = None;
            gg(r).compiler_options = None;
            gg(r).target_device = Some("jetson_xavier".into())
        }),
        ("NVIDIA with all options", |r| {
            gg(r).target_platform = Some(TargetPlatform {
                os: Some("LINUX".into()),
                arch: Some("X86_64".into()),
                accelerator: Some("NVIDIA".into()),
            });
            gg(r).compiler_options = Some(r#"{"gpu-code": "sm_80", "trt-ver": "8.2.1", "cuda-ver": "11.4"}"#.into())
        }),
        ("ModelVersion latest", |r| r.model_version = Some("latest".into())),
    ]
}

fn base() -> StartModelPackagingJobRequest {
    start("p", "1", x86("core-avx2", "comp"))
}

fn setup() -> (tempfile::TempDir, Service) {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    (dir, svc)
}

#[test]
fn each_rule_and_boundary_is_a_validation_error_naming_the_field() {
    let (_dir, svc) = setup();
    let mut failures = Vec::new();
    for (case, edit, expected) in invalid_cases() {
        let mut r = base();
        edit(&mut r);
        match svc.start_model_packaging_job(&r) {
            Err(e) if e.kind == ErrorKind::Validation && e.message.contains(expected) => {}
            other => {
                failures.push(format!("{case}: expected ValidationException containing {expected:?}, got {other:?}"))
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let jobs = svc.list_model_packaging_jobs("p", None, None).unwrap().model_packaging_jobs;
    assert!(jobs.is_empty(), "no invalid request made a job");
}

#[test]
fn values_just_inside_each_limit_are_accepted() {
    let (_dir, svc) = setup();
    for (i, (case, edit)) in valid_cases().into_iter().enumerate() {
        let mut r = base();
        gg(&mut r).component_version = Some(format!("1.0.{i}"));
        edit(&mut r);
        match svc.start_model_packaging_job(&r) {
            Ok(_) => {}
            Err(e) if case.starts_with("ProjectName 255") => {
                assert_eq!(e.kind, ErrorKind::ResourceNotFound, "{case}: {e}")
            }
            Err(e) => panic!("{case}: {e}"),
        }
    }
}

#[test]
fn several_violations_are_reported_together() {
    let (_dir, svc) = setup();
    let mut r = base();
    r.job_name = Some("bad_name".into());
    gg(&mut r).component_name = None;
    let e = svc.start_model_packaging_job(&r).unwrap_err();
    assert!(e.message.starts_with("2 validation errors detected:"), "{e}");
    assert!(e.message.contains("JobName") && e.message.contains("ComponentName"), "{e}");
}

#[test]
fn unknown_resources_are_not_found_and_reuse_is_a_conflict() {
    let (_dir, svc) = setup();
    let e = svc.start_model_packaging_job(&start("nope", "1", x86("core-avx2", "c"))).unwrap_err();
    assert_eq!((e.kind, e.resource_id.as_deref()), (ErrorKind::ResourceNotFound, Some("nope")), "{e}");
    let e = svc.start_model_packaging_job(&start("p", "7", x86("core-avx2", "c"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceNotFound, "{e}");
    assert!(e.message.contains("model version '7'"), "{e}");
    let e = svc.describe_model_packaging_job("p", "missing-job").unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceNotFound, "{e}");

    let mut r = base();
    r.job_name = Some("job-1".into());
    svc.start_model_packaging_job(&r).unwrap();
    // The same job name again (no client token): conflict.
    gg(&mut r).component_version = Some("9.9.9".into());
    let e = svc.start_model_packaging_job(&r).unwrap_err();
    assert_eq!((e.kind, e.resource_id.as_deref()), (ErrorKind::Conflict, Some("job-1")), "{e}");
    // The same component name + version (1.0.0 by default) under another job name.
    let e = svc.start_model_packaging_job(&base()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(e.message.contains("comp") && e.message.contains("1.0.0") && e.message.contains("cannot be reused"), "{e}");
}

#[test]
fn list_paging_follows_max_results_and_next_token() {
    let (_dir, svc) = setup();
    for i in 0..5 {
        let mut r = base();
        gg(&mut r).component_version = Some(format!("1.0.{i}"));
        r.job_name = Some(format!("job-{i}"));
        svc.start_model_packaging_job(&r).unwrap();
    }
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = svc.list_model_packaging_jobs("p", token.as_deref(), Some(2)).unwrap();
        assert!(page.model_packaging_jobs.len() <= 2);
        names.extend(page.model_packaging_jobs.into_iter().map(|j| j.job_name));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["job-4", "job-3", "job-2", "job-1", "job-0"], "newest first, each once");
    for (max, ok) in [(0, false), (1, true), (100, true), (101, false)] {
        let r = svc.list_model_packaging_jobs("p", None, Some(max));
        assert_eq!(r.is_ok(), ok, "MaxResults {max}: {r:?}");
        if let Err(e) = r {
            assert!(e.kind == ErrorKind::Validation && e.message.contains("MaxResults"), "{e}");
        }
    }
    let e = svc.list_model_packaging_jobs("p", Some("bm90IGEgdG9rZW4="), None).unwrap_err();
    assert!(e.kind == ErrorKind::Validation && e.message.contains("NextToken"), "{e}");
    let e = svc.list_model_packaging_jobs("p", Some("not a token!"), None).unwrap_err();
    assert!(e.kind == ErrorKind::Validation && e.message.contains("NextToken"), "{e}");
}

#[test]
fn unknown_members_are_refused_by_the_parser() {
    let json = r#"{"ProjectName": "p", "ModelVersion": "1", "Configuration": {"Greengrass": {"ComponentName": "c", "S3OutputLocation": {"Bucket": "bkt"}, "TargetDevice": "jetson_xavier", "Colour": "red"}}}"#;
    let e = serde_json::from_str::<StartModelPackagingJobRequest>(json).unwrap_err();
    assert!(e.to_string().contains("Colour"), "{e}");
}
