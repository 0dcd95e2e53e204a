//! Connections: the accept loop, TLS, HTTP/1.1 with a header-read deadline, a cap on open
//! connections, and a graceful stop (no new connections, requests in flight answered).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::{app, AppState, Config, Limits};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Plain HTTP off loopback without `insecure_http`.
    #[error(
        "plain HTTP on {0} would let anyone on the network read the requests: give a certificate and key (TLS), \
         listen on loopback, or force it (--insecure-http)"
    )]
    PlainOffLoopback(SocketAddr),
    /// The certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding the address failed.
    #[error("{0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A running server.
pub struct Server {
    /// The address it listens on (the port chosen when 0 was asked).
    pub local_addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `scheme://addr`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.local_addr)
    }

    /// Stops accepting, lets requests in flight finish (up to `grace`), then returns.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, self.task).await;
    }

    /// Runs until the process gets SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self, grace: Duration) {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        self.stop(grace).await;
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ListenError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    fn at(p: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> ListenError + '_ {
        move |e| ListenError::Tls(format!("{}: {e}", p.display()))
    }
    let certs =
        CertificateDer::pem_file_iter(cert).map_err(at(cert))?.collect::<Result<Vec<_>, _>>().map_err(at(cert))?;
    if certs.is_empty() {
        return Err(ListenError::Tls(format!("{}: no certificate in the file", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(at(key))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ListenError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Binds and starts serving in the background (on the current tokio runtime).
pub async fn start(state: Arc<AppState>, config: &Config) -> Result<Server, ListenError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None if !config.addr.ip().is_loopback() && !config.insecure_http => {
            return Err(ListenError::PlainOffLoopback(config.addr))
        }
        None => None,
    };
    let listener = TcpListener::bind(config.addr).await.map_err(|e| ListenError::Bind(config.addr, e))?;
    let local_addr = listener.local_addr().map_err(|e| ListenError::Bind(config.addr, e))?;
    let (stop, stopped) = watch::channel(false);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let limits = state.limits.clone();
    tokio::spawn(recover_loop(state.clone(), stopped.clone()));
    let task = tokio::spawn(accept_loop(listener, tls, app(state), limits, stopped));
    Ok(Server { local_addr, scheme, stop, task })
}

/// Applies [`package::Service::recover`] every half heartbeat limit (at least every second)
/// until the server stops: a job whose worker died is FAILED without anyone asking about it,
/// and a job accepted by a server that died before a worker claimed it is run here.
async fn recover_loop(state: Arc<AppState>, mut stopped: watch::Receiver<bool>) {
    let every = (state.service.settings().stale_after / 2).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        let svc = state.service.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || svc.recover()).await {
            eprintln!("edgepack serve: recovering jobs: {e}");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("never closed"),
            _ = stopped.changed() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of file descriptors and the like: pause rather than spin.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, limits, stopped) = (app.clone(), tls.clone(), limits.clone(), stopped.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(stream, app, &limits, stopped).await,
                Some(acceptor) => {
                    // The handshake has the header deadline too (a silent client is dropped).
                    if let Ok(Ok(s)) = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                        serve_connection(s, app, &limits, stopped).await
                    }
                }
            }
        });
    }
    // Stopped: wait for the connections to finish their requests.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

async fn serve_connection<S>(io: S, app: axum::Router, limits: &Limits, mut stopped: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
