//! `edgepack serve`: the packaging API over HTTP, as the managed service answered it, so that
//! the AWS SDKs and the AWS CLI (`--endpoint-url`) work against it.
//!
//! - [`routes`]: the rest-json binding of each operation (method, URI, status code, JSON
//!   bodies, errors with `x-amzn-ErrorType`), on the packaging library unchanged underneath;
//! - [`auth`] and [`sigv4`]: every request signed with SigV4 (service `lookoutvision`, any
//!   region) by an access key of [`keys`], within a clock-skew window, and scoped to the
//!   key's projects;
//! - [`listen`]: the connections: HTTP/1.1, TLS (rustls) when given a certificate, plain HTTP
//!   on loopback only unless forced, limits on connections, header and body time and body
//!   size, so that slow or oversized clients do not hold up the others.

pub mod auth;
pub mod client;
pub mod errors;
pub mod keys;
pub mod listen;
pub mod routes;
pub mod sigv4;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;

/// Limits that keep one client from holding up the others.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest JSON body (every operation but the import).
    pub max_json_bytes: usize,
    /// The largest ONNX file an import may upload.
    pub max_model_bytes: usize,
    /// A request's headers must arrive within this (slow clients are cut off).
    pub header_timeout: Duration,
    /// A request's body must arrive within this.
    pub body_timeout: Duration,
    /// Requests dated further than this from the server's clock are refused.
    pub clock_skew: Duration,
    /// Open connections at most; more wait in the listen queue.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: 1 << 20,
            max_model_bytes: 1 << 30,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(300),
            clock_skew: Duration::from_secs(15 * 60),
            max_connections: 1024,
        }
    }
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address (port 0: any free port).
    pub addr: SocketAddr,
    /// PEM certificate chain and private key: TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP on an address other than loopback (requests and their signatures readable
    /// by anyone on the network).
    pub insecure_http: bool,
    /// Limits.
    pub limits: Limits,
}

/// What every request's handler shares.
pub struct AppState {
    /// The packaging service.
    pub service: package::Service,
    /// Access keys.
    pub keys: auth::KeyCache,
    /// Limits.
    pub limits: Limits,
    /// A job-store connection held open while serving. The service opens a connection per
    /// operation; when the last one closes, SQLite checkpoints the WAL, and the next one to
    /// open rebuilds the WAL index by reading the whole WAL: held open, neither happens
    /// (a StartModelPackagingJob took 12 ms without it, most of it in those reads).
    /// (SQLite only: a PostgreSQL store keeps its pool.)
    _keep_open: std::sync::Mutex<Option<package::store::Db>>,
    /// This server's writes to the job store go one at a time, in arrival order: SQLite lets
    /// one writer in and makes the others retry after sleeps that grow, so concurrent writers
    /// otherwise wait in no order (seconds at the 99th percentile with 50 concurrent starts).
    pub(crate) writes: tokio::sync::Semaphore,
    /// Operations running on the blocking pool at once (twice the cores); the others wait in
    /// arrival order. Unbounded, 200 concurrent reads time-slice the cores 200 ways and a
    /// write waits behind all of them.
    pub(crate) running: tokio::sync::Semaphore,
}

impl AppState {
    /// The state of a server on `service`.
    pub fn new(service: package::Service, keys: keys::KeyStore, limits: Limits) -> AppState {
        let keep_open = if service.store().is_shared() { None } else { service.db().ok() };
        AppState {
            service,
            keys: auth::KeyCache::new(keys),
            limits,
            _keep_open: std::sync::Mutex::new(keep_open),
            writes: tokio::sync::Semaphore::new(1),
            running: tokio::sync::Semaphore::new(2 * std::thread::available_parallelism().map_or(2, |n| n.get())),
        }
    }
}

/// Every response carries a request id, as AWS's do (`x-amzn-RequestId`).
async fn request_id(mut r: Response) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    r.headers_mut().insert("x-amzn-requestid", HeaderValue::from_str(&id).expect("a uuid is ASCII"));
    r
}

/// The whole application: routes behind authentication.
pub fn app(state: Arc<AppState>) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware))
        .layer(axum::middleware::map_response(request_id))
        .with_state(state)
}
