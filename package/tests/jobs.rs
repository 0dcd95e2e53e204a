//! Client-token idempotency (also under concurrent identical requests), job status over a
//! job's life, crash recovery, projects and model versions.

mod common;

use std::time::Duration;

use common::{import, import_sample, project_with_sample, reopen, service, start, x86};
use package::contract::OutputSpec;
use package::sample::{sample_contract, sample_model, SampleKind};
use package::ErrorKind;

/// A service with project `p` (the sample as version 1) and a job of it started with
/// `token`: the service, the request and the job's name.
fn started_with_token(
    token: &str,
) -> (tempfile::TempDir, package::Service, package::shapes::StartModelPackagingJobRequest, String) {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let mut r = start("p", "1", x86("core-avx2", "c"));
    r.client_token = Some(token.into());
    let job = svc.start_model_packaging_job(&r).unwrap().job_name;
    (dir, svc, r, job)
}

#[test]
fn same_token_and_parameters_return_the_same_job() {
    let (_dir, svc, mut r, a) = started_with_token("token-1");
    let b = svc.start_model_packaging_job(&r).unwrap().job_name;
    assert_eq!(a, b);
    assert_eq!(svc.list_model_packaging_jobs("p", None, None).unwrap().model_packaging_jobs.len(), 1);
    // Same token, other parameters: a conflict naming the token.
    r.description = Some("other".into());
    let e = svc.start_model_packaging_job(&r).unwrap_err();
    assert_eq!((e.kind, e.resource_id.as_deref()), (ErrorKind::Conflict, Some("token-1")), "{e}");
    // Another token is a new call (and a new component version is needed).
    r.client_token = Some("token-2".into());
    r.configuration.as_mut().unwrap().greengrass.as_mut().unwrap().component_version = Some("2.0.0".into());
    let c = svc.start_model_packaging_job(&r).unwrap().job_name;
    assert_ne!(a, c);
}

#[test]
fn a_token_retry_after_the_model_was_deleted_returns_the_same_job() {
    let (_dir, svc, mut r, a) = started_with_token("retry");
    assert!(svc.run_job("p", &a).unwrap());
    svc.delete_model("p", "1").unwrap();
    // The retry of a call that succeeded answers as the first did, as the API promises.
    assert_eq!(svc.start_model_packaging_job(&r).unwrap().job_name, a);
    r.client_token = None;
    assert_eq!(svc.start_model_packaging_job(&r).unwrap_err().kind, ErrorKind::ResourceNotFound);
}

#[test]
fn a_token_older_than_8_hours_is_a_new_call() {
    let (dir, svc, mut r, a) = started_with_token("old");
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    db.execute("UPDATE client_tokens SET created_ms = created_ms - 8 * 3600 * 1000 - 1", []).unwrap();
    r.configuration.as_mut().unwrap().greengrass.as_mut().unwrap().component_version = Some("1.0.1".into());
    let b = svc.start_model_packaging_job(&r).unwrap().job_name;
    assert_ne!(a, b);
}

#[test]
fn concurrent_identical_requests_make_exactly_one_job() {
    let (_dir, svc) = service();
    project_with_sample(&svc, "p");
    let mut r = start("p", "latest", x86("core-avx2", "c"));
    r.client_token = Some("race".into());
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (svc, r) = (svc.clone(), r.clone());
                s.spawn(move || svc.start_model_packaging_job(&r).map(|x| x.job_name))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().expect("every identical call succeeds")).collect()
    });
    assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
    assert_eq!(svc.list_model_packaging_jobs("p", None, None).unwrap().model_packaging_jobs.len(), 1);
    // Without a token, racing requests for one component version: one job, the rest conflict.
    let r = start("p", "1", x86("core-avx2", "d"));
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6).map(|_| s.spawn(|| svc.start_model_packaging_job(&r))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.kind == ErrorKind::Conflict));
}

