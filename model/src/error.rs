//! Why a model could not be imported, planned or run.

/// An error naming what was wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The bytes are not an ONNX model, or the model is inconsistent.
    #[error("malformed model: {0}")]
    Malformed(String),
    /// Valid ONNX that edgepack does not execute (operator, opset, data type, attribute).
    #[error("node `{node}` ({op}): {reason}")]
    Unsupported {
        /// Node name.
        node: String,
        /// Operator.
        op: String,
        /// What is not supported.
        reason: String,
    },
    /// Shapes that do not fit together.
    #[error("node `{node}` ({op}): {reason}")]
    Shape {
        /// Node name.
        node: String,
        /// Operator.
        op: String,
        /// The mismatch.
        reason: String,
    },
    /// The caller's inputs or options do not match the model.
    #[error("{0}")]
    Input(String),
    /// A plan file that cannot be loaded.
    #[error("plan file: {0}")]
    PlanFile(String),
    /// A kernel refused a call.
    #[error("kernel: {0}")]
    Kernel(#[from] kernels::KernelError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl From<onnx::OnnxError> for ModelError {
    fn from(e: onnx::OnnxError) -> Self {
        ModelError::Malformed(e.to_string())
    }
}

/// Builds [`ModelError::Unsupported`] for a node.
pub fn unsupported(node: &str, op: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Unsupported { node: node.into(), op: op.into(), reason: reason.into() }
}

/// Builds [`ModelError::Shape`] for a node.
pub fn shape_error(node: &str, op: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Shape { node: node.into(), op: op.into(), reason: reason.into() }
}
