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
    /// An output shape that depends on run-time values (non-constant shape inputs,
    /// `NonMaxSuppression`, …): the planner keeps such values off the static buffer plan.
    #[error("node `{node}` ({op}): {what} is only known at run time")]
    DataDependent {
        /// Node name.
        node: String,
        /// Operator.
        op: String,
        /// Which input decides the shape.
        what: String,
    },
    /// Every problem the importer or planner found in a model, reported at once.
    #[error("{0}")]
    Problems(Report),
}

/// One refused node (or initializer, or graph input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Node (or value) name.
    pub node: String,
    /// Operator (`initializer`, `graph input` for values).
    pub op: String,
    /// What is missing.
    pub reason: String,
}

/// All the problems of a model, grouped by operator and reason when shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// In the order found.
    pub problems: Vec<Problem>,
    /// Whether the model is quantized (QDQ / QLinear / integer-arithmetic operators, or
    /// 8-bit tensors): said in the message, since it explains most refusals of such models.
    pub quantized: bool,
}

impl Report {
    /// The problems grouped: (operator, reason, node names), in first-seen order.
    pub fn groups(&self) -> Vec<(&str, &str, Vec<&str>)> {
        let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for p in &self.problems {
            match groups.iter_mut().find(|g| g.0 == p.op && g.1 == p.reason) {
                Some(g) => g.2.push(&p.node),
                None => groups.push((&p.op, &p.reason, vec![&p.node])),
            }
        }
        groups
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups = self.groups();
        let ops: std::collections::BTreeSet<&str> = groups.iter().map(|g| g.0).collect();
        write!(
            f,
            "the model cannot be run: {} problem{} in {} node{} ({} operator{})",
            groups.len(),
            if groups.len() == 1 { "" } else { "s" },
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" },
            ops.len(),
            if ops.len() == 1 { "" } else { "s" },
        )?;
        if self.quantized {
            write!(f, "; the model is quantized (8-bit tensors or quantization operators)")?;
        }
        for (op, reason, nodes) in groups {
            let shown: Vec<String> = nodes.iter().take(5).map(|n| format!("`{n}`")).collect();
            let more = if nodes.len() > 5 { format!(" and {} more", nodes.len() - 5) } else { String::new() };
            write!(
                f,
                "\n  - {op}: {reason} ({} node{}: {}{more})",
                nodes.len(),
                if nodes.len() == 1 { "" } else { "s" },
                shown.join(", ")
            )?;
        }
        Ok(())
    }
}

impl ModelError {
    /// Whether this is a clean refusal of valid ONNX (an unsupported operator, type,
    /// attribute or form), as opposed to a malformed model or a failure.
    pub fn is_refusal(&self) -> bool {
        match self {
            ModelError::Unsupported { .. } => true,
            ModelError::Problems(r) => !r.problems.is_empty(),
            _ => false,
        }
    }
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

/// Builds [`ModelError::DataDependent`] for a node.
pub fn data_dependent(node: &str, op: &str, what: impl Into<String>) -> ModelError {
    ModelError::DataDependent { node: node.into(), op: op.into(), what: what.into() }
}

/// Builds [`ModelError::Shape`] for a node.
pub fn shape_error(node: &str, op: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Shape { node: node.into(), op: op.into(), reason: reason.into() }
}
