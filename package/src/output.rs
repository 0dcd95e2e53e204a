//! Where components go: `S3OutputLocation {Bucket, Prefix}` resolved through the storage
//! setting. The embedded default keeps one local folder per bucket. Publishing is atomic: the
//! files are written to a staging folder inside the bucket and renamed into place in one step,
//! so a failed job leaves nothing half-written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{ApiError, Result};

/// One file of a component.
#[derive(Debug, Clone)]
pub struct OutputFile {
    /// Its name inside the component's folder.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A place that stores buckets of objects.
pub trait OutputStore: Send + Sync {
    /// Publishes `files` under `bucket`/`key_prefix`/ all at once (none of them visible
    /// before all are written); refuses when something is already there.
    fn publish(&self, bucket: &str, key_prefix: &str, files: &[OutputFile]) -> Result<()>;
    /// Reads the object `key` of `bucket`.
    fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>>;
    /// Where `bucket`/`key` is, for messages (`s3://…` or a local path).
    fn locate(&self, bucket: &str, key: &str) -> String;
}

/// Buckets as folders: `<root>/<bucket>/<key>`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Buckets under `root`.
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    /// The folder of `bucket`/`key`.
    pub fn path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

/// A bucket name or key that is safe as a relative path: no empty, `.` or `..` segments.
fn safe(bucket: &str, key: &str) -> Result<()> {
    let bad_bucket = bucket.is_empty() || bucket == "." || bucket == ".." || bucket.contains('/');
    if bad_bucket || key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ApiError::validation(format!(
            "s3://{bucket}/{key}: the local bucket store refuses keys with empty, '.' or '..' segments"
        )));
    }
    Ok(())
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::internal(format!("output {}: {e}", what.display()))
}

impl OutputStore for LocalStore {
    fn publish(&self, bucket: &str, key_prefix: &str, files: &[OutputFile]) -> Result<()> {
        safe(bucket, key_prefix)?;
        for f in files {
            safe(bucket, &f.name)?;
        }
        let bucket_dir = self.root.join(bucket);
        let dest = bucket_dir.join(key_prefix);
        if dest.exists() {
            return Err(ApiError::internal(format!(
                "output {} already exists; nothing was overwritten",
                dest.display()
            )));
        }
        let staging = bucket_dir.join(format!(".staging-{}", uuid::Uuid::new_v4()));
        let result = (|| {
            std::fs::create_dir_all(&staging).map_err(io(&staging))?;
            for f in files {
                let p = staging.join(&f.name);
                let mut out = std::fs::File::create(&p).map_err(io(&p))?;
                out.write_all(&f.bytes).map_err(io(&p))?;
                out.sync_all().map_err(io(&p))?;
            }
            let parent = dest.parent().expect("a key prefix has a parent");
            std::fs::create_dir_all(parent).map_err(io(parent))?;
            std::fs::rename(&staging, &dest).map_err(io(&dest))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        safe(bucket, key)?;
        let p = self.path(bucket, key);
        std::fs::read(&p).map_err(io(&p))
    }

    fn locate(&self, bucket: &str, key: &str) -> String {
        self.path(bucket, key).display().to_string()
    }
}
