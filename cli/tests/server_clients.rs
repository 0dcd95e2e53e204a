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

/// The PostgreSQL server of the shared-store tests (`EDGEPACK_POSTGRES_URL` at build time).
#[cfg(not(no_postgres))]
const POSTGRES_URL: &str = env!("EDGEPACK_POSTGRES_URL");
#[cfg(no_postgres)]
const POSTGRES_URL: &str = "";

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
        Self::spawn(home, extra, &[])
    }

    /// With environment variables `env` (fail points, the heartbeat limit).
    fn start_env(home: &Path, env: &[(&str, &str)]) -> Serve {
        Self::spawn(home, &[], env)
    }

    fn spawn(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgepack"))
            .args(["serve", "--port", "0"])
            .args(extra)
            .env("EDGEPACK_HOME", home)
            .env("EDGEPACK_AGENT_DIR", common::agent_builds(home))
            .env_remove("FAILPOINTS")
            .envs(env.iter().copied())
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
    let dir = tempfile::tempdir().unwrap();
    aws_clients_flow(dir.path(), &dir.path().join("home"), "");
}

#[test]
#[cfg_attr(
    any(no_aws_clients, no_postgres),
    ignore = "skipped: no AWS CLI/boto3 or no PostgreSQL (EDGEPACK_AWS_BIN=$(bash ci/setup-aws.sh) \
              EDGEPACK_POSTGRES_URL=$(bash ci/setup-postgres.sh), then rebuild)"
)]
fn the_aws_cli_and_boto3_run_the_whole_flow_against_edgepack_serve_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new();
    let home = dir.path().join("home");
    let shown = ok_json(&home, &["configure-job-store", "--postgres", &db.url]);
    assert_eq!(shown["JobStore"]["Postgres"]["Url"], db.url.replace(":edgepack-ci@", ":***@"), "{shown}");
    aws_clients_flow(dir.path(), &home, "pg");
    // It all went to the database (the suite deletes its projects at the end; the client
    // tokens, component reservations and keys stay), no SQLite files in the home.
    assert!(!home.join("jobs.sqlite").exists() && !home.join("access-keys.sqlite").exists());
    let tokens = db.count("SELECT COUNT(*) FROM client_tokens");
    let reserved = db.count("SELECT COUNT(*) FROM component_reservations");
    let keys = db.count("SELECT COUNT(*) FROM access_keys");
    assert!(tokens >= 2 && reserved >= 1 && keys == 2, "tokens {tokens}, reservations {reserved}, keys {keys}");
}

/// The real clients' suite (`ci/server_clients.py`) against `edgepack serve` on `home`; its
/// projects named with `prefix`.
fn aws_clients_flow(dir: &Path, home: &Path, prefix: &str) {
    #[cfg(not(no_aws_clients))]
    let bin = Path::new(env!("EDGEPACK_AWS_BIN"));
    #[cfg(no_aws_clients)]
    let bin = Path::new("");
    let all = ok_json(home, &["create-access-key", "--all-projects"]);
    let scoped = ok_json(home, &["create-access-key", "--project", "line-*"]);
    let model = dir.join("s.onnx");
    ok_json(home, &["sample-model", "--kind", "classification", "--size", "64x64", "--out", model.to_str().unwrap()]);
    let serve = Serve::start(home);
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
        .env("EDGEPACK_CONTRACT", dir.join("s.contract.json"))
        .env("EDGEPACK_PROJECT_PREFIX", prefix)
        .env("AWS_CLI", bin.join("aws"))
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .output()
        .expect("run python");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("server clients: ") && last.contains("checks passed"), "{out}");
    println!("{last}");
}

