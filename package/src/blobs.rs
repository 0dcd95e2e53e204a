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

    /// Stores `bytes` (once: an existing blob is left as it is) and returns its SHA-256.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let hex = sha256_hex(bytes);
        let path = self.path(&hex);
        if path.exists() {
            return Ok(hex);
        }
        let io = |e: std::io::Error| ApiError::internal(format!("model store {}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = self.dir.join(format!(".{hex}.{}", uuid::Uuid::new_v4()));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        let mut perm = f.metadata().map_err(io)?.permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&tmp, perm).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(hex)
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
