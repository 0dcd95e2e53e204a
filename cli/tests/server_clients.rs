//! `edgepack serve` driven by the real AWS clients: the AWS CLI 1.42.0 and boto3 (botocore
//! 1.40.0) run `ci/server_clients.py` against it — projects, the import extension, packaging
//! jobs with and without client tokens run by worker processes, pagination, scoped keys and
//! every error the service answers, with AWS's codes for unsigned and wrongly signed requests.
//! Also the access-key commands and the refusal of plain HTTP off loopback.
//!
//! `ci/setup-aws.sh` installs the clients; `EDGEPACK_AWS_BIN` names their venv's bin folder at
//! build time (see build.rs): without it the client test is reported as ignored ("skipped: …").

mod common;

use common::edgepack;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn ok_json(home: &Path, args: &[&str]) -> Value {
    let o = edgepack(home, args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

/// `edgepack serve --port 0` on `home`, killed on drop.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(home: &Path) -> Serve {
        Self::start_with(home, &[])
    }

    fn start_with(home: &Path, extra: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgepack"))
            .args(["serve", "--port", "0"])
            .args(extra)
            .env("EDGEPACK_HOME", home)
            .env("EDGEPACK_AGENT_DIR", common::agent_builds(home))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start edgepack serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the first line");
        let url = line.trim().strip_prefix("edgepack serve: listening on ").unwrap_or_else(|| panic!("{line:?}"));
        Serve { url: url.to_owned(), child }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn access_keys_are_made_listed_and_deleted_and_their_secret_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let k = ok_json(&home, &["create-access-key", "--project", "line-*", "--project", "qa"]);
    let id = k["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
    let secret = k["AccessKey"]["SecretAccessKey"].as_str().unwrap().to_owned();
    assert_eq!(k["AccessKey"]["Projects"], serde_json::json!(["line-*", "qa"]));
    let listed = ok_json(&home, &["list-access-keys"]);
    assert_eq!(listed["AccessKeys"][0]["AccessKeyId"], id.as_str());
    assert!(!listed.to_string().contains(&secret), "list-access-keys shows a secret");
    let db = std::fs::read(home.join("access-keys.sqlite")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "a secret is stored in clear");
    ok_json(&home, &["delete-access-key", "--access-key-id", &id]);
    assert_eq!(ok_json(&home, &["list-access-keys"])["AccessKeys"], serde_json::json!([]));
    // Errors name the problem and exit 252.
    let o = edgepack(&home, &["delete-access-key", "--access-key-id", &id]);
    assert_eq!(o.status.code(), Some(252));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    let o = edgepack(&home, &["create-access-key", "--project", "bad name"]);
    assert_eq!(o.status.code(), Some(252));
    assert!(String::from_utf8_lossy(&o.stderr).contains("project pattern 'bad name'"));
}

#[test]
fn plain_http_off_loopback_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let o = edgepack(&home, &["serve", "--address", "0.0.0.0", "--port", "0"]);
    assert_eq!(o.status.code(), Some(252));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("plain HTTP on 0.0.0.0:0") && err.contains("--insecure-http"), "{err}");
}

/// Runs `edgepack` as a client of `url` with the key `k` (`create-access-key`'s answer), on
/// an empty home of its own.
fn client(dir: &Path, url: &str, k: &Value, secret: Option<&str>, args: &[&str]) -> std::process::Output {
    client_cmd(dir, url, k, secret, args).output().expect("run edgepack")
}

/// The command of [`client`], to add to (no CA bundle unless added).
fn client_cmd(dir: &Path, url: &str, k: &Value, secret: Option<&str>, args: &[&str]) -> Command {
    let key = |f: &str| k["AccessKey"][f].as_str().unwrap().to_owned();
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgepack"));
    c.args(args)
        .args(["--endpoint-url", url])
        .env("EDGEPACK_HOME", dir.join("client-home"))
        .env("AWS_ACCESS_KEY_ID", key("AccessKeyId"))
        .env("AWS_SECRET_ACCESS_KEY", secret.map_or_else(|| key("SecretAccessKey"), str::to_owned))
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CA_BUNDLE");
    c
}

