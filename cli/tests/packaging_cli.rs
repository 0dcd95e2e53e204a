//! The packaging commands end to end through the `edgepack` binary: a sample model packaged
//! with `--wait` (the job runs in a detached worker process), the AWS CLI's input and output
//! options, and errors with the service's exception names and exit status 254.

mod common;

use common::edgepack;

use std::path::Path;

fn ok(home: &Path, args: &[&str]) -> String {
    let o = edgepack(home, args);
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn package_a_sample_model_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let model = dir.path().join("defects.onnx");
    let model_s = model.to_str().unwrap();
    ok(&home, &["sample-model", "--kind", "segmentation", "--size", "64x64", "--out", model_s]);
    let contract = format!("file://{}", dir.path().join("defects.contract.json").display());
    ok(&home, &["create-project", "--project-name", "line-1"]);
    let import = |extra: &[&str]| {
        let mut args = vec!["import-model", "--project-name", "line-1", "--model", model_s, "--output", "text"];
        args.extend_from_slice(extra);
        ok(&home, &args)
    };
    let v = import(&["--contract", &contract, "--query", "ModelDescription.ModelVersion"]);
    assert_eq!(v.trim(), "1");
    // Without a contract file: the options say the same.
    let v = import(&[
        "--input-shape",
        "1x3x64x64",
        "--mask-output",
        "mask",
        "--mask-classes",
        "defect:#ff0000",
        "--query",
        "ModelDescription.ModelContract.Input.Name",
    ]);
    assert_eq!(v.trim(), "image");

    let yaml = dir.path().join("request.yaml");
    std::fs::write(
        &yaml,
        "ProjectName: line-1\nModelVersion: latest\nJobName: from-yaml\nConfiguration:\n  Greengrass:\n    TargetPlatform: {Os: LINUX, Arch: ARM64}\n    CompilerOptions: \"{'mcpu': 'cortex-a72'}\"\n    S3OutputLocation: {Bucket: parts, Prefix: lines/1}\n    ComponentName: line1.Defects\n",
    )
    .unwrap();
    let yaml_arg = format!("file://{}", yaml.display());
    let out = ok(&home, &["start-model-packaging-job", "--cli-input-yaml", &yaml_arg, "--wait", "--output", "json"]);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = &d["ModelPackagingDescription"];
    assert_eq!(d["Status"], "SUCCEEDED", "{d}");
    assert_eq!(d["ModelVersion"], "2");
    assert_eq!(d["ModelPackagingOutputDetails"]["Greengrass"]["ComponentVersion"], "2.0.0");
    assert!(d["CreationTimestamp"].as_str().unwrap().ends_with("+00:00"), "ISO 8601: {d}");
    assert!(d["StatusMessage"].as_str().unwrap().contains("parity pending on the device"), "ARM64 from x86: {d}");
    ok(&home, &["verify-component", "--bucket", "parts", "--prefix", "lines/1/line1.Defects/2.0.0"]);
    override_and_list(&home, &yaml_arg);
}

