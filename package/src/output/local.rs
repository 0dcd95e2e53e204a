//! The embedded storage: buckets as folders under the service's root. Publishing is atomic:
//! the files are written to a staging folder inside the bucket and renamed into place in one
//! step, so a failed job leaves nothing half-written.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{check_key, check_keys, Fence, OutputFile, OutputStore};
use crate::error::{ApiError, Result};

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

fn io(what: &Path) -> impl Fn(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::internal(format!("output {}: {e}", what.display()))
}

impl OutputStore for LocalStore {
    fn publish_fenced(&self, bucket: &str, key_prefix: &str, files: &[OutputFile], fence: &dyn Fence) -> Result<()> {
        check_keys(bucket, key_prefix, files)?;
        self.check_destination(bucket, key_prefix, "")?;
        let bucket_dir = self.root.join(bucket);
        let dest = bucket_dir.join(key_prefix);
        // Owned by this process: a sweep removes it only once the process is gone.
        let staging = crate::temp::owned(&bucket_dir, STAGING);
        let result = (|| {
            std::fs::create_dir_all(&staging).map_err(io(&staging))?;
            for f in files {
                let p = staging.join(&f.name);
                let mut out = std::fs::File::create(&p).map_err(io(&p))?;
                out.write_all(&f.bytes).map_err(io(&p))?;
                out.sync_all().map_err(io(&p))?;
            }
            // Fail point (feature `fault-injection`): every file staged, nothing visible yet.
            fail::fail_point!("publish-staged");
            let parent = dest.parent().expect("a key prefix has a parent");
            std::fs::create_dir_all(parent).map_err(io(parent))?;
            let mut revealed = false;
            let held = fence.hold(&mut || {
                std::fs::rename(&staging, &dest).map_err(io(&dest))?;
                revealed = true;
                Ok(())
            });
            if held.is_err() && revealed {
                // The fence failed after the rename (it could not record it): take it back.
                let _ = std::fs::remove_dir_all(&dest);
            }
            held
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    fn check_destination(&self, bucket: &str, key_prefix: &str, _last: &str) -> Result<()> {
        check_key(bucket, key_prefix)?;
        let dest = self.path(bucket, key_prefix);
        if dest.exists() {
            return Err(ApiError::validation(format!(
                "output {} already exists; nothing was overwritten",
                dest.display()
            )));
        }
        Ok(())
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        check_key(bucket, key)?;
        let p = self.path(bucket, key);
        std::fs::read(&p).map_err(|e| match e.kind() {
            // As on S3: a missing object is the caller's to fix.
            std::io::ErrorKind::NotFound => {
                ApiError::validation(format!("s3://{bucket}/{key} does not exist ({})", p.display()))
            }
            _ => io(&p)(e),
        })
    }

    fn locate(&self, bucket: &str, key: &str) -> String {
        self.path(bucket, key).display().to_string()
    }

    fn sweep(&self) -> u64 {
        let buckets = std::fs::read_dir(&self.root).into_iter().flatten().flatten();
        buckets.map(|b| crate::temp::sweep(&b.path(), STAGING)).sum()
    }
}

/// Names of publish staging folders inside a bucket folder: `.staging-<pid>-<uuid>`.
const STAGING: &str = ".staging-";
