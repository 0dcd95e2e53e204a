//! `--endpoint-url`: the commands as a client of `edgepack serve` (or any server of the API),
//! signed with SigV4 as the AWS CLI signs: credentials from `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`, else the shared credentials file's profile (`--profile`,
//! `AWS_PROFILE`, `default`); the region from `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`,
//! the config file's profile, else `us-east-1`. HTTPS trusts the system's certificates, or the
//! PEM bundle `AWS_CA_BUNDLE` names (as the AWS CLI does).

use std::net::ToSocketAddrs;
use std::path::PathBuf;

use serde_json::Value;
use server::client::{Connection, Credentials};

use super::args::Global;
use super::Failure;

/// A server of the API.
pub(super) struct Remote {
    addr: std::net::SocketAddr,
    /// HTTPS: the server's name and the certificates trusted.
    tls: Option<(String, tokio_rustls::rustls::RootCertStore)>,
    /// `host[:port]` as the URL gives it.
    host_header: String,
    creds: Credentials,
    debug: bool,
    rt: tokio::runtime::Runtime,
}

/// `[section]` → `key = value` of an INI file (the AWS shared files).
fn ini_value(path: &PathBuf, section: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_owned());
                }
            }
        }
    }
    None
}

fn aws_file(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".aws").join(name))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Remote {
    /// The server `g.endpoint_url` names, with the caller's credentials.
    pub(super) fn new(endpoint: &str, g: &Global) -> Result<Remote, Failure> {
        let (https, rest) = match (endpoint.strip_prefix("https://"), endpoint.strip_prefix("http://")) {
            (Some(r), _) => (true, r),
            (_, Some(r)) => (false, r),
            _ => {
                return Err(
                    format!("--endpoint-url {endpoint}: expected http://host[:port] or https://host[:port]").into()
                )
            }
        };
        let hostport = rest.trim_end_matches('/');
        if hostport.contains('/') || hostport.is_empty() {
            return Err(format!(
                "--endpoint-url {endpoint}: expected {}://host[:port], without a path",
                if https { "https" } else { "http" }
            )
            .into());
        }
        let (host, with_port) = match hostport.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()) {
            Some((h, _)) => (h.to_owned(), hostport.to_owned()),
            None => (hostport.to_owned(), format!("{hostport}:{}", if https { 443 } else { 80 })),
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("--endpoint-url {endpoint}: {e}"))?
            .next()
            .ok_or_else(|| format!("--endpoint-url {endpoint}: no address"))?;
        let tls = if https {
            let bundle = env("AWS_CA_BUNDLE").map(PathBuf::from);
            let roots =
                server::client::trust(bundle.as_deref()).map_err(|e| format!("--endpoint-url {endpoint}: {e}"))?;
            Some((host.trim_start_matches('[').trim_end_matches(']').to_owned(), roots))
        } else {
            None
        };
        let profile = g.profile.clone().or_else(|| env("AWS_PROFILE")).unwrap_or_else(|| "default".into());
        let shared = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let (key, secret) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(k), Some(s)) if g.profile.is_none() => (k, s),
            _ => match (
                ini_value(&shared, &profile, "aws_access_key_id"),
                ini_value(&shared, &profile, "aws_secret_access_key"),
            ) {
                (Some(k), Some(s)) => (k, s),
                _ => {
                    return Err(format!(
                        "Unable to locate credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile \
                         '{profile}' in {} (keys come from `edgepack create-access-key` on the server)",
                        shared.display()
                    )
                    .into())
                }
            },
        };
        let config = aws_file("AWS_CONFIG_FILE", "config");
        let section = if profile == "default" { "default".to_owned() } else { format!("profile {profile}") };
        let region = g
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| ini_value(&config, &section, "region"))
            .unwrap_or_else(|| "us-east-1".into());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("the client's runtime: {e}"))?;
        Ok(Remote {
            addr,
            tls,
            host_header: hostport.to_owned(),
            creds: Credentials { key, secret, region },
            debug: g.debug,
            rt,
        })
    }

    /// Calls an operation; the answer's JSON, or the server's error as the AWS CLI reports it.
    pub(super) fn call(
        &self,
        op: &'static str,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Value, Failure> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        if self.debug {
            eprintln!(
                "edgepack: {op}: {method} {scheme}://{}{path_and_query} ({} bytes)",
                self.host_header,
                body.len()
            );
        }
        let reply = self.rt.block_on(async {
            let mut c = match &self.tls {
                None => Connection::open(self.addr).await?,
                Some((name, roots)) => Connection::open_tls(self.addr, name, &self.host_header, roots.clone()).await?,
            };
            c.call(Some(&self.creds), method, path_and_query, headers, body).await
        });
        let reply = reply.map_err(|e| Failure::Usage(format!("Could not connect to the endpoint URL: {e}")))?;
        if self.debug {
            let id = reply.headers.get("x-amzn-requestid").and_then(|v| v.to_str().ok()).unwrap_or("-");
            eprintln!("edgepack: {op}: {} (request id {id})", reply.status);
        }
        if reply.status.is_success() {
            return Ok(reply.json());
        }
        let code = reply.error_type().unwrap_or("Unknown").to_owned();
        let message = reply.json()["Message"].as_str().map(str::to_owned).unwrap_or_else(|| reply.status.to_string());
        Err(Failure::Remote(op, code, message))
    }
}
