//! A bounded load test of `edgepack serve` on loopback: N readers (DescribeProject,
//! ListProjects, DescribeModel, ListModelPackagingJobs in turn) and M starters
//! (StartModelPackagingJob, each with its own client token, job name and component version),
//! every client on its own kept-alive connection, all signed, for a fixed time. Prints a
//! Markdown table: requests, throughput, p50/p99/max latency and errors per kind.
//!
//! `cargo run --release -p edgepack-server --example load -- [--seconds 60] [--readers 200]
//! [--starters 50] [--postgres URL]`. The server runs in this process on a fresh home with the
//! SQLite store, or with `--postgres` (a role that may create databases, as
//! `ci/setup-postgres.sh` prints) on a fresh PostgreSQL database made for the run and dropped
//! after it; jobs are recorded, not run (no worker), so the API and its job store are what is
//! measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use package::sample::{sample_contract, sample_model, SampleKind};
use package::store::{PostgresSettings, StoreConfig};
use package::{Runner, Service, Settings};
use server::client::{Connection, Credentials};
use server::keys::{KeyStore, Scope};
use server::{AppState, Config, Limits};

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: usize,
    first_error: Option<String>,
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} {v}: expected a number")))
        .unwrap_or(default)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

async fn client_loop(addr: std::net::SocketAddr, creds: Credentials, until: Instant, starter: Option<usize>) -> Tally {
    let mut t = Tally::default();
    let mut conn = match Connection::open(addr).await {
        Ok(c) => Some(c),
        Err(e) => {
            t.errors += 1;
            t.first_error = Some(e.to_string());
            None
        }
    };
    let mut i = 0usize;
    while Instant::now() < until {
        let Some(c) = conn.as_mut() else { break };
        let (method, path, body, token) = match starter {
            Some(s) => {
                let body = format!(
                    r#"{{"ModelVersion":"1","JobName":"s{s}-{i}","Configuration":{{"Greengrass":{{"TargetPlatform":{{"Os":"LINUX","Arch":"X86_64"}},"CompilerOptions":"{{'mcpu':'core-avx2'}}","S3OutputLocation":{{"Bucket":"parts"}},"ComponentName":"load.c{s}","ComponentVersion":"{i}.0.0"}}}}}}"#
                );
                ("POST", "/2020-11-20/projects/load/modelpackagingjobs".to_owned(), body, format!("tok-{s}-{i}"))
            }
            None => {
                let path = match i % 4 {
                    0 => "/2020-11-20/projects/load",
                    1 => "/2020-11-20/projects?maxResults=20",
                    2 => "/2020-11-20/projects/load/models/latest",
                    _ => "/2020-11-20/projects/load/modelpackagingjobs?maxResults=20",
                };
                ("GET", path.to_owned(), String::new(), String::new())
            }
        };
        let mut headers = vec![("content-type", "application/json")];
        if !token.is_empty() {
            headers.push(("x-amzn-client-token", token.as_str()));
        }
        let t0 = Instant::now();
        match c.call(Some(&creds), method, &path, &headers, body.into_bytes()).await {
            Ok(r) if r.status.is_success() => t.latencies_us.push(t0.elapsed().as_micros() as u64),
            Ok(r) => {
                t.errors += 1;
                t.first_error.get_or_insert_with(|| format!("{} {:?} {}", r.status, r.error_type(), r.json()));
            }
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
                conn = Connection::open(addr).await.ok();
            }
        }
        i += 1;
    }
    t
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = arg("--seconds", 60);
    let readers = arg("--readers", 200);
    let starters = arg("--starters", 50);
    let admin = std::env::args().skip_while(|a| a != "--postgres").nth(1);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path().join("home");
    // The job store's calls block: made off the runtime's threads.
    let setup = {
        let (root, admin) = (root.clone(), admin.clone());
        tokio::task::spawn_blocking(move || setup(&root, admin.as_deref()))
    };
    let (service, keys, creds, store) = setup.await.expect("setup");
    let limits = Limits::default();
    let state = Arc::new(AppState::new(service, keys, limits.clone()));
    let config = Config { addr: "127.0.0.1:0".parse().unwrap(), tls: None, insecure_http: false, limits };
    let srv = server::listen::start(state, &config).await.expect("server");
    let addr = srv.local_addr;

    let until = Instant::now() + Duration::from_secs(seconds as u64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..readers + starters {
        let starter = (r >= readers).then_some(r - readers);
        tasks.push(tokio::spawn(client_loop(addr, creds.clone(), until, starter)));
    }
    let (mut read, mut start) = (Tally::default(), Tally::default());
    for (n, t) in tasks.into_iter().enumerate() {
        let t = t.await.expect("client task");
        let into = if n < readers { &mut read } else { &mut start };
        into.latencies_us.extend(t.latencies_us);
        into.errors += t.errors;
        if into.first_error.is_none() {
            into.first_error = t.first_error;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!("load: {readers} readers, {starters} starters, {wall:.1} s, {store} store, loopback\n");
    println!("| kind | clients | requests | req/s | p50 ms | p99 ms | max ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, clients, t) in [("describe/list", readers, &mut read), ("start", starters, &mut start)] {
        t.latencies_us.sort_unstable();
        let n = t.latencies_us.len();
        println!(
            "| {name} | {clients} | {n} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            n as f64 / wall,
            pct(&t.latencies_us, 0.5),
            pct(&t.latencies_us, 0.99),
            pct(&t.latencies_us, 1.0),
            t.errors
        );
        if let Some(e) = &t.first_error {
            println!("\nfirst {name} error: {e}");
        }
    }
    srv.stop(Duration::from_secs(5)).await;
    if let Some(admin) = admin {
        tokio::task::spawn_blocking(move || package::store::pg::drop_database(&admin, &load_database()))
            .await
            .expect("drop")
            .expect("drop the load test's database");
    }
}

/// The database a `--postgres` run makes for itself.
fn load_database() -> String {
    format!("ep_load_{}", std::process::id())
}

/// The service on a fresh home (on a fresh database of `admin`'s server with `--postgres`),
/// project `load` with a sample model, and a key for every project.
fn setup(root: &std::path::Path, admin: Option<&str>) -> (Service, KeyStore, Credentials, &'static str) {
    if let Some(admin) = admin {
        package::store::pg::drop_database(admin, &load_database()).expect("drop an old load database");
        let url = package::store::pg::create_database(admin, &load_database()).expect("create the load database");
        let settings = PostgresSettings { url, max_connections: Some(16) };
        StoreConfig::Postgres(settings).save(root).expect("job store setting");
    }
    let service = Service::open(root, Settings { runner: Runner::Manual, ..Settings::default() }).expect("service");
    service.create_project("load").expect("project");
    service
        .import_model(&package::projects::ImportModel {
            project_name: "load".into(),
            onnx: sample_model(SampleKind::Classification, 32, 32),
            source: "sample".into(),
            description: None,
            contract: sample_contract(SampleKind::Classification, 32, 32),
        })
        .expect("model");
    let keys = KeyStore::for_service(&service).expect("keys");
    let k = keys.create(&Scope::all()).expect("key");
    let creds = Credentials { key: k.access_key_id, secret: k.secret_access_key, region: "us-east-1".into() };
    (service, keys, creds, if admin.is_some() { "PostgreSQL" } else { "SQLite" })
}