/// A fresh PostgreSQL database of the server `EDGEPACK_POSTGRES_URL` names (dropped with it).
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn new() -> Database {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let admin = POSTGRES_URL.to_owned();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ep_cli_{}_{n}", std::process::id());
        package::store::pg::drop_database(&admin, &name).unwrap();
        let url = package::store::pg::create_database(&admin, &name).unwrap();
        Database { admin, name, url }
    }

    /// The one integer a query answers (`SELECT COUNT(*) …`), through a connection as the
    /// service makes them.
    fn count(&self, sql: &str) -> i64 {
        let config = package::store::StoreConfig::Postgres(package::store::PostgresSettings {
            url: self.url.clone(),
            max_connections: Some(1),
        });
        let dir = tempfile::tempdir().unwrap();
        let store = package::store::Store::open(dir.path(), &config).unwrap();
        store.connect().unwrap().query_one(sql, &[]).unwrap().get(0).unwrap()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = package::store::pg::drop_database(&self.admin, &self.name);
    }
}

/// Two servers (`homes`, configured for `db`, sharing the master key of the first, as a team
/// copies it to every server) and an access key for every project.
fn two_servers(dir: &Path, db: &Database, extra: [&[(&str, &str)]; 2]) -> (Value, Serve, Serve) {
    let homes = [dir.join("server-a"), dir.join("server-b")];
    for home in &homes {
        ok_json(home, &["configure-job-store", "--postgres", &db.url]);
    }
    let k = ok_json(&homes[0], &["create-access-key", "--all-projects"]);
    std::fs::create_dir_all(homes[1].join("keys")).unwrap();
    std::fs::copy(homes[0].join("keys/access-keys.key"), homes[1].join("keys/access-keys.key")).unwrap();
    let a = Serve::start_env(&homes[0], extra[0]);
    let b = Serve::start_env(&homes[1], extra[1]);
    (k, a, b)
}

