//! `manifest.json`, the component's description of itself: which model (and its SHA-256),
//! which target and kernel set, the contract the agent serves, the plan (and its SHA-256),
//! the parity status, the tool and the agent it runs with. `verify-component` checks it
//! against the recipe and the artifacts.

use serde::{Deserialize, Serialize};

use crate::contract::ModelContract;
use crate::shapes::TargetPlatform;

/// The manifest's schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Manifest {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The component this manifest is part of.
    pub component: ComponentId,
    /// The model version packaged.
    pub model: ModelRef,
    /// The target as requested and as resolved.
    pub target: TargetInfo,
    /// The input and output contract the agent serves.
    pub contract: ModelContract,
    /// The execution plan.
    pub plan: PlanInfo,
    /// The packaging job's parity check.
    pub parity: ParityRef,
    /// The tool that packaged it.
    pub tool: ToolInfo,
    /// The agent component it runs with.
    pub agent: AgentRef,
}

/// A component's name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComponentId {
    /// `ComponentName`.
    pub name: String,
    /// `ComponentVersion`.
    pub version: String,
}

/// The packaged model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelRef {
    /// Its project.
    pub project: String,
    /// Its version number.
    pub model_version: String,
    /// Its ARN.
    pub model_arn: String,
    /// Lower-case hex SHA-256 of the ONNX file (the artifact [`ModelRef::file`]).
    pub sha256: String,
    /// Where it was imported from.
    pub source: String,
    /// The artifact's file name.
    pub file: String,
}

/// The target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetInfo {
    /// As the job's configuration gave it.
    pub configuration: TargetConfiguration,
    /// As resolved (`Target`'s display form).
    pub resolved: String,
    /// The kernel set the plan is packed for.
    pub kernel_set: String,
    /// The CPU set beside it (the same set on CPU targets).
    pub cpu_kernel_set: String,
}

/// The job's target fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetConfiguration {
    /// `TargetDevice`.
    pub target_device: Option<String>,
    /// `TargetPlatform`.
    pub target_platform: Option<TargetPlatform>,
    /// `CompilerOptions`.
    pub compiler_options: Option<String>,
}

/// The plan artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanInfo {
    /// The artifact's file name.
    pub file: String,
    /// Lower-case hex SHA-256 of the plan file.
    pub sha256: String,
    /// Steps.
    pub steps: usize,
    /// Floating-point operations per run.
    pub flops: u64,
    /// Bytes of the activation arena.
    pub activation_bytes: usize,
    /// Bytes of the packed weights.
    pub weight_bytes: usize,
}

/// The parity report artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParityRef {
    /// The artifact's file name.
    pub file: String,
    /// `PASSED` or `PENDING_ON_DEVICE` (a FAILED check publishes nothing).
    pub status: String,
}

/// The tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ToolInfo {
    /// `edgepack`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The agent component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentRef {
    /// Its name.
    pub component: String,
    /// Its version.
    pub version: String,
    /// The binary's file name for the target's architecture.
    pub binary: String,
}
