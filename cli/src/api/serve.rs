//! `serve` and the access-key commands (`create-access-key`, `list-access-keys`,
//! `delete-access-key`): the packaging API over HTTP, on the same home as every other command.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use server::keys::{KeyStore, Scope};

use super::args::{Global, ServeArgs};
use super::{home, worker_runner, Failure};

fn keys(g: &Global) -> Result<KeyStore, Failure> {
    if g.endpoint_url.is_some() {
        return Err("access keys are managed on the server's home; the key commands do not take --endpoint-url"
            .to_owned()
            .into());
    }
    let root = home(g);
    std::fs::create_dir_all(&root).map_err(|e| Failure::Usage(format!("{}: {e}", root.display())))?;
    KeyStore::open(&root).map_err(|e| Failure::Usage(e.to_string()))
}

pub(super) fn create_key(projects: Vec<String>, all: bool, g: &Global) -> Result<Value, Failure> {
    let scope = if all { Scope::all() } else { Scope::new(projects).map_err(|e| Failure::Usage(e.to_string()))? };
    let k = keys(g)?.create(&scope).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(json!({ "AccessKey": k }))
}

pub(super) fn list_keys(g: &Global) -> Result<Value, Failure> {
    Ok(json!({ "AccessKeys": keys(g)?.list().map_err(|e| Failure::Usage(e.to_string()))? }))
}

pub(super) fn delete_key(id: &str, g: &Global) -> Result<Value, Failure> {
    keys(g)?.delete(id).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(json!({ "AccessKeyId": id }))
}

/// Serves until SIGINT or SIGTERM. The first line on standard output is
/// `edgepack serve: listening on <url>` (scripts read the port from it).
pub(super) fn serve(a: ServeArgs, g: &Global) -> Result<ExitCode, Failure> {
    let service = super::backend::Backend::local(g, worker_runner(), "serve")?;
    // The keys in the service's own job store when it is shared: one pool, one migration.
    let store = KeyStore::for_service(&service).map_err(|e| Failure::Usage(e.to_string()))?;
    let n_keys = store.list().map_err(|e| Failure::Usage(e.to_string()))?.len();
    let limits = server::Limits {
        max_model_bytes: a.max_model_mib << 20,
        clock_skew: Duration::from_secs(a.clock_skew_secs),
        ..server::Limits::default()
    };
    let config = server::Config {
        addr: SocketAddr::new(a.address, a.port),
        tls: a.tls_cert.zip(a.tls_key),
        insecure_http: a.insecure_http,
        limits: limits.clone(),
    };
    let state = Arc::new(server::AppState::new(service, store, limits));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("the server's runtime: {e}")))?;
    rt.block_on(async {
        let srv = server::listen::start(state, &config).await.map_err(|e| Failure::Usage(e.to_string()))?;
        println!("edgepack serve: listening on {}", srv.url());
        if n_keys == 0 {
            eprintln!("edgepack serve: no access keys yet: every request is refused until `edgepack create-access-key` makes one");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        srv.run_until_signal(Duration::from_secs(30)).await;
        eprintln!("edgepack serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}
