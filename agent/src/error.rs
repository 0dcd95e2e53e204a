//! Why the agent cannot load, check, start or answer with a model.

use std::path::PathBuf;

/// An error of the agent's library, naming the file, model or output concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A manifest that is not what the packaging service writes.
    #[error("{}: {reason}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A manifest whose contract is inconsistent.
    #[error("{}: Contract: {source}", path.display())]
    Contract {
        /// The manifest.
        path: PathBuf,
        /// What is inconsistent.
        source: model::contract::ContractError,
    },
    /// An artifact that is not the file the manifest describes.
    #[error("digest mismatch: {} has SHA-256 {got}, the manifest says {want} (the file was changed or damaged after packaging)", path.display())]
    Digest {
        /// The artifact.
        path: PathBuf,
        /// Its SHA-256.
        got: String,
        /// The manifest's.
        want: String,
    },
    /// A plan or model file that does not load.
    #[error("{}: {source}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// Why.
        source: model::ModelError,
    },
    /// A plan packed for kernels this device cannot run.
    #[error("the plan was packed for kernel set `{kernel_set}`, which this device cannot run ({source}); package the model for this device's target")]
    KernelSet {
        /// The plan's kernel set.
        kernel_set: String,
        /// Why this device cannot run it.
        source: kernels::KernelError,
    },
    /// The plan cannot start or run here.
    #[error("cannot run the plan here: {0}")]
    Run(model::ModelError),
    /// The parity check could not compare.
    #[error(transparent)]
    Parity(#[from] model::parity::CheckError),
    /// An image whose size does not match its bytes.
    #[error(transparent)]
    Image(#[from] model::image::ImageSizeError),
    /// The plan's outputs do not fit the contract.
    #[error("{0}")]
    Output(String),
    /// A `--model NAME=DIR` folder that does not hold a component.
    #[error("--model {name}={}: {source}", dir.display())]
    ModelFolder {
        /// The name given.
        name: String,
        /// The folder given.
        dir: PathBuf,
        /// Why it is not a component.
        source: Box<Error>,
    },
    /// A worker thread could not start or stopped while starting.
    #[error("{0}")]
    Worker(String),
}

/// The agent library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a component file, naming it in the error.
pub fn read(path: PathBuf) -> Result<Vec<u8>> {
    std::fs::read(&path).map_err(|source| Error::Io { path, source })
}
