//! The job store: one SQLite database (WAL) under the service's root, opened per operation so
//! that threads and processes (a job's worker) share it safely.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rusqlite::Connection;

use crate::error::{ApiError, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projects(
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS models(
    project TEXT NOT NULL REFERENCES projects(name),
    version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    description TEXT,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    contract TEXT NOT NULL,
    PRIMARY KEY(project, version)
);
CREATE TABLE IF NOT EXISTS jobs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL REFERENCES projects(name),
    name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    configuration TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER,
    component_name TEXT NOT NULL,
    component_version TEXT NOT NULL,
    output TEXT,
    UNIQUE(project, name)
);
CREATE INDEX IF NOT EXISTS jobs_component ON jobs(component_name, component_version);
-- Component name + version reservations, taken with the job and never given again while
-- the job has not FAILED: they outlive the job rows (a deleted project keeps its published
-- components' names). `job_id` (AUTOINCREMENT, never reused) names the holder.
CREATE TABLE IF NOT EXISTS component_reservations(
    component_name TEXT NOT NULL,
    component_version TEXT NOT NULL,
    project TEXT NOT NULL,
    job_name TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY(component_name, component_version)
);
-- The last model version number given in each project: numbers are never reused, also
-- after the model or the project is deleted.
CREATE TABLE IF NOT EXISTS model_versions(
    project TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS client_tokens(
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY(operation, token)
);
";

/// A client token's earlier call: `Some(result)` when `token` was used for `operation` within
/// [`crate::jobs::CLIENT_TOKEN_TTL_MS`] with the same `params` (the retry answers as the first
/// call did); a `ConflictException` when with other parameters; `None` when unused (an expired use is forgotten here). Call it
/// inside the transaction that then records the new call.
pub(crate) fn claim_token(
    tx: &Connection,
    operation: &str,
    token: &str,
    params: &str,
    now: i64,
) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    let prior: Option<(String, String, i64)> = tx
        .query_row(
            "SELECT params, result, created_ms FROM client_tokens WHERE operation = ?1 AND token = ?2",
            rusqlite::params![operation, token],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match prior {
        Some((p, result, at)) if now - at < crate::jobs::CLIENT_TOKEN_TTL_MS => {
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
        Some(_) => {
            tx.execute(
                "DELETE FROM client_tokens WHERE operation = ?1 AND token = ?2",
                rusqlite::params![operation, token],
            )?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Records a call made with a client token (its parameters and result) for [`claim_token`]
/// to answer retries with; inside the call's transaction.
pub(crate) fn record_token(
    tx: &Connection,
    operation: &str,
    token: &str,
    params: &str,
    result: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO client_tokens(operation, token, params, result, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![operation, token, params, result, now],
    )?;
    Ok(())
}

/// Creates the database at `path` when needed (WAL journal, the tables); a new database
/// file is the owner's alone (mode 0600; SQLite gives its journal files the same mode).
///
/// Once a store exists, a marker beside it (`<name>.created`) remembers that: a store found
/// missing or empty (0 bytes) later is refused with an error instead of silently re-created
/// (every project would vanish without a word).
pub fn init(path: &Path) -> Result<()> {
    let marker = path.with_extension("created");
    let empty = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    if empty && marker.exists() {
        return Err(ApiError::internal(format!(
            "job store {} is missing or empty, but this home had one ({} says so): restore it from a \
             backup, or delete {} to start a new, empty store",
            path.display(),
            marker.display(),
            marker.display()
        )));
    }
    if !path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| ApiError::internal(format!("job store {}: {e}", path.display())))?;
    }
    let mut c = open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.execute_batch(SCHEMA)?;
    migrate(&mut c)?;
    if !marker.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&marker)
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    b"this home's job store was created; edgepack will not re-create it silently\n",
                )
            })
            .map_err(|e| ApiError::internal(format!("{}: {e}", marker.display())))?;
    }
    Ok(())
}

/// Versioned migrations (`PRAGMA user_version`), each run once, in one transaction with the
/// version bump: 1 fills the reservation tables from a store made before them (every later
/// model version and component version is reserved as it is given).
fn migrate(c: &mut Connection) -> Result<()> {
    const MIGRATIONS: [&str; 1] = ["
        INSERT OR IGNORE INTO model_versions(project, last) SELECT project, MAX(version) FROM models GROUP BY project;
        INSERT OR IGNORE INTO component_reservations(component_name, component_version, project, job_name, job_id,
                                                     created_ms)
            SELECT component_name, component_version, project, name, id, created_ms FROM jobs WHERE status != 'FAILED';
    "];
    let version = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, usize>(0));
    if version(c)? >= MIGRATIONS.len() {
        return Ok(());
    }
    // Under the write lock, read again: another process may have migrated meanwhile.
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version(&tx)?) {
        tx.execute_batch(&format!("{sql} PRAGMA user_version = {};", i + 1))?;
    }
    tx.commit()?;
    Ok(())
}

/// A connection to the database at `path` (made by [`init`]): foreign keys on, and a busy
/// timeout so concurrent writers queue instead of failing.
pub fn open(path: &Path) -> Result<Connection> {
    let c = Connection::open(path).map_err(|e| ApiError::internal(format!("job store {}: {e}", path.display())))?;
    // The WAL and its index stay on disk when the last connection closes instead of being
    // deleted: opening the store then allocates nothing, so a full disk never blocks the
    // read-only commands (SQLite cannot create the index on a full disk: "disk I/O error").
    let mut persist: std::os::raw::c_int = 1;
    // SAFETY: the handle is this open connection's, "main" is NUL-terminated, and
    // SQLITE_FCNTL_PERSIST_WAL reads and writes one int through the pointer, valid for the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            c.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut persist as *mut std::os::raw::c_int).cast(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(ApiError::internal(format!("job store {}: keeping the WAL failed (code {rc})", path.display())));
    }
    c.busy_timeout(Duration::from_secs(30))?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(c)
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
