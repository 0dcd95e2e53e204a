//! Access keys: an id (`EPAK` + 16 of `A-Z2-7`, shaped like AWS's `AKIA…`), a 40-character
//! secret, and the projects the key may touch. SigV4 needs the secret itself on the server (the
//! signing key changes every day), so secrets are stored encrypted, not hashed: AES-256-GCM
//! under a master key kept apart from the database (`<root>/keys/access-keys.key`, 0600),
//! the key id as associated data (a ciphertext moved to another row does not decrypt). A copy
//! of the database alone gives no secret away.
//!
//! The keys live in `<root>/access-keys.sqlite` (0600), beside the job store; with a
//! PostgreSQL job store (`configure-job-store --postgres`), in that database, so that every
//! server of a team knows every key (each server's root then needs the same master key file:
//! copy it when adding a server).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine;
use package::args;
use package::store::{Db, Store, StoreConfig};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

/// Errors of the key store.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A database or file problem, naming the file.
    #[error("access keys: {0}")]
    Store(String),
    /// No such key.
    #[error("access key '{0}' does not exist")]
    NotFound(String),
    /// A bad project pattern.
    #[error("{0}")]
    Invalid(String),
}

impl From<package::ApiError> for KeyError {
    fn from(e: package::ApiError) -> Self {
        KeyError::Store(e.message)
    }
}

/// Which projects a key may touch: names, or prefixes ending in `*`; `*` alone is every
/// project (also ones not created yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Scope(pub Vec<String>);

impl Scope {
    /// Every project.
    pub fn all() -> Scope {
        Scope(vec!["*".into()])
    }

    /// Checks each pattern: a project name (`[a-zA-Z0-9][a-zA-Z0-9_-]*`, 1–255), optionally
    /// cut short by a final `*`.
    pub fn new(patterns: Vec<String>) -> Result<Scope, KeyError> {
        if patterns.is_empty() {
            return Err(KeyError::Invalid("a key needs at least one project pattern (or '*' for all)".into()));
        }
        for p in &patterns {
            let stem = p.strip_suffix('*').unwrap_or(p);
            let ok = stem.len() <= 255
                && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && (stem.is_empty() || stem.as_bytes()[0].is_ascii_alphanumeric())
                && (p.ends_with('*') || !stem.is_empty());
            if !ok {
                return Err(KeyError::Invalid(format!(
                    "project pattern '{p}': expected a project name, a prefix ending in '*', or '*'"
                )));
            }
        }
        Ok(Scope(patterns))
    }

    /// Whether the key may touch `project`.
    pub fn allows(&self, project: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => project.starts_with(prefix),
            None => p == project,
        })
    }

    /// Whether the key may touch every project.
    pub fn is_all(&self) -> bool {
        self.0.iter().any(|p| p == "*")
    }
}

/// A key as listed (no secret).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyInfo {
    /// The access key id.
    pub access_key_id: String,
    /// Project patterns.
    pub projects: Vec<String>,
    /// Creation time, epoch seconds.
    pub create_date: f64,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewKey {
    /// The access key id.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// Project patterns.
    pub projects: Vec<String>,
}

/// The key store of a service root.
pub struct KeyStore {
    store: Store,
    master: LessSafeKey,
    rng: SystemRandom,
}

/// The table, in either database's words (`BLOB`/`BYTEA`, `INTEGER`/`BIGINT`).
fn schema(postgres: bool) -> String {
    let (bytes, int) = if postgres { ("BYTEA", "BIGINT") } else { ("BLOB", "INTEGER") };
    format!(
        "CREATE TABLE IF NOT EXISTS access_keys(
            id TEXT PRIMARY KEY,
            nonce {bytes} NOT NULL,
            secret {bytes} NOT NULL,
            projects TEXT NOT NULL,
            created_ms {int} NOT NULL
        )"
    )
}

fn store_err(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |e| KeyError::Store(format!("{}: {e}", path.display()))
}