#[test]
fn a_job_moves_from_created_through_running_to_succeeded() {
    let (_dir, svc) = service();
    project_with_sample(&svc, "p");
    let job = svc.start_model_packaging_job(&start("p", "latest", x86("core-avx2", "c"))).unwrap().job_name;
    let d0 = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!((d0.job.status.as_str(), d0.job.model_version.as_str()), ("CREATED", "1"), "latest resolves to 1");
    assert_eq!(d0.job.model_packaging_method, "Greengrass");
    std::thread::sleep(Duration::from_millis(5));
    assert!(svc.run_job("p", &job).unwrap());
    assert!(!svc.run_job("p", &job).unwrap(), "a finished job is not run again");
    let d1 = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d1.job.status, "SUCCEEDED", "{:?}", d1.job.status_message);
    assert!(d1.job.last_updated_timestamp > d0.job.last_updated_timestamp);
    let msg = d1.job.status_message.unwrap();
    assert!(msg.contains("published") && msg.contains("parity"), "{msg}");
    let gg = d1.model_packaging_configuration.greengrass.unwrap();
    assert_eq!(gg.component_version.as_deref(), Some("1.0.0"), "the default is filled in");
    // `ComponentVersionArn` as the API model's pattern has it.
    let arn = d1.model_packaging_output_details.unwrap().greengrass.component_version_arn;
    assert!(regex::Regex::new("^arn:[^:]*:greengrass:[^:]*:aws:components:[^:]+").unwrap().is_match(&arn), "{arn}");
}

#[test]
fn a_job_that_cannot_be_built_fails_with_the_reason_and_publishes_nothing() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    // The stored model file is damaged after import: the job must notice.
    damage_stored_models(&dir);
    svc.run_job("p", &job).unwrap();
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "FAILED");
    assert!(d.job.status_message.as_deref().unwrap().contains("corrupt"), "{:?}", d.job.status_message);
    assert!(d.model_packaging_output_details.is_none());
    let bucket = dir.path().join("buckets/components");
    let left: Vec<_> = std::fs::read_dir(&bucket).map(|d| d.collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing written: {left:?}");
    // A failed job frees its component version.
    let again = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c")));
    assert!(again.is_ok(), "{again:?}");
}

#[test]
fn a_job_interrupted_by_a_crash_is_failed_on_restart_and_an_unclaimed_one_resumes() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let crashed = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "a"))).unwrap().job_name;
    let queued = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "b"))).unwrap().job_name;
    // A worker claimed `crashed` and died: RUNNING, with its last heartbeat a minute ago.
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    db.execute(
        "UPDATE jobs SET status = 'RUNNING', heartbeat_ms = heartbeat_ms - 60000, created_ms = created_ms - 60000 WHERE name = ?1",
        [&crashed],
    )
    .unwrap();
    db.execute("UPDATE jobs SET heartbeat_ms = 0, created_ms = created_ms - 60000 WHERE name = ?1", [&queued]).unwrap();
    drop(svc);
    let svc = reopen(&dir, Duration::from_secs(30));
    let d = svc.describe_model_packaging_job("p", &crashed).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "FAILED");
    assert!(d.job.status_message.as_deref().unwrap().starts_with("interrupted"), "{:?}", d.job.status_message);
    assert_eq!(svc.unclaimed_jobs().unwrap(), vec![("p".to_string(), queued.clone())]);
    assert!(svc.run_job("p", &queued).unwrap());
    assert_eq!(
        svc.describe_model_packaging_job("p", &queued).unwrap().model_packaging_description.job.status,
        "SUCCEEDED"
    );
    // A job with a fresh heartbeat is left alone.
    let live = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    db.execute(
        "UPDATE jobs SET status = 'RUNNING', heartbeat_ms = ?2 WHERE name = ?1",
        rusqlite::params![live, package::store::now_ms()],
    )
    .unwrap();
    assert!(reopen(&dir, Duration::from_secs(30)).fail_interrupted_jobs().unwrap().is_empty());
}

#[test]
fn a_thread_runner_finishes_jobs_off_the_request_path() {
    let dir = tempfile::tempdir().unwrap();
    let settings = package::Settings { runner: package::Runner::Thread, ..common::settings(dir.path()) };
    let svc = package::Service::open(dir.path(), settings).unwrap();
    project_with_sample(&svc, "p");
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    let mut status = String::new();
    let mut message = None;
    for _ in 0..600 {
        let job = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description.job;
        (status, message) = (job.status, job.status_message);
        if status == "SUCCEEDED" || status == "FAILED" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, "SUCCEEDED", "{message:?}");
}