/// Options given on the command line override the input file; the two jobs then list in a
/// table, by `--query`, and page by page with `--max-items` and `--starting-token`.
fn override_and_list(home: &Path, yaml_arg: &str) {
    let out = ok(
        home,
        &[
            "start-model-packaging-job",
            "--cli-input-yaml",
            yaml_arg,
            "--job-name",
            "overridden",
            "--model-version",
            "1",
            "--output",
            "text",
        ],
    );
    assert_eq!(out.trim(), "overridden");
    let table = ok(home, &["list-model-packaging-jobs", "--project-name", "line-1", "--output", "table"]);
    assert!(table.contains("from-yaml") && table.contains("overridden"), "{table}");
    let names = ok(
        home,
        &[
            "list-model-packaging-jobs",
            "--project-name",
            "line-1",
            "--max-items",
            "1",
            "--query",
            "ModelPackagingJobs[].JobName",
            "--output",
            "json",
        ],
    );
    assert_eq!(serde_json::from_str::<Vec<String>>(&names).unwrap(), ["overridden"]);
    let paged = ok(home, &["list-model-packaging-jobs", "--project-name", "line-1", "--max-items", "1"]);
    let token = serde_json::from_str::<serde_json::Value>(&paged).unwrap()["NextToken"].as_str().unwrap().to_owned();
    let rest = ok(
        home,
        &[
            "list-model-packaging-jobs",
            "--project-name",
            "line-1",
            "--starting-token",
            &token,
            "--query",
            "ModelPackagingJobs[].JobName",
        ],
    );
    assert_eq!(serde_json::from_str::<Vec<String>>(&rest).unwrap(), ["from-yaml"]);
    // `--max-items` is the CLI's own: 0 is an argument error naming it, not a service error.
    let o = edgepack(home, &["list-model-packaging-jobs", "--project-name", "line-1", "--max-items", "0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(252) && err.contains("--max-items") && !err.contains("MaxResults"), "{err}");
}

#[test]
fn start_model_packaging_job_skeletons_in_json_yaml_and_output_form() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let skeleton = ok(&home, &["start-model-packaging-job", "--generate-cli-skeleton"]);
    let s: serde_json::Value = serde_json::from_str(&skeleton).unwrap();
    assert!(s["Configuration"]["Greengrass"]["S3OutputLocation"].is_object());
    assert!(
        ok(&home, &["start-model-packaging-job", "--generate-cli-skeleton", "yaml-input"]).contains("ComponentName:")
    );
    assert_eq!(
        ok(&home, &["start-model-packaging-job", "--generate-cli-skeleton", "output"]).trim(),
        "{\n    \"JobName\": \"\"\n}"
    );
}

#[test]
fn every_operation_has_a_skeleton_and_takes_its_members_from_cli_input() {
    let dir = tempfile::tempdir().unwrap();
    let home = &dir.path().join("home");
    // Every operation: a skeleton of its members, no required option needed for it.
    for (command, member) in [
        ("create-project", "ClientToken"),
        ("describe-project", "ProjectName"),
        ("list-projects", "MaxResults"),
        ("delete-project", "ProjectName"),
        ("import-model", "Contract"),
        ("describe-model", "ModelVersion"),
        ("list-models", "NextToken"),
        ("delete-model", "ModelVersion"),
        ("describe-model-packaging-job", "JobName"),
        ("list-model-packaging-jobs", "ProjectName"),
    ] {
        let s: serde_json::Value = serde_json::from_str(&ok(home, &[command, "--generate-cli-skeleton"])).unwrap();
        assert!(s.get(member).is_some(), "{command}: {s}");
        let out: serde_json::Value =
            serde_json::from_str(&ok(home, &[command, "--generate-cli-skeleton", "output"])).unwrap();
        assert!(out.is_object() && !out.as_object().unwrap().is_empty(), "{command}: {out}");
    }
    let out = ok(home, &["describe-project", "--generate-cli-skeleton", "output"]);
    assert!(out.contains("\"Datasets\""), "{out}");
    // Members from a document; an option given overrides its member.
    let made = ok(home, &["create-project", "--cli-input-json", r#"{"ProjectName": "from-json"}"#]);
    assert!(made.contains("from-json"), "{made}");
    let yaml = dir.path().join("p.yaml");
    std::fs::write(&yaml, "ProjectName: from-json\n").unwrap();
    let d = ok(home, &["describe-project", "--cli-input-yaml", &format!("file://{}", yaml.display())]);
    assert!(d.contains("\"ProjectName\": \"from-json\""), "{d}");
    let o = edgepack(
        home,
        &["describe-project", "--cli-input-json", r#"{"ProjectName": "from-json"}"#, "--project-name", "other"],
    );
    assert_eq!(o.status.code(), Some(254), "the option won: project 'other' does not exist");
    let page =
        ok(home, &["list-projects", "--cli-input-json", r#"{"MaxResults": 1}"#, "--query", "Projects[].ProjectName"]);
    assert!(page.contains("from-json"), "{page}");
    // Missing or mistyped members are argument errors (252) naming the option and member.
    let o = edgepack(home, &["describe-model", "--project-name", "from-json"]);
    assert_eq!(o.status.code(), Some(252));
    let o = edgepack(home, &["describe-model", "--cli-input-json", r#"{"ProjectName": "from-json"}"#]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(252) && err.contains("--model-version (or ModelVersion in --cli-input-json)"),
        "{err}"
    );
    let o = edgepack(home, &["describe-project", "--cli-input-json", r#"{"ProjectName": 7}"#]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(252) && err.contains("ProjectName must be a string"), "{err}");
    let o = edgepack(home, &["describe-project", "--cli-input-json", "[1]"]);
    assert_eq!(o.status.code(), Some(252));
}

#[test]
fn errors_carry_the_exception_name_and_exit_254() {
    let dir = tempfile::tempdir().unwrap();
    let home = &dir.path().join("home");
    let o = edgepack(home, &["describe-project", "--project-name", "nope"]);
    assert_eq!(o.status.code(), Some(254));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("An error occurred (ResourceNotFoundException) when calling the DescribeProject operation: project 'nope' does not exist"), "{err}");
    let cfg = r#"{"Greengrass": {"TargetDevice": "jetson_xavier", "CompilerOptions": "{'mcpu': 'x'}", "S3OutputLocation": {"Bucket": "b-1"}, "ComponentName": "c"}}"#;
    let o = edgepack(
        home,
        &["start-model-packaging-job", "--project-name", "p", "--model-version", "1", "--configuration", cfg],
    );
    assert_eq!(o.status.code(), Some(254));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("(ValidationException)") && err.contains("CompilerOptions cannot be specified with TargetDevice"),
        "{err}"
    );
    let o = edgepack(
        home,
        &["start-model-packaging-job", "--project-name", "p", "--model-version", "1", "--configuration", "{not json"],
    );
    assert_eq!(o.status.code(), Some(252));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--configuration"));
}