/// Reads the master key, making it (owner-only, never overwritten) when absent.
fn master_key(root: &Path, rng: &SystemRandom) -> Result<LessSafeKey, KeyError> {
    let dir = root.join("keys");
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(store_err(&dir))?;
    let path = dir.join("access-keys.key");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rng.fill(&mut key).map_err(|_| KeyError::Store("the system random source failed".into()))?;
            // A temporary file renamed into place: a crash never leaves half a key, and a
            // racing creator's key is not overwritten (hard link fails if the name exists).
            let tmp = dir.join(format!(".access-keys.key.{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(store_err(&tmp))?;
            f.write_all(&key).and_then(|_| f.sync_all()).map_err(store_err(&tmp))?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => key.to_vec(),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read(&path).map_err(store_err(&path))?
                }
                Err(e) => return Err(store_err(&path)(e)),
            }
        }
        Err(e) => return Err(store_err(&path)(e)),
    };
    let key = UnboundKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| KeyError::Store(format!("{}: not a 32-byte key", path.display())))?;
    Ok(LessSafeKey::new(key))
}

impl KeyStore {
    /// Opens (creating) the key store of a service root (its job store opened for it when
    /// that is the shared one: prefer [`KeyStore::for_service`] where the service is open).
    pub fn open(root: &Path) -> Result<KeyStore, KeyError> {
        let shared = match StoreConfig::load(root)? {
            config @ StoreConfig::Postgres(_) => Some(Store::open(root, &config)?),
            StoreConfig::Sqlite => None,
        };
        Self::on(root, shared)
    }

    /// The key store of `service`'s root, in its job store's database when that is shared
    /// (one pool for both).
    pub fn for_service(service: &package::Service) -> Result<KeyStore, KeyError> {
        Self::on(service.root(), service.store().is_shared().then(|| service.store().clone()))
    }

