//! The setting files of a service's root (`storage.json`, `job-store.json`): JSON, read by
//! every command and worker process of the service; owner-only (a setting may hold a
//! password), written whole to a temporary file and renamed into place, so that a crash never
//! leaves half a setting.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, Result};

/// The setting `root/name`, `None` when none was saved; a file that is not one (`what`) is an
/// error naming it.
pub(crate) fn load<T: DeserializeOwned>(root: &Path, name: &str, what: &str) -> Result<Option<T>> {
    let path = root.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ApiError::internal(format!("{}: {e}", path.display()))),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ApiError::validation(format!("{}: not a {what}: {e}; fix or delete the file", path.display())))
}

/// Saves `value` as the setting `root/name` (the root made when needed).
pub(crate) fn save<T: Serialize>(root: &Path, name: &str, value: &T) -> Result<()> {
    let path = root.join(name);
    let tmp = root.join(format!(".{name}.{}", uuid::Uuid::new_v4()));
    let text = serde_json::to_string_pretty(value).expect("serializable") + "\n";
    let io = |e: std::io::Error| ApiError::internal(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(root).map_err(io)?;
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(text.as_bytes())?;
        drop(file);
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}
