//! Authentication of every request: the body read within its size and time limits, the SigV4
//! signature checked against the access key's secret, the request's time within the clock-skew
//! window, and the caller (key and project scope) handed to the operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDateTime, TimeZone, Utc};

use crate::errors::ErrorReply;
use crate::keys::{KeyStore, Scope};
use crate::sigv4::{self, Authorization, SigError};
use crate::AppState;

/// The service name requests must be signed for.
pub const SERVICE: &str = "lookoutvision";

/// Who made a request: the access key and the projects it may touch.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The access key id.
    pub key: String,
    /// Its projects.
    pub scope: Scope,
}

impl Caller {
    /// `AccessDeniedException` unless the key may touch `project`.
    pub fn check(&self, operation: &str, project: &str) -> Result<(), ErrorReply> {
        if self.scope.allows(project) {
            Ok(())
        } else {
            Err(ErrorReply::access_denied(&self.key, operation, &package::projects::project_arn(project)))
        }
    }
}

/// A key's secret and scope (`None`: no such key), and when it was looked up.
type Cached = (Instant, Option<(String, Scope)>);

/// Decrypted keys, kept a few seconds: a deleted key stops working within [`KEY_TTL`].
pub struct KeyCache {
    store: KeyStore,
    entries: Mutex<HashMap<String, Cached>>,
}

/// How long a looked-up key (or its absence) is remembered.
pub const KEY_TTL: Duration = Duration::from_secs(5);

impl KeyCache {
    /// A cache over a key store.
    pub fn new(store: KeyStore) -> Self {
        KeyCache { store, entries: Mutex::new(HashMap::new()) }
    }

    fn lookup(&self, id: &str) -> Result<Option<(String, Scope)>, ErrorReply> {
        if let Some((at, v)) = self.entries.lock().expect("key cache").get(id) {
            if at.elapsed() < KEY_TTL {
                return Ok(v.clone());
            }
        }
        let v = self.store.secret(id).map_err(|e| ErrorReply::internal(e.to_string()))?;
        let mut entries = self.entries.lock().expect("key cache");
        // Bounded: unknown ids sent by a flood of bad requests do not grow it forever.
        if entries.len() > 10_000 {
            entries.retain(|_, (at, _)| at.elapsed() < KEY_TTL);
        }
        entries.insert(id.to_owned(), (Instant::now(), v.clone()));
        Ok(v)
    }
}

/// The largest body of an operation: model imports may be large, everything else is a small
/// JSON document.
fn body_limit(state: &AppState, path: &str) -> usize {
    if path.starts_with(crate::routes::IMPORT_PREFIX) {
        state.limits.max_model_bytes
    } else {
        state.limits.max_json_bytes
    }
}

/// Reads the body within the limits: 413 when over the size, 408 when too slow.
async fn read_body(body: Body, limit: usize, declared: Option<u64>, within: Duration) -> Result<Bytes, ErrorReply> {
    let too_large = |n: String| {
        ErrorReply::new(
            413,
            "RequestEntityTooLargeException",
            format!("the request body of {n} is over the limit of {limit} bytes"),
        )
    };
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        return Err(too_large(format!("{n} bytes")));
    }
    match tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ErrorReply::new(
            408,
            "RequestTimeoutException",
            format!("the request body did not arrive within {} s", within.as_secs()),
        )),
        Ok(Err(e)) if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) => {
            Err(too_large("more bytes".into()))
        }
        Ok(Err(e)) => Err(ErrorReply::new(400, "SerializationException", format!("reading the request body: {e}"))),
        Ok(Ok(b)) => Ok(b),
    }
}

/// `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`) as epoch seconds.
fn parse_amz_date(v: &str) -> Result<i64, SigError> {
    NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%SZ")
        .map(|t| Utc.from_utc_datetime(&t).timestamp())
        .map_err(|_| SigError::Incomplete(format!("X-Amz-Date '{v}' is not in the form YYYYMMDD'T'HHMMSS'Z'")))
}

