//! The API model's request and response shapes for projects, model versions and packaging
//! jobs, spelled as on the wire (PascalCase; timestamps as epoch seconds).
//!
//! Required members are `Option`s here so that a missing one is reported by
//! [`crate::validate`] with its path, not by the JSON parser; unknown members are errors.

use serde::{Deserialize, Serialize};

/// A page of a list operation: the items and, when there are more, the `NextToken`.
macro_rules! list_response {
    ($name:ident, $items:ident, $item:ty, $doc:literal) => {
        #[doc = concat!("One page of `", stringify!($name), "`.")]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            #[doc = $doc]
            pub $items: Vec<$item>,
            /// Present when there are more.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next_token: Option<String>,
        }
    };
}

/// `Tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    /// 1..128 characters.
    #[serde(default)]
    pub key: Option<String>,
    /// 0..256 characters.
    #[serde(default)]
    pub value: Option<String>,
}

/// `TargetPlatform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetPlatform {
    /// `LINUX`.
    #[serde(default)]
    pub os: Option<String>,
    /// `ARM64` or `X86_64`.
    #[serde(default)]
    pub arch: Option<String>,
    /// `NVIDIA` or absent (CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
}

/// `S3Location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3Location {
    /// Bucket name, 3..63 characters.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Key prefix (folder), 0..1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `GreengrassConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GreengrassConfiguration {
    /// A JSON string of compiler options (`mcpu`, `mattr`; `gpu-code`, `trt-ver`, `cuda-ver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiler_options: Option<String>,
    /// `jetson_xavier`; excludes `TargetPlatform` and `CompilerOptions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_device: Option<String>,
    /// OS, architecture, accelerator; excludes `TargetDevice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_platform: Option<TargetPlatform>,
    /// Where the component's artifacts go.
    #[serde(rename = "S3OutputLocation", default)]
    pub s3_output_location: Option<S3Location>,
    /// The component's name.
    #[serde(default)]
    pub component_name: Option<String>,
    /// Semantic version `x.y.z`; defaults to `<ModelVersion>.0.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_version: Option<String>,
    /// The component's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_description: Option<String>,
    /// Tags for the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// `ModelPackagingConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModelPackagingConfiguration {
    /// The Greengrass component to make.
    #[serde(default)]
    pub greengrass: Option<GreengrassConfiguration>,
}

/// `StartModelPackagingJobRequest` (the project name travels in the URI, the client token in
/// the `X-Amzn-Client-Token` header; both are members here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StartModelPackagingJobRequest {
    /// The project.
    #[serde(default)]
    pub project_name: Option<String>,
    /// A version number or `latest`.
    #[serde(default)]
    pub model_version: Option<String>,
    /// The job's name; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// What to make.
    #[serde(default)]
    pub configuration: Option<ModelPackagingConfiguration>,
    /// The job's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Idempotency token (8 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `StartModelPackagingJobResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartModelPackagingJobResponse {
    /// The job's name.
    pub job_name: String,
}

/// `GreengrassOutputDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GreengrassOutputDetails {
    /// `arn:aws:greengrass:<region>:aws:components:<name>:versions:<version>` in the service;
    /// here a local ARN of the same pattern.
    pub component_version_arn: String,
    /// The component's name.
    pub component_name: String,
    /// The component's version.
    pub component_version: String,
}

/// `ModelPackagingOutputDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelPackagingOutputDetails {
    /// The component made.
    pub greengrass: GreengrassOutputDetails,
}

/// `ModelPackagingDescription`: the job's metadata plus its configuration and output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelPackagingDescription {
    /// Name, project, model version, status, timestamps.
    #[serde(flatten)]
    pub job: ModelPackagingJobMetadata,
    /// The configuration as given, with defaults filled in (component version).
    pub model_packaging_configuration: ModelPackagingConfiguration,
    /// The component, once the job succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_packaging_output_details: Option<ModelPackagingOutputDetails>,
}

/// `DescribeModelPackagingJobResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeModelPackagingJobResponse {
    /// The job.
    pub model_packaging_description: ModelPackagingDescription,
}

/// `ModelPackagingJobMetadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelPackagingJobMetadata {
    /// The job's name.
    pub job_name: String,
    /// The project.
    pub project_name: String,
    /// The model version.
    pub model_version: String,
    /// The job's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_packaging_job_description: Option<String>,
    /// `Greengrass`.
    pub model_packaging_method: String,
    /// Status.
    pub status: String,
    /// Status message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Epoch seconds.
    pub creation_timestamp: f64,
    /// Epoch seconds.
    pub last_updated_timestamp: f64,
}

list_response!(
    ListModelPackagingJobsResponse,
    model_packaging_jobs,
    ModelPackagingJobMetadata,
    "One page of jobs, newest first."
);

/// `ProjectMetadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectMetadata {
    /// `arn:edgepack:lookoutvision:local:project/<name>`.
    pub project_arn: String,
    /// The name.
    pub project_name: String,
    /// Epoch seconds.
    pub creation_timestamp: f64,
}

/// `ProjectDescription` (datasets: always empty, models are imported, not trained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectDescription {
    /// ARN, name, creation time.
    #[serde(flatten)]
    pub project: ProjectMetadata,
    /// Always empty here.
    pub datasets: Vec<serde_json::Value>,
}

list_response!(ListProjectsResponse, projects, ProjectMetadata, "Projects by name.");

/// `ModelMetadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelMetadata {
    /// Epoch seconds.
    pub creation_timestamp: f64,
    /// The version number.
    pub model_version: String,
    /// ARN.
    pub model_arn: String,
    /// The description given at import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `TRAINED`: an imported model is ready to package.
    pub status: String,
    /// Where it came from.
    pub status_message: String,
}

list_response!(ListModelsResponse, models, ModelMetadata, "Model versions, newest first.");

/// `ModelDescription`: the API model's members that apply to an imported model, plus what a
/// device needs to use it (`ModelContract`, `ModelSha256`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelDescription {
    /// Version, ARN, time, description, status.
    #[serde(flatten)]
    pub model: ModelMetadata,
    /// SHA-256 of the ONNX file (its name in the content-addressed store).
    pub model_sha256: String,
    /// Input and output contract.
    pub model_contract: crate::contract::ModelContract,
}