/// Runs `client` and parses its JSON answer, failing with its error output.
fn client_json(dir: &Path, url: &str, k: &Value, args: &[&str]) -> Value {
    let o = client(dir, url, k, None, args);
    assert!(o.status.success(), "{args:?} on {url}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

/// A job's status and message through `url`, polled until `done` says so (60 s at most).
fn poll_job(dir: &Path, url: &str, k: &Value, job: &str, done: impl Fn(&str, &str) -> bool) -> (String, String) {
    let t0 = std::time::Instant::now();
    loop {
        let d =
            client_json(dir, url, k, &["describe-model-packaging-job", "--project-name", "line-1", "--job-name", job]);
        let j = &d["ModelPackagingDescription"];
        let (st, msg) =
            (j["Status"].as_str().unwrap().to_owned(), j["StatusMessage"].as_str().unwrap_or("").to_owned());
        if done(&st, &msg) || t0.elapsed() > std::time::Duration::from_secs(60) {
            return (st, msg);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

const SHARED_CONFIG: &str =
    "Greengrass={TargetPlatform={Os=LINUX,Arch=X86_64},CompilerOptions='{\"mcpu\": \"core-avx2\"}',\
                             S3OutputLocation={Bucket=parts},ComponentName=line1.Defects,ComponentVersion=1.0.0}";

/// Project `line-1` made through `a` with the sample model imported through `b`.
fn shared_project(dir: &Path, k: &Value, a: &Serve, b: &Serve) {
    let model = dir.join("s.onnx");
    ok_json(
        &dir.join("server-a"),
        &["sample-model", "--kind", "classification", "--size", "64x64", "--out", model.to_str().unwrap()],
    );
    client_json(dir, &a.url, k, &["create-project", "--project-name", "line-1"]);
    let contract = format!("file://{}", dir.join("s.contract.json").display());
    let import =
        ["import-model", "--project-name", "line-1", "--model", model.to_str().unwrap(), "--contract", &contract];
    client_json(dir, &b.url, k, &import);
}

#[test]
#[cfg_attr(
    no_postgres,
    ignore = "skipped: no PostgreSQL (EDGEPACK_POSTGRES_URL=$(bash ci/setup-postgres.sh), then rebuild)"
)]
fn two_servers_on_one_postgresql_database_make_one_job_from_20_identical_starts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new();
    let (k, a, b) = two_servers(dir.path(), &db, [&[], &[]]);
    shared_project(dir.path(), &k, &a, &b);
    // 20 clients at once, half on each server, the same request and client token.
    let start = [
        "start-model-packaging-job",
        "--project-name",
        "line-1",
        "--model-version",
        "1",
        "--client-token",
        "one-job-please",
        "--configuration",
        SHARED_CONFIG,
    ];
    let children: Vec<_> = (0..20)
        .map(|i| {
            let url = if i % 2 == 0 { &a.url } else { &b.url };
            client_cmd(dir.path(), url, &k, None, &start).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let names: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            v["JobName"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
    for s in [&a, &b] {
        let l = client_json(dir.path(), &s.url, &k, &["list-model-packaging-jobs", "--project-name", "line-1"]);
        assert_eq!(l["ModelPackagingJobs"].as_array().unwrap().len(), 1, "{l}");
    }
    // The one job runs (on the server that accepted it) and both servers see it succeed.
    let (st, msg) = poll_job(dir.path(), &b.url, &k, &names[0], |s, _| s == "SUCCEEDED" || s == "FAILED");
    assert_eq!(st, "SUCCEEDED", "{msg}");
    assert_eq!(db.count("SELECT COUNT(*) FROM jobs"), 1);
}

#[test]
#[cfg_attr(
    any(no_postgres, not(feature = "fault-injection")),
    ignore = "skipped: needs PostgreSQL (EDGEPACK_POSTGRES_URL=$(bash ci/setup-postgres.sh)) and the \
              fault-injection feature (ci/test.sh builds both in)"
)]
fn a_worker_lost_with_its_server_is_failed_by_the_other_server_which_then_runs_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new();
    // Server A's workers stop in the parity check (a fail point holds them there); server B
    // counts a worker gone after 1.5 s without a heartbeat.
    let (k, a, b) = two_servers(
        dir.path(),
        &db,
        [&[("FAILPOINTS", "job-parity=sleep(60000)")], &[("EDGEPACK_HEARTBEAT_TIMEOUT", "1.5")]],
    );
    shared_project(dir.path(), &k, &a, &b);
    let start = |url: &str, job: &str| {
        let args = [
            "start-model-packaging-job",
            "--project-name",
            "line-1",
            "--model-version",
            "1",
            "--job-name",
            job,
            "--configuration",
            SHARED_CONFIG,
        ];
        client_json(dir.path(), url, &k, &args);
    };
    start(&a.url, "lost");
    let (st, msg) = poll_job(dir.path(), &b.url, &k, "lost", |s, m| s == "RUNNING" && m.starts_with("checking parity"));
    assert_eq!((st.as_str(), msg.starts_with("checking parity")), ("RUNNING", true), "{msg}");
    // Machine A is lost: its worker (supervisor and child) and its server, all at once.
    let home_a = format!("EDGEPACK_HOME={}", dir.path().join("server-a").display());
    let workers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let has = |hay: &[u8], v: &str| hay.split(|&b| b == 0).any(|x| x == v.as_bytes());
            (has(&cmd, "run-packaging-job") && has(&env, &home_a)).then_some(pid)
        })
        .collect();
    assert_eq!(workers.len(), 2, "server A's worker and its child: {workers:?}");
    for pid in &workers {
        assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    }
    drop(a);
    // Server B fails the job by the heartbeat rule on its own (a list does not apply the rule,
    // B's periodic recovery does)…
    let t0 = std::time::Instant::now();
    let listed = loop {
        let l = client_json(dir.path(), &b.url, &k, &["list-model-packaging-jobs", "--project-name", "line-1"]);
        let job = l["ModelPackagingJobs"][0].clone();
        if job["Status"] == "FAILED" || t0.elapsed() > std::time::Duration::from_secs(30) {
            break job;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(listed["Status"], "FAILED", "{listed}");
    let (st, msg) = poll_job(dir.path(), &b.url, &k, "lost", |s, _| s == "FAILED");
    assert_eq!(st, "FAILED");
    assert!(msg.starts_with("interrupted: the worker stopped"), "{msg}");
    // …which frees the component version: the same job, started again on B, runs there.
    start(&b.url, "again");
    let (st, msg) = poll_job(dir.path(), &b.url, &k, "again", |s, _| s == "SUCCEEDED" || s == "FAILED");
    assert_eq!(st, "SUCCEEDED", "{msg}");
}
