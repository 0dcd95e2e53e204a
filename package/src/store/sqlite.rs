//! The SQLite job store: one file (WAL) under the service's root, opened per operation so
//! that threads and processes (a job's worker) share it safely; its schema and versioned
//! migrations (`PRAGMA user_version`).

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{ApiError, Result};

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
    c.execute_batch(&super::schema::tables("INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT"))?;
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