#[test]
fn projects_and_model_versions() {
    let (_dir, svc) = service();
    svc.create_project("b-project").unwrap();
    svc.create_project("a-project").unwrap();
    let e = svc.create_project("a-project").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    let e = svc.create_project("bad name").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation);
    let page = svc.list_projects(None, Some(1)).unwrap();
    assert_eq!(page.projects[0].project_name, "a-project");
    let page2 = svc.list_projects(page.next_token.as_deref(), Some(1)).unwrap();
    assert_eq!(page2.projects[0].project_name, "b-project");
    assert!(page2.next_token.is_none());

    let seg = sample_model(SampleKind::Segmentation, 32, 32);
    assert_eq!(import(&svc, "a-project", seg.clone(), sample_contract(SampleKind::Segmentation, 32, 32)), "1");
    assert_eq!(import(&svc, "a-project", seg.clone(), sample_contract(SampleKind::Segmentation, 32, 32)), "2");
    let d = svc.describe_model("a-project", "latest").unwrap();
    assert_eq!((d.model.model_version.as_str(), d.model.status.as_str()), ("2", "TRAINED"));
    assert_eq!(d.model_sha256, package::blobs::sha256_hex(&seg));
    let models = svc.list_models("a-project", None, None).unwrap().models;
    assert_eq!(models.iter().map(|m| m.model_version.as_str()).collect::<Vec<_>>(), ["2", "1"]);

    // The contract is checked against the model.
    let mut c = sample_contract(SampleKind::Segmentation, 32, 32);
    c.input.name = "pixels".into();
    let bad = |c, onnx: Vec<u8>| {
        svc.import_model(&package::projects::ImportModel {
            project_name: "a-project".into(),
            onnx,
            source: "t".into(),
            description: None,
            contract: c,
        })
    };
    let e = bad(c, seg.clone()).unwrap_err();
    assert!(e.kind == ErrorKind::Validation && e.message.contains("pixels"), "{e}");
    let mut c = sample_contract(SampleKind::Segmentation, 32, 32);
    if let OutputSpec::Segmentation { classes, .. } = &mut c.output {
        classes.push(classes[0].clone());
    }
    let e = bad(c, seg.clone()).unwrap_err();
    assert!(e.message.contains("mask output 'mask' has shape [1, 1, 32, 32]"), "{e}");
    let e = bad(sample_contract(SampleKind::Segmentation, 32, 32), b"\x08\x07not onnx".to_vec()).unwrap_err();
    assert!(e.kind == ErrorKind::Validation && e.message.starts_with("model:"), "{e}");
    let mut c = sample_contract(SampleKind::Segmentation, 32, 32);
    c.input.shape = vec![1, 3, 30, 32];
    let e = bad(c, seg).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation, "{e}");

    // Delete: a project with models is refused until they are deleted.
    let e = svc.delete_project("a-project").unwrap_err();
    assert!(e.kind == ErrorKind::Conflict && e.message.contains("delete-model"), "{e}");
    // DeleteModel takes `ModelVersionNoLatest`: `latest` is a ValidationException and
    // deletes nothing.
    let e = svc.delete_model("a-project", "latest").unwrap_err();
    assert!(e.kind == ErrorKind::Validation && e.message.contains("ModelVersion"), "{e}");
    assert_eq!(svc.list_models("a-project", None, None).unwrap().models.len(), 2);
    svc.delete_model("a-project", "1").unwrap();
    svc.delete_model("a-project", "2").unwrap();
    svc.delete_project("a-project").unwrap();
    assert_eq!(svc.describe_project("a-project").unwrap_err().kind, ErrorKind::ResourceNotFound);
}

#[test]
fn model_version_numbers_and_component_versions_are_never_reused_after_deletion() {
    let (_dir, svc) = service();
    project_with_sample(&svc, "p");
    assert_eq!(import_sample(&svc, "p", SampleKind::Segmentation, 32, 32), "2");
    // A deleted newest version's number is not given again.
    svc.delete_model("p", "2").unwrap();
    assert_eq!(import_sample(&svc, "p", SampleKind::Segmentation, 32, 32), "3");
    // Publish component c 1.0.0 from version 1, then delete everything, the project too.
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    assert!(svc.run_job("p", &job).unwrap());
    assert_eq!(
        svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description.job.status,
        "SUCCEEDED"
    );
    for v in ["1", "3"] {
        svc.delete_model("p", v).unwrap();
    }
    svc.delete_project("p").unwrap();
    // Another project cannot publish c 1.0.0 again: the reservation outlived the job rows.
    project_with_sample(&svc, "q");
    let e = svc.start_model_packaging_job(&start("q", "1", x86("core-avx2", "c"))).unwrap_err();
    assert!(e.kind == ErrorKind::Conflict && e.message.contains("project 'p'"), "{e}");
    // The recreated project continues its numbering: its first model is version 4.
    svc.create_project("p").unwrap();
    assert_eq!(import_sample(&svc, "p", SampleKind::Segmentation, 32, 32), "4");
}

