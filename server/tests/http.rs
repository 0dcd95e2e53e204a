//! The server over real sockets: every operation's binding (method, path, status, body,
//! headers), authentication failures with AWS's codes, project scopes, and abuse — oversized
//! bodies, slow clients, malformed requests and path tricks — refused without holding up other
//! clients; TLS with a certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use package::sample::{sample_contract, sample_model, SampleKind};
use package::{Runner, Service, Settings};
use server::client::{Connection, Credentials, Reply};
use server::keys::{KeyStore, Scope};
use server::listen::Server;
use server::{AppState, Config, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Fixture {
    _dir: tempfile::TempDir,
    service: Service,
    server: Server,
    all: Credentials,
    scoped: Credentials,
}

impl Fixture {
    async fn start(
        limits: Limits,
        tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
        dir: tempfile::TempDir,
    ) -> Fixture {
        let root = dir.path().join("home");
        let service = Service::open(&root, Settings { runner: Runner::Manual, ..Settings::default() }).unwrap();
        let keys = KeyStore::open(&root).unwrap();
        let creds = |k: server::keys::NewKey| Credentials {
            key: k.access_key_id,
            secret: k.secret_access_key,
            region: "ap-south-1".into(),
        };
        let all = creds(keys.create(&Scope::all()).unwrap());
        let scoped = creds(keys.create(&Scope::new(vec!["line-*".into()]).unwrap()).unwrap());
        let state = Arc::new(AppState::new(service.clone(), keys, limits.clone()));
        let config = Config { addr: "127.0.0.1:0".parse().unwrap(), tls, insecure_http: false, limits };
        let server = server::listen::start(state, &config).await.unwrap();
        Fixture { _dir: dir, service, server, all, scoped }
    }

    async fn new() -> Fixture {
        Self::start(Limits::default(), None, tempfile::tempdir().unwrap()).await
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr
    }

    async fn call(&self, creds: Option<&Credentials>, method: &str, path: &str, body: &str) -> Reply {
        let mut c = Connection::open(self.addr()).await.unwrap();
        c.call(creds, method, path, &[("content-type", "application/json")], body.as_bytes().to_vec()).await.unwrap()
    }

    async fn create_with_token(&self, name: &str, token: &str) -> Reply {
        let body = format!(r#"{{"ProjectName":"{name}"}}"#).into_bytes();
        let mut c = Connection::open(self.addr()).await.unwrap();
        c.call(Some(&self.all), "POST", "/2020-11-20/projects", &[("x-amzn-client-token", token)], body).await.unwrap()
    }

    async fn ok(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let r = self.call(Some(&self.all), method, path, body).await;
        assert!(r.status.is_success(), "{method} {path}: {} {:?} {}", r.status, r.error_type(), r.json());
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers.contains_key("x-amzn-requestid"));
        r.json()
    }
}

/// Sends raw bytes on a new connection; what comes back until the server closes it (or 10 s).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_with_its_binding() {
    let f = Fixture::new().await;
    let m = f.ok("POST", "/2020-11-20/projects", r#"{"ProjectName":"line-1"}"#).await;
    assert_eq!(m["ProjectMetadata"]["ProjectName"], "line-1");
    assert!(m["ProjectMetadata"]["CreationTimestamp"].is_f64());
    assert_eq!(f.ok("GET", "/2020-11-20/projects", "").await["Projects"][0]["ProjectName"], "line-1");
    // CreateProject's client token (X-Amzn-Client-Token): a retry answers as the first call.
    let first = f.create_with_token("line-2", "tok-1").await.json();
    assert_eq!(f.create_with_token("line-2", "tok-1").await.json(), first, "a retry with the same token");
    let r = f.create_with_token("line-3", "tok-1").await;
    assert_eq!((r.status.as_u16(), r.error_type()), (409, Some("ConflictException")), "{}", r.json());
    let r = f.create_with_token("line-2", "tok-2").await;
    assert_eq!((r.status.as_u16(), r.error_type()), (409, Some("ConflictException")), "a new token, a taken name");
    f.ok("DELETE", "/2020-11-20/projects/line-2", "").await;
    assert_eq!(f.ok("GET", "/2020-11-20/projects/line-1", "").await["ProjectDescription"]["ProjectName"], "line-1");

    // The import extension: the ONNX file as the body, the contract in a header.
    let contract = serde_json::to_string(&sample_contract(SampleKind::Classification, 32, 32)).unwrap();
    let mut c = Connection::open(f.addr()).await.unwrap();
    let r = c
        .call(
            Some(&f.all),
            "POST",
            "/edgepack/2020-11-20/projects/line-1/models",
            &[
                ("content-type", "application/octet-stream"),
                ("x-edgepack-contract", &contract),
                ("x-edgepack-source", "s.onnx"),
            ],
            sample_model(SampleKind::Classification, 32, 32),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["ModelDescription"]["ModelVersion"], "1");
    assert_eq!(r.json()["ModelDescription"]["StatusMessage"], "imported from s.onnx");
    let r = c
        .call(Some(&f.all), "POST", "/edgepack/2020-11-20/projects/line-1/models", &[], b"onnx".to_vec())
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.error_type()), (400, Some("ValidationException")));
    assert!(r.json()["Message"].as_str().unwrap().contains("X-Edgepack-Contract"), "{}", r.json());

    assert_eq!(f.ok("GET", "/2020-11-20/projects/line-1/models", "").await["Models"][0]["ModelVersion"], "1");
    assert_eq!(
        f.ok("GET", "/2020-11-20/projects/line-1/models/latest", "").await["ModelDescription"]["Status"],
        "TRAINED"
    );
    let start = r#"{"ModelVersion":"1","JobName":"j1","Configuration":{"Greengrass":{"TargetPlatform":{"Os":"LINUX","Arch":"X86_64"},"CompilerOptions":"{'mcpu':'core-avx2'}","S3OutputLocation":{"Bucket":"parts"},"ComponentName":"c.one"}}}"#;
    assert_eq!(
        f.ok("POST", "/2020-11-20/projects/line-1/modelpackagingjobs", start).await,
        serde_json::json!({"JobName": "j1"})
    );
    let d = f.ok("GET", "/2020-11-20/projects/line-1/modelpackagingjobs/j1", "").await;
    assert_eq!(d["ModelPackagingDescription"]["Status"], "CREATED");
    let page = f.ok("GET", "/2020-11-20/projects/line-1/modelpackagingjobs?maxResults=1", "").await;
    assert_eq!(page["ModelPackagingJobs"].as_array().unwrap().len(), 1);

    // A model with a job in progress stays; once the job has ended (run here: nobody else
    // runs jobs in this fixture) it may go.
    let r = f.call(Some(&f.all), "DELETE", "/2020-11-20/projects/line-1/models/1", "").await;
    assert_eq!((r.status.as_u16(), r.error_type()), (409, Some("ConflictException")), "{}", r.json());
    let svc = f.service.clone();
    tokio::task::spawn_blocking(move || svc.run_job("line-1", "j1")).await.unwrap().unwrap();
    let d = f.ok("GET", "/2020-11-20/projects/line-1/modelpackagingjobs/j1", "").await;
    assert!(["SUCCEEDED", "FAILED"].contains(&d["ModelPackagingDescription"]["Status"].as_str().unwrap()), "{d}");
    let r = f.call(Some(&f.all), "DELETE", "/2020-11-20/projects/line-1/models/1", "").await;
    assert_eq!(r.status, 202, "DeleteModel answers 202 Accepted");
    assert!(r.json()["ModelArn"].as_str().unwrap().ends_with("/line-1/1"));
    assert!(f.ok("DELETE", "/2020-11-20/projects/line-1", "").await["ProjectArn"]
        .as_str()
        .unwrap()
        .ends_with("/line-1"));
    let r = f.call(Some(&f.all), "GET", "/2020-11-20/projects/line-1", "").await;
    assert_eq!((r.status.as_u16(), r.error_type()), (404, Some("ResourceNotFoundException")));
    assert_eq!(r.json()["ResourceType"], "PROJECT");
    assert_eq!(r.json()["ResourceId"], "line-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_failures_answer_awss_codes() {
    let f = Fixture::new().await;
    let check = |r: Reply, status: u16, code: &str| {
        assert_eq!((r.status.as_u16(), r.error_type()), (status, Some(code)), "{}", r.json());
        r.json()["Message"].as_str().unwrap().to_owned()
    };
    check(f.call(None, "GET", "/2020-11-20/projects", "").await, 403, "MissingAuthenticationTokenException");
    let wrong = Credentials { secret: "x".repeat(40), ..f.all.clone() };
    let m = check(f.call(Some(&wrong), "GET", "/2020-11-20/projects", "").await, 403, "InvalidSignatureException");
    assert!(m.starts_with("The request signature we calculated does not match"), "{m}");
    let unknown = Credentials { key: "EPAKAAAAAAAAAAAAAAAA".into(), ..f.all.clone() };
    check(f.call(Some(&unknown), "GET", "/2020-11-20/projects", "").await, 403, "UnrecognizedClientException");
    // Scoped keys: denied outside their projects, whatever the operation.
    let m = check(
        f.call(Some(&f.scoped), "POST", "/2020-11-20/projects", r#"{"ProjectName":"other"}"#).await,
        403,
        "AccessDeniedException",
    );
    assert!(m.contains("lookoutvision:CreateProject") && m.contains("project/other"), "{m}");
    check(f.call(Some(&f.scoped), "GET", "/2020-11-20/projects/other/models", "").await, 403, "AccessDeniedException");
    f.ok("POST", "/2020-11-20/projects", r#"{"ProjectName":"other"}"#).await;
    let r = f.call(Some(&f.scoped), "POST", "/2020-11-20/projects", r#"{"ProjectName":"line-9"}"#).await;
    assert_eq!(r.status, 200);
    let seen = f.call(Some(&f.scoped), "GET", "/2020-11-20/projects", "").await.json();
    let names: Vec<&str> =
        seen["Projects"].as_array().unwrap().iter().map(|p| p["ProjectName"].as_str().unwrap()).collect();
    assert_eq!(names, ["line-9"], "a scoped key lists its own projects only");

    // Headers that are not a SigV4 authorization, or sign for something else.
    let bad = |auth: &str| {
        format!("GET /2020-11-20/projects HTTP/1.1\r\nHost: h\r\nX-Amz-Date: 20261204T000000Z\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n")
    };
    let out = raw(f.addr(), bad("Basic dXNlcjpwYXNz").as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 400") && out.contains("IncompleteSignatureException"), "{out}");
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let other_service = format!(
        "GET /2020-11-20/projects HTTP/1.1\r\nHost: h\r\nX-Amz-Date: {now}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={}/{}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\nConnection: close\r\n\r\n",
        f.all.key,
        &now[..8],
        "0".repeat(64)
    );
    let out = raw(f.addr(), other_service.as_bytes()).await;
    assert!(out.contains("InvalidSignatureException") && out.contains("scoped to correct service"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_and_path_tricks_are_refused() {
    let f = Fixture::new().await;
    let expect = |r: Reply, status: u16, code: &str| {
        assert_eq!((r.status.as_u16(), r.error_type()), (status, Some(code)), "{}", r.json());
    };
    expect(f.call(Some(&f.all), "POST", "/2020-11-20/projects", "{nope").await, 400, "SerializationException");
    expect(f.call(Some(&f.all), "POST", "/2020-11-20/projects", "[1]").await, 400, "SerializationException");
    expect(
        f.call(Some(&f.all), "POST", "/2020-11-20/projects", r#"{"ProjectName":7}"#).await,
        400,
        "SerializationException",
    );
    let unknown_member = r#"{"ModelVersion":"1","Bogus":1}"#;
    f.ok("POST", "/2020-11-20/projects", r#"{"ProjectName":"p"}"#).await;
    expect(
        f.call(Some(&f.all), "POST", "/2020-11-20/projects/p/modelpackagingjobs", unknown_member).await,
        400,
        "SerializationException",
    );
    expect(f.call(Some(&f.all), "GET", "/2020-11-20/projects?maxResults=many", "").await, 400, "ValidationException");
    expect(f.call(Some(&f.all), "GET", "/2020-11-20/projects?maxResults=1000", "").await, 400, "ValidationException");
    // Path tricks: encoded slashes and dots reach the name check, never the file system;
    // bytes that are not UTF-8, unbound paths and methods get errors, not panics.
    for path in ["/2020-11-20/projects/..%2F..%2Fetc", "/2020-11-20/projects/%2E%2E", "/2020-11-20/projects/a%00b"] {
        expect(f.call(Some(&f.all), "GET", path, "").await, 400, "ValidationException");
    }
    expect(f.call(Some(&f.all), "GET", "/2020-11-20/projects/%FF%FE", "").await, 400, "ValidationException");
    expect(
        f.call(Some(&f.all), "GET", "/2020-11-20/projects/p/../../etc/passwd", "").await,
        404,
        "UnknownOperationException",
    );
    expect(f.call(Some(&f.all), "PUT", "/2020-11-20/projects", "").await, 404, "UnknownOperationException");
    expect(f.call(Some(&f.all), "GET", "/", "").await, 404, "UnknownOperationException");
    // Not HTTP at all: the connection is answered 400 and closed; the server goes on.
    let out = raw(f.addr(), b"HELLO\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
    f.ok("GET", "/2020-11-20/projects", "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused_and_other_clients_go_on() {
    let limits = Limits { max_json_bytes: 1024, max_model_bytes: 4096, ..Limits::default() };
    let f = Fixture::start(limits, None, tempfile::tempdir().unwrap()).await;
    let big = format!(r#"{{"ProjectName":"{}"}}"#, "a".repeat(2000));
    let r = f.call(Some(&f.all), "POST", "/2020-11-20/projects", &big).await;
    assert_eq!((r.status.as_u16(), r.error_type()), (413, Some("RequestEntityTooLargeException")), "{}", r.json());
    assert!(r.json()["Message"].as_str().unwrap().contains("limit of 1024 bytes"));
    // Declared huge and never sent: refused from the header alone.
    let out = raw(
        f.addr(),
        b"POST /2020-11-20/projects HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    // Chunked, no length: cut off once over the limit.
    let mut chunked =
        b"POST /2020-11-20/projects HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 600, "b".repeat(600)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let out = raw(f.addr(), &chunked).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    // The import's own, larger limit.
    let mut c = Connection::open(f.addr()).await.unwrap();
    let r = c.call(Some(&f.all), "POST", "/edgepack/2020-11-20/projects/p/models", &[], vec![0; 5000]).await.unwrap();
    assert!(r.json()["Message"].as_str().unwrap().contains("limit of 4096 bytes"), "{}", r.json());
    f.ok("GET", "/2020-11-20/projects", "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_without_holding_up_others() {
    let limits =
        Limits { header_timeout: Duration::from_secs(1), body_timeout: Duration::from_secs(1), ..Limits::default() };
    let f = Fixture::start(limits, None, tempfile::tempdir().unwrap()).await;
    // Headers that never end (slowloris) and a body that stops halfway.
    let mut slow_headers = TcpStream::connect(f.addr()).await.unwrap();
    slow_headers.write_all(b"GET /2020-11-20/projects HTTP/1.1\r\nHost: h\r\nX-Slow: ").await.unwrap();
    let mut slow_body = TcpStream::connect(f.addr()).await.unwrap();
    slow_body
        .write_all(b"POST /2020-11-20/projects HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{\"Proj")
        .await
        .unwrap();
    // Others are served meanwhile.
    for _ in 0..5 {
        f.ok("GET", "/2020-11-20/projects", "").await;
    }
    let read_all = |mut s: TcpStream| async move {
        let mut out = Vec::new();
        let done = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
        (done.is_ok(), String::from_utf8_lossy(&out).into_owned())
    };
    let (closed, out) = read_all(slow_headers).await;
    assert!(closed, "a client that never finishes its headers is disconnected");
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out:?}");
    let (closed, out) = read_all(slow_body).await;
    assert!(closed && out.starts_with("HTTP/1.1 408") && out.contains("RequestTimeoutException"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_https_with_the_given_certificate() {
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let f = Fixture::start(Limits::default(), Some((cert_path, key_path)), dir).await;
    assert_eq!(f.server.scheme, "https");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(f.addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /2020-11-20/projects HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out);
    // Over TLS, an unsigned request gets the same AWS answer as over plain HTTP.
    assert!(out.starts_with("HTTP/1.1 403") && out.contains("MissingAuthenticationTokenException"), "{out}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let out = raw(f.addr(), b"GET /2020-11-20/projects HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert!(!out.contains("HTTP/1.1"), "{out:?}");
}
