//! Where components go: `S3OutputLocation {Bucket, Prefix}` resolved through the storage
//! setting ([`Storage`], kept in `<root>/storage.json`). The embedded default keeps one local
//! folder per bucket ([`LocalStore`]); an S3-compatible endpoint (AWS S3, MinIO, s3s-fs, …)
//! is reached with `object_store`'s S3 client ([`S3Store`]).

mod local;
mod s3;
mod storage;

pub use local::LocalStore;
pub use s3::{S3Credentials, S3Store};
pub use storage::{S3Settings, Storage, STORAGE_FILE};

use crate::error::{ApiError, Result};

/// One file of a component.
#[derive(Debug, Clone)]
pub struct OutputFile {
    /// Its name inside the component's folder.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// What a publish must hold while it makes a component visible: the publisher's proof that
/// it may still publish (a packaging job's worker: the job is still its own, not FAILED by the
/// liveness rule and its component version given to another job).
pub trait Fence {
    /// Runs `reveal` (the one step that makes the component visible) only while the right
    /// holds, and keeps it held until `reveal` has returned; an error otherwise, and `reveal`
    /// does not run.
    fn hold(&self, reveal: &mut dyn FnMut() -> Result<()>) -> Result<()>;
}

/// No fence: the publisher needs no one's leave (the agent component, tests of a store).
pub struct Unfenced;

impl Fence for Unfenced {
    fn hold(&self, reveal: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        reveal()
    }
}

/// A place that stores buckets of objects.
pub trait OutputStore: Send + Sync {
    /// [`OutputStore::publish_fenced`] without a fence.
    fn publish(&self, bucket: &str, key_prefix: &str, files: &[OutputFile]) -> Result<()> {
        self.publish_fenced(bucket, key_prefix, files, &Unfenced)
    }
    /// Publishes `files` under `bucket`/`key_prefix`/ and refuses when a complete component is
    /// already there. A failed publish leaves nothing behind. Stores that can make the files
    /// appear together do so (local folders: one rename); the others (S3) write them in the
    /// order given, so the last file marks a complete component: a prefix without it holds
    /// the remains of an interrupted publish and is replaced. The step that makes the
    /// component visible (the rename, the last file) runs inside `fence`; when the fence
    /// refuses, what was written is removed again.
    fn publish_fenced(&self, bucket: &str, key_prefix: &str, files: &[OutputFile], fence: &dyn Fence) -> Result<()>;
    /// Checks, before a job does its work, that a component can be published under
    /// `bucket`/`key_prefix`: the bucket can be reached with the credentials at hand and no
    /// complete component is there (`last`: the name of the file a publish writes last).
    fn check_destination(&self, bucket: &str, key_prefix: &str, last: &str) -> Result<()>;
    /// Reads the object `key` of `bucket`.
    fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>>;
    /// Where `bucket`/`key` is, for messages (an object URL or a local path).
    fn locate(&self, bucket: &str, key: &str) -> String;
    /// Removes what publishes of processes that are gone left behind (local staging
    /// folders of a killed worker); returns the bytes freed. Nothing to do by default.
    fn sweep(&self) -> u64 {
        0
    }
}

/// Checks a bucket name and key before they reach a store: no empty, `.` or `..` segments (a
/// local bucket is a folder, and no component key needs them on S3 either).
pub(crate) fn check_key(bucket: &str, key: &str) -> Result<()> {
    let bad_bucket = bucket.is_empty() || bucket == "." || bucket == ".." || bucket.contains('/');
    if bad_bucket || key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ApiError::validation(format!(
            "s3://{bucket}/{key}: output keys cannot have empty, '.' or '..' segments"
        )));
    }
    Ok(())
}

/// Checks every key of a publish.
pub(crate) fn check_keys(bucket: &str, key_prefix: &str, files: &[OutputFile]) -> Result<()> {
    check_key(bucket, key_prefix)?;
    files.iter().try_for_each(|f| check_key(bucket, &f.name))
}