#[test]
fn a_model_whose_image_input_is_an_integer_tensor_is_refused_at_import() {
    let (_dir, svc) = service();
    svc.create_project("p").unwrap();
    // The sample model behind a Cast: its input `image` becomes INT64.
    let mut m = onnx::decode_model(&sample_model(SampleKind::Segmentation, 32, 32)).unwrap();
    let g = m.graph.as_mut().unwrap();
    for i in g.node.iter_mut().flat_map(|n| n.input.iter_mut()).filter(|i| *i == "image") {
        *i = "image.f".into();
    }
    g.node.insert(0, onnx::build::node("Cast", "cast", &["image"], &["image.f"], vec![onnx::build::int("to", 1)]));
    g.input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().elem_type = onnx::tensor::INT64;
    let e = svc
        .import_model(&package::projects::ImportModel {
            project_name: "p".into(),
            onnx: onnx::Message::encode_to_vec(&m),
            source: "t".into(),
            description: None,
            contract: sample_contract(SampleKind::Segmentation, 32, 32),
        })
        .unwrap_err();
    assert!(e.kind == ErrorKind::Validation && e.message.contains("'image' has element type I64"), "{e}");
    assert!(svc.list_models("p", None, None).unwrap().models.is_empty());
}

/// Overwrites every stored model file of the service in `dir` with garbage.
fn damage_stored_models(dir: &tempfile::TempDir) {
    for f in std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap() {
        let p = f.unwrap().path();
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&p, perm).unwrap();
        std::fs::write(&p, b"garbage").unwrap();
    }
}

#[test]
fn a_corrupt_stored_model_is_repaired_by_importing_the_good_file_again() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    damage_stored_models(&dir);
    let e = svc.stored_model("p", "1").and_then(|m| svc.blobs().get(&m.sha256)).unwrap_err();
    assert!(e.message.contains("corrupt"), "{e}");
    // The same file again: version 2, and the stored copy both versions share is good again.
    assert_eq!(import_sample(&svc, "p", SampleKind::Segmentation, 32, 32), "2");
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    assert!(svc.run_job("p", &job).unwrap());
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "SUCCEEDED", "{:?}", d.job.status_message);
}

#[test]
fn leftovers_of_killed_workers_are_swept_when_the_service_opens() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let bucket = dir.path().join("buckets/components");
    // Pid 4194305 is above Linux's largest: its owner is gone.
    let dead_staging = bucket.join(".staging-4194305-a");
    let live_staging = bucket.join(format!(".staging-{}-b", std::process::id()));
    for d in [&dead_staging, &live_staging] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("model.onnx"), [0u8; 4096]).unwrap();
    }
    let dead_blob = dir.path().join("blobs/sha256/.4194305-c");
    std::fs::write(&dead_blob, [0u8; 4096]).unwrap();
    drop(svc);
    let svc = reopen(&dir, Duration::from_secs(30));
    assert!(!dead_staging.exists() && !dead_blob.exists(), "the dead's leftovers are swept");
    assert!(live_staging.exists(), "a live publisher's staging folder stays");
    assert_eq!(svc.describe_model("p", "1").unwrap().model.model_version, "1", "the stored model stays");
}

#[test]
fn a_new_home_and_its_job_store_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // The agent builds live beside the home, which the service creates itself.
    let svc = package::Service::open(&home, common::settings(dir.path())).unwrap();
    project_with_sample(&svc, "p");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("jobs.sqlite")), 0o600);
}

#[test]
fn a_damaged_job_row_fails_the_list_naming_the_job() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    for v in ["1.0.0", "2.0.0"] {
        let mut gg = x86("core-avx2", "c");
        gg.component_version = Some(v.into());
        svc.start_model_packaging_job(&start("p", "1", gg)).unwrap();
    }
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    let name: String = db.query_row("SELECT name FROM jobs ORDER BY id LIMIT 1", [], |r| r.get(0)).unwrap();
    db.execute("UPDATE jobs SET configuration = '{not json' WHERE name = ?1", [&name]).unwrap();
    let e = svc.list_model_packaging_jobs("p", None, None).unwrap_err();
    assert!(e.message.contains(&format!("stored job '{name}' of project 'p' is damaged")), "{e}");
}

