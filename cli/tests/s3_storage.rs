//! Components published to a real S3 server: s3s-fs (buckets as folders), started by each
//! test on loopback with its own credentials, reached through `object_store`'s S3 client as
//! AWS S3 would be. The commands end to end (`configure-storage`, a packaging job, then
//! `verify-component` over S3), what the server holds compared file by file, a tampered
//! object, and the failures a user meets (no bucket, wrong or no credentials, a component
//! already there, a publish that breaks halfway).
//!
//! `ci/setup-s3.sh` installs the server; `EDGEPACK_S3S_FS` names it at build time (see
//! build.rs): without it these tests are reported as ignored ("skipped: …").

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use package::component::digest;
use package::output::{OutputFile, OutputStore, S3Credentials, S3Settings, S3Store};

const ACCESS_KEY: &str = "EDGEPACKTESTKEY";
const SECRET_KEY: &str = "edgepack-test-secret";
const BUCKET: &str = "parts";
/// The s3s-fs binary (build.rs).
#[cfg(not(no_s3_server))]
const S3S_FS: &str = env!("EDGEPACK_S3S_FS");
#[cfg(no_s3_server)]
const S3S_FS: &str = "";

/// An s3s-fs server on a free loopback port, stopped on drop.
struct Server {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
}

impl Server {
    /// Starts the server with the bucket [`BUCKET`].
    fn start() -> Server {
        let bin = S3S_FS;
        for _ in 0..5 {
            let data = tempfile::tempdir().unwrap();
            std::fs::create_dir(data.path().join(BUCKET)).unwrap();
            // A port the kernel just handed out; a second server that races us to it makes
            // the child exit, and we try again.
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
            let mut child = Command::new(bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(data.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {bin}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Server { child, port, data };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start listening on loopback");
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The object `key` of [`BUCKET`] as the server keeps it on disk.
    fn file(&self, key: &str) -> PathBuf {
        self.data.path().join(BUCKET).join(key)
    }

    fn store(&self) -> S3Store {
        S3Store::new(S3Settings { endpoint_url: Some(self.endpoint()), region: None }).with_credentials(S3Credentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            session_token: None,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `edgepack` with `home` and the server's credentials (`secret`: None for none).
fn edgepack(home: &Path, secret: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgepack"));
    cmd.args(args).env("EDGEPACK_HOME", home).env("EDGEPACK_AGENT_DIR", common::agent_builds(home));
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT", "AWS_PROFILE"] {
        cmd.env_remove(var);
    }
    if let Some(secret) = secret {
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", secret);
    }
    cmd.output().expect("run edgepack")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let o = edgepack(home, Some(SECRET_KEY), args);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{args:?}: {}\n{out}", String::from_utf8_lossy(&o.stderr));
    out
}

/// A home whose storage is `server`, with project `line-1` holding the sample segmentation
/// model as version 1.
fn home_on(server: &Server, dir: &Path) -> PathBuf {
    let home = dir.join("home");
    let model = dir.join("defects.onnx");
    ok(&home, &["sample-model", "--size", "32x32", "--out", model.to_str().unwrap()]);
    let storage = ok(&home, &["configure-storage", "--s3", "--endpoint-url", &server.endpoint(), "--output", "json"]);
    let storage: serde_json::Value = serde_json::from_str(&storage).unwrap();
    assert_eq!(storage["Storage"], serde_json::json!({ "Kind": "S3", "EndpointUrl": server.endpoint() }));
    ok(&home, &["create-project", "--project-name", "line-1"]);
    let contract = format!("file://{}", dir.join("defects.contract.json").display());
    ok(
        &home,
        &["import-model", "--project-name", "line-1", "--model", model.to_str().unwrap(), "--contract", &contract],
    );
    home
}

/// A server, a temporary folder and a home in it on that server (see [`home_on`]).
fn server_and_home() -> (Server, tempfile::TempDir, PathBuf) {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let home = home_on(&server, dir.path());
    (server, dir, home)
}

/// Starts a job for this host's CPU into `bucket`/`lines/1` and waits; returns its
/// description.
fn package_job(home: &Path, secret: Option<&str>, bucket: &str, component: &str) -> (Option<i32>, serde_json::Value) {
    let cfg = serde_json::json!({ "Greengrass": {
        "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" },
        "S3OutputLocation": { "Bucket": bucket, "Prefix": "lines/1" },
        "ComponentName": component,
    }});
    let args = ["start-model-packaging-job", "--project-name", "line-1", "--model-version", "1", "--wait"];
    let o = edgepack(home, secret, &[&args[..], &["--configuration", &cfg.to_string()]].concat());
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    });
    (o.status.code(), d["ModelPackagingDescription"].clone())
}

#[test]
#[cfg_attr(no_s3_server, ignore = "skipped: no S3 server (set EDGEPACK_S3S_FS=$(bash ci/setup-s3.sh) and rebuild)")]
fn a_job_publishes_its_component_to_s3_and_it_verifies_there() {
    let (server, dir, home) = server_and_home();
    let (code, d) = package_job(&home, Some(SECRET_KEY), BUCKET, "line1.Defects");
    assert_eq!((code, &d["Status"]), (Some(0), &serde_json::json!("SUCCEEDED")), "{d}");
    let message = d["StatusMessage"].as_str().unwrap();
    let prefix = "lines/1/line1.Defects/1.0.0";
    assert!(message.contains(&format!("{}/{BUCKET}/{prefix}", server.endpoint())), "{message}");

    // What the server holds, read from its disk: every file of the component, and each
    // artifact's SHA-256 is the recipe's.
    let names =
        ["model.eppl", "model.onnx", "manifest.json", "parity.json", "recipe.json", "create-component-version.json"];
    for name in names {
        assert!(server.file(&format!("{prefix}/{name}")).is_file(), "{name} is not on the server");
    }
    let recipe: serde_json::Value =
        serde_json::from_slice(&std::fs::read(server.file(&format!("{prefix}/recipe.json"))).unwrap()).unwrap();
    let artifacts = recipe["Manifests"][0]["Artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 4);
    for a in artifacts {
        let uri = a["URI"].as_str().unwrap();
        let key = uri.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
        assert_eq!(a["Digest"].as_str().unwrap(), digest(&std::fs::read(server.file(key)).unwrap()), "{uri}");
    }

    let verified = ok(&home, &["verify-component", "--bucket", BUCKET, "--prefix", prefix, "--query", "Verified"]);
    assert_eq!(verified.trim(), "true");
    // Another service sharing the bucket (a second build machine) cannot overwrite it: its job
    // fails before doing its work.
    let second = dir.path().join("second");
    std::fs::create_dir(&second).unwrap();
    let (code, again) = package_job(&home_on(&server, &second), Some(SECRET_KEY), BUCKET, "line1.Defects");
    assert_eq!((code, &again["Status"]), (Some(1), &serde_json::json!("FAILED")), "{again}");
    let message = again["StatusMessage"].as_str().unwrap();
    assert!(message.contains("already holds a component; nothing was overwritten"), "{message}");

    // An object changed on the server after packaging is caught, by name.
    std::fs::write(server.file(&format!("{prefix}/parity.json")), b"{}\n").unwrap();
    let o = edgepack(&home, Some(SECRET_KEY), &["verify-component", "--bucket", BUCKET, "--prefix", prefix]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(254), "{err}");
    assert!(err.contains("parity.json does not match the recipe"), "{err}");
}

#[test]
#[cfg_attr(no_s3_server, ignore = "skipped: no S3 server (set EDGEPACK_S3S_FS=$(bash ci/setup-s3.sh) and rebuild)")]
fn storage_problems_fail_the_job_before_its_work_and_name_the_cause() {
    let (server, _dir, home) = server_and_home();
    let cases = [
        (Some(SECRET_KEY), "no-such-bucket", "listing s3://no-such-bucket/lines/1/"),
        (Some("not-the-secret"), BUCKET, "SignatureDoesNotMatch"),
        (None, BUCKET, "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ];
    for (i, (secret, bucket, cause)) in cases.into_iter().enumerate() {
        let (code, d) = package_job(&home, secret, bucket, &format!("line1.Case{i}"));
        assert_eq!(code, Some(1), "{d}");
        assert_eq!(d["Status"], "FAILED", "{d}");
        let message = d["StatusMessage"].as_str().unwrap();
        assert!(message.contains(cause), "case {i}: {message}");
    }
    // Nothing was written anywhere.
    assert_eq!(std::fs::read_dir(server.file("")).unwrap().count(), 0);
    let o = edgepack(&home, Some(SECRET_KEY), &["configure-storage", "--s3", "--endpoint-url", "ftp://x"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&o.stderr).contains("EndpointUrl 'ftp://x': expected http://host[:port]"));
}

fn files(names: &[&str], fill: u8) -> Vec<OutputFile> {
    names.iter().map(|n| OutputFile { name: n.to_string(), bytes: vec![fill; 1000] }).collect()
}

#[test]
#[cfg_attr(no_s3_server, ignore = "skipped: no S3 server (set EDGEPACK_S3S_FS=$(bash ci/setup-s3.sh) and rebuild)")]
fn publishing_never_overwrites_a_component_and_cleans_up_after_itself() {
    let server = Server::start();
    let store = server.store();
    let component = files(&["model.eppl", "recipe.json", "done.json"], 1);
    store.publish(BUCKET, "a/1.0.0", &component).unwrap();
    assert_eq!(store.get(BUCKET, "a/1.0.0/model.eppl").unwrap(), vec![1; 1000]);

    // A complete component (its last file is there) is never overwritten.
    let err = store.publish(BUCKET, "a/1.0.0", &files(&["model.eppl", "recipe.json", "done.json"], 2)).unwrap_err();
    assert!(err.message.contains("already holds a component; nothing was overwritten"), "{}", err.message);
    assert_eq!(store.get(BUCKET, "a/1.0.0/model.eppl").unwrap(), vec![1; 1000]);
    assert!(store.check_destination(BUCKET, "a/1.0.0", "done.json").is_err());

    // The remains of a publish killed halfway (no last file) are replaced.
    std::fs::create_dir_all(server.file("b/1.0.0")).unwrap();
    std::fs::write(server.file("b/1.0.0/model.eppl"), b"half").unwrap();
    std::fs::write(server.file("b/1.0.0/stale.bin"), b"old").unwrap();
    store.check_destination(BUCKET, "b/1.0.0", "done.json").unwrap();
    store.publish(BUCKET, "b/1.0.0", &component).unwrap();
    assert_eq!(std::fs::read(server.file("b/1.0.0/model.eppl")).unwrap(), vec![1; 1000]);
    assert!(!server.file("b/1.0.0/stale.bin").exists());

    // A publish that fails halfway (the server cannot store a 300-byte file name: S3 allows
    // 1024-byte keys, its file system 255-byte names) deletes what it wrote.
    let long = "x".repeat(300);
    let err = store.publish(BUCKET, "c/1.0.0", &files(&["model.eppl", &long, "done.json"], 3)).unwrap_err();
    assert!(err.message.contains("writing s3://parts/c/1.0.0/xxx"), "{}", err.message);
    assert!(!server.file("c/1.0.0/model.eppl").exists(), "the first file was left behind");
    assert!(store.get(BUCKET, "c/1.0.0/model.eppl").is_err());
}