#[test]
fn the_edgepack_cli_is_a_client_of_edgepack_serve_with_endpoint_url() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let k = ok_json(&home, &["create-access-key", "--all-projects"]);
    let model = dir.path().join("s.onnx");
    let contract = dir.path().join("s.contract.json");
    ok_json(&home, &["sample-model", "--kind", "classification", "--size", "64x64", "--out", model.to_str().unwrap()]);
    let serve = Serve::start(&home);
    let ok = |args: &[&str]| {
        let o = client(dir.path(), &serve.url, &k, None, args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{args:?}: {}\n{out}", String::from_utf8_lossy(&o.stderr));
        out
    };
    ok(&["create-project", "--project-name", "line-1"]);
    // It went to the server's home, not the client's.
    let d = ok_json(&home, &["describe-project", "--project-name", "line-1"]);
    assert_eq!(d["ProjectDescription"]["ProjectName"], "line-1");
    let contract_arg = format!("file://{}", contract.display());
    let import =
        ["import-model", "--project-name", "line-1", "--model", model.to_str().unwrap(), "--contract", &contract_arg];
    let m: Value = serde_json::from_str(&ok(&import)).unwrap();
    assert_eq!(m["ModelDescription"]["ModelVersion"], "1");
    // The AWS CLI's shorthand, --wait polling the server, the job run by the server's worker.
    let cfg = "Greengrass={TargetPlatform={Os=LINUX,Arch=X86_64},CompilerOptions='{\"mcpu\": \"core-avx2\"}',\
               S3OutputLocation={Bucket=parts},ComponentName=line1.Defects}";
    let start = ["start-model-packaging-job", "--project-name", "line-1", "--model-version", "1", "--job-name", "j1"];
    let d: Value = serde_json::from_str(&ok(&[&start[..], &["--configuration", cfg, "--wait"]].concat())).unwrap();
    assert_eq!(d["ModelPackagingDescription"]["Status"], "SUCCEEDED", "{d}");
    // The worker process's log, named by project and job, holds the job's steps.
    let log = std::fs::read_to_string(home.join("logs/line-1/j1.log")).expect("the job's log");
    assert!(log.contains(" RUNNING: claimed by worker process ") && log.contains(" SUCCEEDED: "), "{log}");
    ok(&["create-project", "--project-name", "line-2"]);
    let names = ok(&["list-projects", "--page-size", "1", "--query", "Projects[].ProjectName", "--output", "text"]);
    assert_eq!(names.split_whitespace().collect::<Vec<_>>(), ["line-1", "line-2"], "pages of one, all of them");
    let legacy = "Models[?Status==`TRAINED`].ModelVersion";
    let v = ok(&["list-models", "--project-name", "line-1", "--query", legacy, "--output", "text"]);
    assert_eq!(v.trim(), "1", "a legacy JMESPath literal");
    // --debug shows the requests; --region and --no-cli-pager are accepted.
    let args = ["describe-project", "--project-name", "line-1", "--debug", "--region", "eu-west-1", "--no-cli-pager"];
    let o = client(dir.path(), &serve.url, &k, None, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("DescribeProject: GET http://"), "{err}");
    assert!(err.contains("200 OK (request id "), "{err}");
    // Errors as the AWS CLI reports them: exit 254 and the server's code.
    let o = client(dir.path(), &serve.url, &k, None, &["describe-project", "--project-name", "nope"]);
    assert_eq!(o.status.code(), Some(254));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("An error occurred (ResourceNotFoundException) when calling the DescribeProject operation"));
    let o = client(dir.path(), &serve.url, &k, Some("wrong-secret"), &["list-projects"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&o.stderr).contains("(InvalidSignatureException)"));
    // Commands of the home only say so.
    let o = client(dir.path(), &serve.url, &k, None, &["export-signing-key"]);
    assert_eq!(o.status.code(), Some(252));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not take --endpoint-url"));
    let o = client(dir.path(), "ftp://127.0.0.1:1", &k, None, &["list-projects"]);
    assert_eq!(o.status.code(), Some(252));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected http://host[:port] or https://host[:port]"));
}

#[test]
fn the_edgepack_cli_reaches_a_tls_server_trusting_aws_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let k = ok_json(&home, &["create-access-key", "--all-projects"]);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let serve =
        Serve::start_with(&home, &["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()]);
    let port = serve.url.strip_prefix("https://127.0.0.1:").expect("an https URL");
    let url = format!("https://localhost:{port}");
    let args = ["create-project", "--project-name", "over-tls"];
    let o = client_cmd(dir.path(), &url, &k, None, &args).env("AWS_CA_BUNDLE", &cert_path).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        ok_json(&home, &["describe-project", "--project-name", "over-tls"])["ProjectDescription"]["ProjectName"],
        "over-tls"
    );
    // A certificate nobody trusts: refused, naming the connection.
    let o = client(dir.path(), &url, &k, None, &["list-projects"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(252) && err.contains("Could not connect to the endpoint URL"), "{err}");
}

#[test]
#[cfg_attr(
    no_aws_clients,
    ignore = "skipped: no AWS CLI/boto3 (set EDGEPACK_AWS_BIN=$(bash ci/setup-aws.sh) and rebuild)"
)]
fn the_aws_cli_and_boto3_run_the_whole_flow_against_edgepack_serve() {
    #[cfg(not(no_aws_clients))]
    let bin = Path::new(env!("EDGEPACK_AWS_BIN"));
    #[cfg(no_aws_clients)]
    let bin = Path::new("");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let all = ok_json(&home, &["create-access-key", "--all-projects"]);
    let scoped = ok_json(&home, &["create-access-key", "--project", "line-*"]);
    let model = dir.path().join("s.onnx");
    ok_json(&home, &["sample-model", "--kind", "classification", "--size", "64x64", "--out", model.to_str().unwrap()]);
    let serve = Serve::start(&home);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/server_clients.py");
    let key = |v: &Value, f: &str| v["AccessKey"][f].as_str().unwrap().to_owned();
    let o = Command::new(bin.join("python"))
        .arg(script)
        .env("EDGEPACK_ENDPOINT", &serve.url)
        .env("EDGEPACK_KEY_ALL", key(&all, "AccessKeyId"))
        .env("EDGEPACK_SECRET_ALL", key(&all, "SecretAccessKey"))
        .env("EDGEPACK_KEY_SCOPED", key(&scoped, "AccessKeyId"))
        .env("EDGEPACK_SECRET_SCOPED", key(&scoped, "SecretAccessKey"))
        .env("EDGEPACK_MODEL", &model)
        .env("EDGEPACK_CONTRACT", dir.path().join("s.contract.json"))
        .env("AWS_CLI", bin.join("aws"))
        .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-aws-credentials"))
        .output()
        .expect("run python");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("server clients: ") && last.contains("checks passed"), "{out}");
    println!("{last}");
}