#[test]
fn a_job_whose_worker_cannot_start_fails_at_once_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // `logs` is a file: the worker's log cannot be opened.
    std::fs::write(home.join("logs"), b"not a folder").unwrap();
    let runner = package::Runner::Process("/bin/true".into(), vec![]);
    let svc = package::Service::open(&home, package::Settings { runner, ..common::settings(dir.path()) }).unwrap();
    project_with_sample(&svc, "p");
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description.job;
    assert_eq!(d.status, "FAILED");
    let msg = d.status_message.unwrap();
    assert!(msg.contains("the worker could not be started") && msg.contains("logs"), "{msg}");
}

#[test]
fn describing_a_job_whose_worker_stopped_applies_the_heartbeat_rule() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    // A worker claimed it and went silent a minute ago (the service's limit is 30 s).
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    db.execute("UPDATE jobs SET status = 'RUNNING', heartbeat_ms = ?1", [package::store::now_ms() - 60_000]).unwrap();
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description.job;
    assert_eq!(d.status, "FAILED", "what `--wait` polls ends instead of reading RUNNING forever");
    assert!(d.status_message.unwrap().starts_with("interrupted"));
}

#[test]
fn an_emptied_job_store_is_refused_instead_of_silently_recreated() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    drop(svc);
    for f in ["jobs.sqlite-wal", "jobs.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    std::fs::write(dir.path().join("jobs.sqlite"), b"").unwrap();
    let e = package::Service::open(dir.path(), common::settings(dir.path())).err().expect("refused");
    assert!(e.message.contains("is missing or empty, but this home had one"), "{e}");
    assert_eq!(std::fs::metadata(dir.path().join("jobs.sqlite")).unwrap().len(), 0, "nothing written over it");
    // Deleting the marker is the deliberate way to start afresh.
    std::fs::remove_file(dir.path().join("jobs.created")).unwrap();
    let svc = reopen(&dir, Duration::from_secs(30));
    assert!(svc.list_projects(None, None).unwrap().projects.is_empty());
}

/// A local store that, just before a publish, does to the job what the liveness rule does to
/// a worker stopped past the heartbeat limit (SIGSTOP): marks it FAILED.
struct StalledWorker {
    inner: package::output::LocalStore,
    db: std::path::PathBuf,
}

impl package::output::OutputStore for StalledWorker {
    fn publish_fenced(
        &self,
        bucket: &str,
        key_prefix: &str,
        files: &[package::output::OutputFile],
        fence: &dyn package::output::Fence,
    ) -> package::Result<()> {
        let db = rusqlite::Connection::open(&self.db).unwrap();
        db.execute(
            "UPDATE jobs SET status = 'FAILED', status_message = 'interrupted (test)' WHERE status = 'RUNNING'",
            [],
        )
        .unwrap();
        self.inner.publish_fenced(bucket, key_prefix, files, fence)
    }
    fn check_destination(&self, bucket: &str, key_prefix: &str, last: &str) -> package::Result<()> {
        self.inner.check_destination(bucket, key_prefix, last)
    }
    fn get(&self, bucket: &str, key: &str) -> package::Result<Vec<u8>> {
        self.inner.get(bucket, key)
    }
    fn locate(&self, bucket: &str, key: &str) -> String {
        self.inner.locate(bucket, key)
    }
}

#[test]
fn a_worker_whose_job_was_failed_meanwhile_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    let stalled =
        StalledWorker { inner: package::output::LocalStore::new(&buckets), db: dir.path().join("jobs.sqlite") };
    let settings = package::Settings { output: Some(std::sync::Arc::new(stalled)), ..common::settings(dir.path()) };
    let svc = package::Service::open(dir.path(), settings).unwrap();
    project_with_sample(&svc, "p");
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    assert!(svc.run_job("p", &job).unwrap());
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "FAILED");
    assert_eq!(d.job.status_message.as_deref(), Some("interrupted (test)"), "the liveness rule's message stays");
    assert!(d.model_packaging_output_details.is_none());
    // Nothing published, no staging folder left: no file at all under the bucket.
    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
        entries.flat_map(|e| if e.path().is_dir() { files(&e.path()) } else { vec![e.path()] }).collect()
    }
    let left = files(&buckets.join("components"));
    assert!(left.is_empty(), "{left:?}");
    // The freed component version goes to a new job, which publishes it.
    let again = package::Service::open(dir.path(), common::settings(dir.path())).unwrap();
    let job2 = again.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    assert!(again.run_job("p", &job2).unwrap());
    assert_eq!(
        again.describe_model_packaging_job("p", &job2).unwrap().model_packaging_description.job.status,
        "SUCCEEDED"
    );
}