    /// The keys in `shared`, else in `root/access-keys.sqlite`.
    fn on(root: &Path, shared: Option<Store>) -> Result<KeyStore, KeyError> {
        let rng = SystemRandom::new();
        let master = master_key(root, &rng)?;
        let postgres = shared.is_some();
        let store = match shared {
            Some(store) => store,
            None => {
                let db = root.join("access-keys.sqlite");
                if !db.exists() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(0o600)
                        .open(&db)
                        .map_err(store_err(&db))?;
                }
                Store::Sqlite(db)
            }
        };
        let keys = KeyStore { store, master, rng };
        keys.conn()?.execute(&schema(postgres), &[])?;
        Ok(keys)
    }

    fn conn(&self) -> Result<Db, KeyError> {
        Ok(self.store.connect()?)
    }

    fn random(&self, n: usize) -> Result<Vec<u8>, KeyError> {
        let mut b = vec![0u8; n];
        self.rng.fill(&mut b).map_err(|_| KeyError::Store("the system random source failed".into()))?;
        Ok(b)
    }

    /// Makes a key for the projects `scope` allows.
    pub fn create(&self, scope: &Scope) -> Result<NewKey, KeyError> {
        const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let id: String =
            "EPAK".chars().chain(self.random(16)?.iter().map(|b| BASE32[(b & 31) as usize] as char)).collect();
        let secret = base64::engine::general_purpose::STANDARD.encode(self.random(30)?);
        let nonce_bytes: [u8; NONCE_LEN] = self.random(NONCE_LEN)?.try_into().expect("NONCE_LEN bytes");
        let mut sealed = secret.clone().into_bytes();
        self.master
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(id.as_bytes()), &mut sealed)
            .map_err(|_| KeyError::Store("sealing the secret failed".into()))?;
        let projects = serde_json::to_string(&scope.0).expect("strings");
        self.conn()?.execute(
            "INSERT INTO access_keys(id, nonce, secret, projects, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![&id, nonce_bytes.to_vec(), sealed, projects, package::store::now_ms()],
        )?;
        Ok(NewKey { access_key_id: id, secret_access_key: secret, projects: scope.0.clone() })
    }

    /// Every key, oldest first (no secrets).
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows =
            self.conn()?.query("SELECT id, projects, created_ms FROM access_keys ORDER BY created_ms, id", &[])?;
        rows.iter()
            .map(|r| {
                let projects: String = r.get(1)?;
                Ok(KeyInfo {
                    access_key_id: r.get(0)?,
                    projects: serde_json::from_str(&projects).unwrap_or_default(),
                    create_date: r.get::<i64>(2)? as f64 / 1000.0,
                })
            })
            .collect()
    }

    /// Deletes a key: requests signed with it are refused from then on.
    pub fn delete(&self, id: &str) -> Result<(), KeyError> {
        match self.conn()?.execute("DELETE FROM access_keys WHERE id = ?1", args![id])? {
            0 => Err(KeyError::NotFound(id.into())),
            _ => Ok(()),
        }
    }

    /// A key's secret and scope, or `None` when the key does not exist.
    pub fn secret(&self, id: &str) -> Result<Option<(String, Scope)>, KeyError> {
        let row = self.conn()?.query_opt("SELECT nonce, secret, projects FROM access_keys WHERE id = ?1", args![id])?;
        let Some(row) = row else { return Ok(None) };
        let (nonce, mut sealed, projects): (Vec<u8>, Vec<u8>, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let nonce = Nonce::try_assume_unique_for_key(&nonce)
            .map_err(|_| KeyError::Store(format!("key '{id}': a stored nonce of {} bytes", nonce.len())))?;
        let plain = self
            .master
            .open_in_place(nonce, Aad::from(id.as_bytes()), &mut sealed)
            .map_err(|_| KeyError::Store(format!("key '{id}': the secret does not decrypt with this master key")))?;
        let secret = String::from_utf8(plain.to_vec()).map_err(|_| KeyError::Store(format!("key '{id}': secret")))?;
        let projects: Vec<String> =
            serde_json::from_str(&projects).map_err(|e| KeyError::Store(format!("key '{id}': projects: {e}")))?;
        Ok(Some((secret, Scope(projects))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_and_its_secret_is_not_in_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let k = store.create(&Scope::new(vec!["line-*".into(), "qa".into()]).unwrap()).unwrap();
        assert!(k.access_key_id.starts_with("EPAK") && k.access_key_id.len() == 20, "{}", k.access_key_id);
        assert_eq!(k.secret_access_key.len(), 40);
        let (secret, scope) = store.secret(&k.access_key_id).unwrap().unwrap();
        assert_eq!(secret, k.secret_access_key);
        assert!(scope.allows("line-7") && scope.allows("qa") && !scope.allows("qa2") && !scope.allows("other"));
        let db = std::fs::read(dir.path().join("access-keys.sqlite")).unwrap();
        assert!(!db.windows(40).any(|w| w == k.secret_access_key.as_bytes()), "the secret is stored in clear");
        // Reopened (same master key): still readable; listed without the secret.
        let again = KeyStore::open(dir.path()).unwrap();
        assert_eq!(again.secret(&k.access_key_id).unwrap().unwrap().0, k.secret_access_key);
        let listed = serde_json::to_string(&again.list().unwrap()).unwrap();
        assert!(listed.contains(&k.access_key_id) && !listed.contains(&k.secret_access_key), "{listed}");
        again.delete(&k.access_key_id).unwrap();
        assert!(again.secret(&k.access_key_id).unwrap().is_none());
        assert!(matches!(again.delete(&k.access_key_id), Err(KeyError::NotFound(_))));
    }

    #[test]
    fn another_master_key_does_not_open_the_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let k = store.create(&Scope::all()).unwrap();
        std::fs::remove_file(dir.path().join("keys/access-keys.key")).unwrap();
        let e = KeyStore::open(dir.path()).unwrap().secret(&k.access_key_id).unwrap_err();
        assert!(e.to_string().contains("does not decrypt"), "{e}");
    }

    #[test]
    fn project_patterns_are_checked() {
        assert!(Scope::new(vec![]).is_err());
        for bad in ["", "a b", "-x", "x*y", "**"] {
            assert!(Scope::new(vec![bad.into()]).is_err(), "{bad:?} accepted");
        }
        for good in ["*", "a", "line-*", "A_1-b"] {
            Scope::new(vec![good.into()]).unwrap();
        }
        assert!(Scope::all().allows("anything") && Scope::all().is_all());
    }
}
