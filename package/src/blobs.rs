//! Content-addressed storage of model files: `<root>/blobs/sha256/<hex>`, written once
//! (temporary file, fsync, rename), read-only afterwards, verified on every read.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{ApiError, Result};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Names of temporary files in the store: `.<pid>-<uuid>` (see [`crate::temp`]).
const TEMP: &str = ".";

/// The store under `root`.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    /// The store in `root/blobs/sha256`.
    pub fn new(root: &Path) -> Self {
        Self { dir: root.join("blobs").join("sha256") }
    }

    fn path(&self, hex: &str) -> PathBuf {
        self.dir.join(hex)
    }

    /// Stores `bytes` and returns its SHA-256. An intact existing blob is left as it is; a
    /// corrupt one (its content no longer matches its name) is replaced by these bytes. The
    /// temporary file is removed on every error (a full disk leaves nothing behind).
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let hex = sha256_hex(bytes);
        let path = self.path(&hex);
        if std::fs::read(&path).is_ok_and(|b| sha256_hex(&b) == hex) {
            return Ok(hex);
        }
        let io = |e: std::io::Error| ApiError::internal(format!("model store {}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = crate::temp::owned(&self.dir, TEMP);
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            let mut perm = f.metadata()?.permissions();
            perm.set_readonly(true);
            std::fs::set_permissions(&tmp, perm)?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)?;
        Ok(hex)
    }

    /// Removes temporary files of imports whose process is gone; returns the bytes freed.
    pub fn sweep(&self) -> u64 {
        crate::temp::sweep(&self.dir, TEMP)
    }

    /// The blob `hex`, verified against its name.
    pub fn get(&self, hex: &str) -> Result<Vec<u8>> {
        let path = self.path(hex);
        let bytes =
            std::fs::read(&path).map_err(|e| ApiError::internal(format!("model file {}: {e}", path.display())))?;
        let got = sha256_hex(&bytes);
        if got != hex {
            return Err(ApiError::internal(format!(
                "model file {} is corrupt: its SHA-256 is {got}, expected {hex}",
                path.display()
            )));
        }
        Ok(bytes)
    }
}
