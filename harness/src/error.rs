//! Why a harness step could not check, or what it found wrong.

use std::path::{Path, PathBuf};

/// An error of the harness: data that cannot be read, a case that cannot be built, or a
/// result that does not match.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the harness needs cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A data file that does not hold what it should (not ONNX, a missing entry, …).
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Data the fetch scripts make is missing or unreadable.
    #[error("{}: {source} ({hint})", path.display())]
    NotFetched {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Which script makes it.
        hint: &'static str,
    },
    /// A `.npy` file.
    #[error(transparent)]
    Npy(#[from] edgepack_parity::npy::NpyError),
    /// A case the harness cannot build or run as described (attributes, shapes).
    #[error("{case}: {reason}")]
    Case {
        /// The case.
        case: String,
        /// What does not fit.
        reason: String,
    },
    /// A result that differs from what is expected beyond the bound.
    #[error("{case}: {detail}")]
    Mismatch {
        /// The case (and output).
        case: String,
        /// Where and by how much.
        detail: String,
    },
    /// The model layer refused.
    #[error(transparent)]
    Model(#[from] model::ModelError),
    /// A kernel refused the call.
    #[error(transparent)]
    Kernel(#[from] kernels::KernelError),
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A case that cannot be built.
    pub fn case(case: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Case { case: case.into(), reason: reason.into() }
    }

    /// A result that does not match.
    pub fn mismatch(case: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Mismatch { case: case.into(), detail: detail.into() }
    }

    /// A data file that does not hold what it should.
    pub fn data(path: &Path, reason: impl std::fmt::Display) -> Error {
        Error::Data { path: path.to_path_buf(), reason: reason.to_string() }
    }
}

/// Reads a file that a fetch script makes; the error names the file and the script (`hint`).
pub fn read_fetched(path: &Path, hint: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::NotFetched { path: path.to_path_buf(), source: Box::new(e), hint })
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
