//! The agent's Unix socket: the path the clients know (`unix:///tmp/…` or a plain path), a
//! stale socket left by an agent that died is replaced, a live agent's socket or any other file
//! is never touched, and the socket is owner- and group-accessible only (mode 0660).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// The spec's default socket.
pub const DEFAULT_SOCKET: &str = "unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock";

/// A socket address as clients write it (`unix://` + absolute path, `unix:` + path, or a path).
pub fn socket_path(address: &str) -> PathBuf {
    let p = address.strip_prefix("unix://").or_else(|| address.strip_prefix("unix:")).unwrap_or(address);
    PathBuf::from(p)
}

/// Why the socket cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A live agent answers on it.
    #[error("{}: another agent is serving on this socket; stop it or use --socket", .0.display())]
    InUse(PathBuf),
    /// Something other than a socket is at the path.
    #[error("{}: exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    /// The socket's folder does not exist.
    #[error("{}: folder {} does not exist", path.display(), folder.display())]
    NoFolder {
        /// The socket.
        path: PathBuf,
        /// Its folder.
        folder: PathBuf,
    },
    /// The system refused a step.
    #[error("{}: {step}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// The step (`removing the stale socket`, `binding`, `setting permissions`).
        step: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Binds the socket at `path` (see the module's rules). Call before the runtime's other threads
/// touch the process's file-creation mask.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let io = |step| move |source| SocketError::Io { path: path.to_path_buf(), step, source };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(SocketError::NoFolder { path: path.to_path_buf(), folder: dir.to_path_buf() });
        }
    }
    // The socket is created with mode 0660 at once (no moment with wider permissions).
    // SAFETY: umask only swaps the process's creation mask; it cannot fail.
    let old = unsafe { libc::umask(0o117) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(io("binding"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io("setting permissions"))?;
    Ok(listener)
}
