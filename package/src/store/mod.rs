//! The job store: projects, model versions, packaging jobs, client tokens and component
//! reservations, in one database. [`Store`] is where it is: a SQLite file (WAL) under the
//! service's root, the embedded default, or a PostgreSQL database that several servers and
//! workers on several machines share ([`StoreConfig`], `<root>/job-store.json`). Statements
//! are written once for both ([`Db`]); each database has its own schema and versioned
//! migrations ([`sqlite`], [`pg`]).

mod db;
pub mod pg;
mod schema;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};

pub use db::{Db, FromValue, Row, Tx, TypeMismatch, Value};

use crate::error::{ApiError, Result};

/// The file of the job store setting, in the service's root.
pub const JOB_STORE_FILE: &str = "job-store.json";

/// Where a service's job store is (`<root>/job-store.json`; without the file, SQLite).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub enum StoreConfig {
    /// `<root>/jobs.sqlite`: one machine (its servers and workers).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every server and worker configured with it.
    Postgres(PostgresSettings),
}

/// A PostgreSQL job store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PostgresSettings {
    /// The connection string: `postgresql://user[:password]@host[:port]/dbname` or
    /// `host=… port=… user=… dbname=…` (libpq's forms; no TLS: a database on a trusted
    /// network or loopback).
    pub url: String,
    /// Connections each process keeps at most (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

impl StoreConfig {
    /// The file that holds the setting.
    pub fn path(root: &Path) -> PathBuf {
        root.join(JOB_STORE_FILE)
    }

    /// The setting of `root` (SQLite when the file is absent).
    pub fn load(root: &Path) -> Result<StoreConfig> {
        Ok(crate::setting::load(root, JOB_STORE_FILE, "job store setting")?.unwrap_or_default())
    }

    /// Saves the setting (owner-only: a connection string may hold a password) after
    /// checking that the connection string parses.
    pub fn save(&self, root: &Path) -> Result<()> {
        if let StoreConfig::Postgres(p) = self {
            pg::config(&p.url)?;
        }
        crate::setting::save(root, JOB_STORE_FILE, self)
    }

    /// The setting as shown to users: a connection string's password replaced by `***`.
    pub fn redacted(&self) -> StoreConfig {
        match self {
            StoreConfig::Sqlite => StoreConfig::Sqlite,
            StoreConfig::Postgres(p) => {
                StoreConfig::Postgres(PostgresSettings { url: pg::redact(&p.url), ..p.clone() })
            }
        }
    }
}

/// An open job store: hands out connections.
#[derive(Clone)]
pub enum Store {
    /// A SQLite file (a connection per operation).
    Sqlite(PathBuf),
    /// A pool of PostgreSQL connections.
    Postgres(std::sync::Arc<pg::Pool>),
}

impl Store {
    /// Opens the store `config` names for the service in `root`, creating or migrating its
    /// tables.
    pub fn open(root: &Path, config: &StoreConfig) -> Result<Store> {
        match config {
            StoreConfig::Sqlite => {
                let path = root.join("jobs.sqlite");
                sqlite::init(&path)?;
                Ok(Store::Sqlite(path))
            }
            StoreConfig::Postgres(p) => pg::open(p),
        }
    }

    /// A connection.
    pub fn connect(&self) -> Result<Db> {
        Ok(Db {
            conn: match self {
                Store::Sqlite(path) => db::Conn::Sqlite(sqlite::open(path)?),
                Store::Postgres(pool) => db::Conn::Postgres(Box::new(pool.get()?)),
            },
        })
    }

    /// Whether the store is shared by several machines (PostgreSQL): model files then live
    /// in it too, not only in one machine's root.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }
}

/// A client token's earlier call: `Some(result)` when `token` was used for `operation` within
/// [`crate::jobs::CLIENT_TOKEN_TTL_MS`] with the same `params` (the retry answers as the first
/// call did); a `ConflictException` when with other parameters; `None` when unused (an
/// expired use is forgotten here). Call it inside the write transaction that then records the
/// new call.
pub(crate) fn claim_token(tx: &mut Db, operation: &str, token: &str, params: &str, now: i64) -> Result<Option<String>> {
    let prior = tx.query_opt(
        "SELECT params, result, created_ms FROM client_tokens WHERE operation = ?1 AND token = ?2",
        crate::args![operation, token],
    )?;
    let Some(prior) = prior else { return Ok(None) };
    let (p, result, at): (String, String, i64) = (prior.get(0)?, prior.get(1)?, prior.get(2)?);
    if now - at >= crate::jobs::CLIENT_TOKEN_TTL_MS {
        tx.execute("DELETE FROM client_tokens WHERE operation = ?1 AND token = ?2", crate::args![operation, token])?;
        return Ok(None);
    }
    if p == params {
        return Ok(Some(result));
    }
    Err(ApiError::conflict(
        crate::error::ResourceType::ClientToken,
        token,
        format!(
            "ClientToken '{token}' was used within the last 8 hours for another {operation} request; \
             use a new token for new parameters"
        ),
    ))
}

/// Records a call made with a client token (its parameters and result) for [`claim_token`]
/// to answer retries with; inside the call's transaction.
pub(crate) fn record_token(
    tx: &mut Db,
    operation: &str,
    token: &str,
    params: &str,
    result: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO client_tokens(operation, token, params, result, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        crate::args![operation, token, params, result, now],
    )?;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Epoch milliseconds as the API's epoch seconds.
pub fn seconds(ms: i64) -> f64 {
    ms as f64 / 1e3
}

/// A pagination token: the list it belongs to and the last key returned, base64 (the
/// `PaginationToken` pattern's alphabet).
pub fn page_token(list: &str, after: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{list}\n{after}"))
}

/// The key after which a page starts, from a token made by [`page_token`] for `list`.
pub fn page_after(list: &str, token: Option<&str>) -> Result<Option<String>> {
    let Some(t) = token.filter(|t| !t.is_empty()) else { return Ok(None) };
    let bad = || {
        ApiError::validation(format!(
            "NextToken '{t}' is not a token of this list; pass the NextToken a previous page returned"
        ))
    };
    let raw = base64::engine::general_purpose::STANDARD.decode(t).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    match text.split_once('\n') {
        Some((l, after)) if l == list => Ok(Some(after.to_owned())),
        _ => Err(bad()),
    }
}

/// The numeric key after which a page of `list` starts (`i64::MAX`: from the top).
pub fn page_after_id(list: &str, token: Option<&str>) -> Result<i64> {
    match page_after(list, token)? {
        None => Ok(i64::MAX),
        Some(s) => s.parse().map_err(|_| ApiError::validation("NextToken is not a token of this list")),
    }
}