#[test]
fn a_store_made_before_the_reservation_tables_is_migrated_once() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    assert_eq!(import_sample(&svc, "p", SampleKind::Segmentation, 32, 32), "2");
    svc.start_model_packaging_job(&start("p", "2", x86("core-avx2", "c"))).unwrap();
    drop(svc);
    // As a store of the previous build: the tables empty, no migration recorded.
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    db.execute_batch("DELETE FROM model_versions; DELETE FROM component_reservations; PRAGMA user_version = 0;")
        .unwrap();
    drop(db);
    let svc = reopen(&dir, Duration::from_secs(30));
    assert_eq!(import_sample(&svc, "p", SampleKind::Segmentation, 32, 32), "3", "numbering continues");
    // The existing job's component version is reserved.
    let mut gg = x86("core-avx2", "c");
    gg.component_version = Some("2.0.0".into());
    let e = svc.start_model_packaging_job(&start("p", "1", gg)).unwrap_err();
    assert!(e.kind == ErrorKind::Conflict && e.message.contains("component c version 2.0.0 already exists"), "{e}");
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    assert_eq!(db.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
}

/// Issue 27: a job store that cannot record SUCCEEDED once the component is visible (a full
/// disk, simulated by a trigger that refuses the update) takes the publish back: no component
/// stands behind a job that did not succeed, and the job says why it failed.
#[test]
fn a_success_the_store_cannot_record_publishes_nothing() {
    let (dir, svc) = service();
    project_with_sample(&svc, "p");
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER full_disk BEFORE UPDATE OF status ON jobs WHEN NEW.status = 'SUCCEEDED'
         BEGIN SELECT RAISE(ABORT, 'database or disk is full (simulated)'); END;",
    )
    .unwrap();
    let job = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    assert!(svc.run_job("p", &job).unwrap());
    let d = svc.describe_model_packaging_job("p", &job).unwrap().model_packaging_description;
    assert_eq!(d.job.status, "FAILED");
    let m = d.job.status_message.unwrap();
    assert!(m.contains("disk is full (simulated)"), "{m}");
    let component =
        dir.path().join("buckets/components").join(package::packaging::key_prefix(Some("factory"), "c", "1.0.0"));
    assert!(!component.exists(), "{} was published by a job that failed", component.display());
    // Once the store records again, a new job publishes the freed version.
    db.execute_batch("DROP TRIGGER full_disk").unwrap();
    let job2 = svc.start_model_packaging_job(&start("p", "1", x86("core-avx2", "c"))).unwrap().job_name;
    svc.run_job("p", &job2).unwrap();
    assert_eq!(
        svc.describe_model_packaging_job("p", &job2).unwrap().model_packaging_description.job.status,
        "SUCCEEDED"
    );
    assert!(component.join("create-component-version.json").exists());
}

#[test]
fn each_job_has_its_own_log_named_by_project_and_job_with_its_steps() {
    let (_dir, svc) = service();
    for p in ["p", "q"] {
        project_with_sample(&svc, p);
        let mut req = start(p, "1", x86("core-avx2", &format!("c.{p}")));
        req.job_name = Some("same-name".into());
        svc.start_model_packaging_job(&req).unwrap();
        assert!(svc.run_job(p, "same-name").unwrap());
    }
    let (log_p, log_q) = (svc.log_path("p", "same-name"), svc.log_path("q", "same-name"));
    assert_ne!(log_p, log_q, "one job name in two projects: two logs");
    assert!(log_p.ends_with("logs/p/same-name.log"), "{}", log_p.display());
    for log in [log_p, log_q] {
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 3, "{text}");
        assert!(lines[0].contains(" RUNNING: claimed by worker process "), "{text}");
        assert!(lines.last().unwrap().contains(" SUCCEEDED: "), "{text}");
        // Every line is stamped with the time (UTC, RFC 3339).
        assert!(lines.iter().all(|l| l.len() > 24 && l.as_bytes()[10] == b'T' && l[..24].ends_with('Z')), "{text}");
        let d = svc
            .describe_model_packaging_job(if log.to_string_lossy().contains("/p/") { "p" } else { "q" }, "same-name");
        let status = d.unwrap().model_packaging_description.job.status_message.unwrap();
        assert!(lines.last().unwrap().ends_with(&status), "the last line is the final status: {status}\n{text}");
    }
}
