//! The PostgreSQL job store: one database shared by every server and worker configured with
//! it (on any machine), a pool of connections per process, and versioned migrations applied
//! once under a session lock (servers starting together do not race).
//!
//! Writes keep the single-writer discipline of the SQLite store: every write transaction
//! takes one transaction-scoped advisory lock ([`crate::store::Db::write`]), so the checks a
//! start makes (client token, job name, component reservation) and its inserts are one step
//! for every server. Reads take no lock. Workers claim jobs with `FOR UPDATE SKIP LOCKED`
//! (a job is claimed by exactly one of the workers that try).

use std::collections::HashMap;
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;

use super::{PostgresSettings, Store};
use crate::error::{ApiError, Result};

/// The migrations, in order; version *n* is the first *n* applied. Never change one that has
/// shipped: append.
fn migrations() -> [String; SCHEMA_VERSION] {
    [super::schema::tables("BIGINT", "BIGSERIAL PRIMARY KEY")
        + "
CREATE INDEX jobs_status ON jobs(status, created_ms);
-- Model files, so that a worker on any machine can package any imported model (each
-- machine keeps a verified copy in its root's blobs/ as a cache).
CREATE TABLE model_blobs(
    sha256 TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL
);"]
}

/// A pooled connection and the statements it has prepared (each statement of the store is
/// parsed once per connection, not on every call: one round trip instead of two).
pub struct Connection {
    pub(super) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl Connection {
    /// The prepared form of `sql` (already in `$N` form).
    pub(super) fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), st.clone());
        Ok(st)
    }
}

/// Makes [`Connection`]s for the pool.
#[derive(Debug)]
pub struct Manager(PostgresConnectionManager<postgres::NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Connection, postgres::Error> {
        Ok(Connection { client: self.0.connect()?, statements: HashMap::new() })
    }

    fn is_valid(&self, c: &mut Connection) -> std::result::Result<(), postgres::Error> {
        self.0.is_valid(&mut c.client)
    }

    fn has_broken(&self, c: &mut Connection) -> bool {
        self.0.has_broken(&mut c.client)
    }
}

/// The connection pool of a PostgreSQL store. Its connections are closed on a thread of
/// their own when the last handle goes: the synchronous client blocks on a runtime of its own
/// when closed, which must not happen on an async runtime's thread (a server shutting down).
/// (The store's calls block, so they are made off async threads anyway.)
pub struct Pool(Option<r2d2::Pool<Manager>>);

impl Pool {
    /// A connection from the pool.
    pub(super) fn get(&self) -> Result<r2d2::PooledConnection<Manager>> {
        let pool = self.0.as_ref().expect("a pool until dropped");
        pool.get().map_err(|e| ApiError::internal(format!("job store (PostgreSQL): {e}")))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

/// The session lock migrations run under.
const MIGRATION_LOCK: i64 = 0x6564_6765_7061_636c;

/// The connection settings of `url`, or an error that says what is wrong with it.
pub fn config(url: &str) -> Result<postgres::Config> {
    url.parse::<postgres::Config>()
        .map_err(|e| ApiError::validation(format!("PostgreSQL connection string '{}': {e}", redact(url))))
}

/// `url` with its password replaced by `***` (both the URL and the key=value forms).
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.split_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| if kv.starts_with("password=") { "password=***".to_owned() } else { kv.to_owned() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connects (a pool of `max_connections`) and brings the schema to the newest version.
pub(super) fn open(settings: &PostgresSettings) -> Result<Store> {
    let mut cfg = config(&settings.url)?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    // One connection first: a server that is down or refuses the role says so at once, with
    // the reason (the pool would retry until its timeout).
    cfg.connect(postgres::NoTls).map_err(|e| {
        ApiError::internal(format!(
            "job store: PostgreSQL at '{}' cannot be reached: {}",
            redact(&settings.url),
            crate::error::postgres_detail(&e)
        ))
    })?;
    let manager = Manager(PostgresConnectionManager::new(cfg, postgres::NoTls));
    let pool = r2d2::Pool::builder()
        .max_size(settings.max_connections.unwrap_or(8).max(1))
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(30))
        .build_unchecked(manager);
    let store = Store::Postgres(std::sync::Arc::new(Pool(Some(pool))));
    migrate(&mut store.connect()?)?;
    Ok(store)
}

/// Applies the migrations this database lacks, each in one transaction with its version.
fn migrate(db: &mut super::Db) -> Result<()> {
    db.batch(&format!(
        "SELECT pg_advisory_lock({MIGRATION_LOCK});
         CREATE TABLE IF NOT EXISTS edgepack_schema(version INTEGER NOT NULL);
         INSERT INTO edgepack_schema(version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM edgepack_schema);"
    ))?;
    let applied = (|| {
        let version: i64 = db.query_one("SELECT version FROM edgepack_schema", &[])?.get(0)?;
        let migrations = migrations();
        if version as usize > migrations.len() {
            return Err(ApiError::internal(format!(
                "job store: the PostgreSQL schema is at version {version}, newer than this edgepack knows ({}): \
                 upgrade edgepack",
                migrations.len()
            )));
        }
        for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
            db.batch(&format!("BEGIN; {sql}; UPDATE edgepack_schema SET version = {}; COMMIT;", i + 1)).inspect_err(
                |_| {
                    let _ = db.batch("ROLLBACK");
                },
            )?;
        }
        Ok(())
    })();
    db.batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    applied
}

/// The schema version the newest migration gives (the number of migrations).
pub const SCHEMA_VERSION: usize = 1;

/// Creates the empty database `name` through `admin_url` (a role that may create databases,
/// in URL form) and returns the connection string of the new database: a throwaway store for
/// tests and trials. `name` must be a plain identifier (`[a-z0-9_]`).
pub fn create_database(admin_url: &str, name: &str) -> Result<String> {
    plain_identifier(name)?;
    let mut c = config(admin_url)?.connect(postgres::NoTls)?;
    c.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let (server, _) = admin_url
        .rsplit_once('/')
        .filter(|(s, _)| s.contains("://"))
        .ok_or_else(|| ApiError::validation(format!("'{}' is not a postgresql:// URL", redact(admin_url))))?;
    Ok(format!("{server}/{name}"))
}

/// Drops database `name` (see [`create_database`]), ending its sessions first.
pub fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    plain_identifier(name)?;
    let mut c = config(admin_url)?.connect(postgres::NoTls)?;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    Ok(())
}

fn plain_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!("database name '{name}': expected [a-z_][a-z0-9_]*, under 64 characters")))
    }
}
