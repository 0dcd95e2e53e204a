//! A signed HTTP/1.1 client of the server (hyper's client connection, one per [`Connection`],
//! kept alive): what the load test, the server's tests and other Rust callers use. Requests
//! are signed with SigV4 for `lookoutvision` as the AWS SDKs sign them.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::sigv4;

/// Credentials and region to sign with.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Access key id.
    pub key: String,
    /// Secret.
    pub secret: String,
    /// Region (any: the server accepts every region).
    pub region: String,
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The `x-amzn-ErrorType` of an error answer.
    pub fn error_type(&self) -> Option<&str> {
        self.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The certificates a TLS connection trusts: the PEM file `ca_bundle` when given (as the
/// AWS CLI's `AWS_CA_BUNDLE`), else the system's.
pub fn trust(ca_bundle: Option<&std::path::Path>) -> Result<tokio_rustls::rustls::RootCertStore, ClientError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match ca_bundle {
        Some(p) => CertificateDer::pem_file_iter(p)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| ClientError::Request(format!("CA bundle {}: {e}", p.display())))?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    for c in certs {
        roots.add(c).map_err(|e| ClientError::Request(format!("a trusted certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Request("no trusted certificates (give a CA bundle)".into()));
    }
    Ok(roots)
}

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built or signed.
    #[error("request: {0}")]
    Request(String),
}

/// One kept-alive connection to the server.
pub struct Connection {
    host: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects (plain HTTP).
    pub async fn open(addr: SocketAddr) -> Result<Connection, ClientError> {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| ClientError::Connect(addr, e))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Connection { host: addr.to_string(), sender })
    }

    /// Connects with TLS to `host` (its certificate must name it and chain to `roots`);
    /// `host_header` is what requests are signed and sent for (`host[:port]`).
    pub async fn open_tls(
        addr: SocketAddr,
        host: &str,
        host_header: &str,
        roots: tokio_rustls::rustls::RootCertStore,
    ) -> Result<Connection, ClientError> {
        use tokio_rustls::rustls;
        let cfg =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Request(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| ClientError::Request(format!("server name {host}: {e}")))?;
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| ClientError::Connect(addr, e))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Connect(addr, e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Connection { host: host_header.to_owned(), sender })
    }

    /// Sends a request, signed unless `creds` is `None`; `headers` are extra (lowercase) ones.
    pub async fn call(
        &mut self,
        creds: Option<&Credentials>,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut all: Vec<(String, String)> =
            vec![("host".into(), self.host.clone()), ("x-amz-date".into(), amz_date.clone())];
        all.extend(headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())));
        if let Some(c) = creds {
            let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
            let payload = sigv4::sha256_hex(&body);
            let mut names: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
            names.sort();
            names.dedup();
            let r = sigv4::Request { method, path, query, headers: &all, payload_sha256: &payload };
            let auth = sigv4::sign(&r, &names, &amz_date, &c.key, &c.secret, &c.region, crate::auth::SERVICE)
                .map_err(|e| ClientError::Request(e.to_string()))?;
            all.push(("authorization".into(), auth));
        }
        let mut req = Request::builder().method(method).uri(path_and_query);
        for (n, v) in &all {
            req = req.header(n, v);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| ClientError::Request(e.to_string()))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }
}
