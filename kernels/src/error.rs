//! The one error type of the kernels crate.

use thiserror::Error;

/// Why a kernel call, a target description or a packed-weight blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelError {
    /// Operand shapes, strides or lengths do not fit together.
    #[error("shape error: {0}")]
    Shape(String),
    /// A target description (device, platform, compiler options) is not valid.
    #[error("invalid target: {0}")]
    Target(String),
    /// The kernel set exists but this machine (or this build) cannot execute it.
    #[error("kernel set `{set}` cannot run here: {reason}")]
    Unavailable {
        /// The kernel set asked for.
        set: String,
        /// What is missing.
        reason: String,
    },
    /// A packed-weight blob is malformed or was packed for another kernel set.
    #[error("packed weights rejected: {0}")]
    Packed(String),
    /// A tuning knob of the environment (`EDGEPACK_BLOCKING`, …; see [`crate::Tuning`]) is
    /// malformed.
    #[error("invalid tuning knob: {0}")]
    Tuning(String),
    /// A GPU call (compilation, allocation, copy or launch) failed.
    #[error("CUDA error: {0}")]
    Device(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