fn amz(t: i64) -> String {
    Utc.timestamp_opt(t, 0).single().map(|t| t.format("%Y%m%dT%H%M%SZ").to_string()).unwrap_or_default()
}

/// Refuses a request dated outside `now ± skew` with AWS's messages.
pub fn check_time(date: &str, now: i64, skew: Duration) -> Result<(), SigError> {
    let t = parse_amz_date(date)?;
    let s = skew.as_secs() as i64;
    let minutes = s / 60;
    if t < now - s {
        return Err(SigError::Invalid(format!(
            "Signature expired: {date} is now earlier than {} ({} - {minutes} min.)",
            amz(now - s),
            amz(now)
        )));
    }
    if t > now + s {
        return Err(SigError::Invalid(format!(
            "Signature not yet current: {date} is still later than {} ({} + {minutes} min.)",
            amz(now + s),
            amz(now)
        )));
    }
    Ok(())
}

/// Checks the signature of a request whose body has been read; the caller on success.
fn authenticate(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    now: i64,
) -> Result<Caller, ErrorReply> {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let auth = Authorization::parse(header("authorization").ok_or(SigError::Missing)?)?;
    let date = header("x-amz-date").ok_or_else(|| {
        SigError::Incomplete("Authorization header requires existence of an 'X-Amz-Date' header".into())
    })?;
    check_time(date, now, state.limits.clock_skew)?;
    if !date.starts_with(&auth.date) {
        return Err(SigError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &date[..8.min(date.len())]
        ))
        .into());
    }
    if auth.service != SERVICE {
        return Err(SigError::Invalid(format!("Credential should be scoped to correct service: '{SERVICE}'. ")).into());
    }
    for must in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == must) {
            return Err(SigError::Invalid(format!("'{must}' must be a signed header")).into());
        }
    }
    if header("x-amz-security-token").is_some() {
        // Session credentials are AWS STS's; this service issues long-term keys only.
        return Err(SigError::UnknownKey.into());
    }
    let payload = sigv4::sha256_hex(body);
    if let Some(claimed) = header("x-amz-content-sha256") {
        if claimed != payload {
            return Err(SigError::Invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
            )
            .into());
        }
    }
    let (secret, scope) = state.keys.lookup(&auth.access_key)?.ok_or(SigError::UnknownKey)?;
    let request = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        payload_sha256: &payload,
    };
    sigv4::verify(&request, &auth, date, &secret)?;
    Ok(Caller { key: auth.access_key, scope })
}

/// The middleware: body read, signature checked, [`Caller`] added to the request.
pub async fn middleware(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let limit = body_limit(&state, parts.uri.path());
    let declared =
        parts.headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let bytes = match read_body(body, limit, declared, state.limits.body_timeout).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now().timestamp();
    // Off the async threads: the key store is SQLite, and a large body's hash takes a while.
    let (st, b) = (state.clone(), bytes.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let caller = authenticate(&st, &parts, &b, now);
        (parts, caller)
    })
    .await;
    match checked {
        Ok((mut parts, Ok(caller))) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Ok((_, Err(e))) => e.into_response(),
        Err(e) => ErrorReply::internal(format!("authentication: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_skew_window_is_enforced_with_awss_messages() {
        let now = parse_amz_date("20261204T120000Z").unwrap();
        let skew = Duration::from_secs(900);
        check_time("20261204T121500Z", now, skew).unwrap();
        check_time("20261204T114500Z", now, skew).unwrap();
        let e = check_time("20261204T114459Z", now, skew).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Signature expired: 20261204T114459Z is now earlier than 20261204T114500Z (20261204T120000Z - 15 min.)"
        );
        let e = check_time("20261204T121501Z", now, skew).unwrap_err();
        assert!(e.to_string().starts_with("Signature not yet current"), "{e}");
        assert!(matches!(check_time("2026-12-04", now, skew), Err(SigError::Incomplete(_))));
    }
}
