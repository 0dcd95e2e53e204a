//! `--cli-input-json|yaml` and `--generate-cli-skeleton` for every API operation, as the AWS
//! CLI has them: a request's members read from a document (an option given on the command
//! line overrides its member), and each operation's request skeleton and sample response.

use serde_json::{json, Map, Value};

use super::args::{CliInput, ModelRef};
use super::requests::read_arg;
use crate::render::{render, Format};

/// The members of a `--cli-input-*` document (empty without one), and the option that gave it.
pub(super) struct Input(Map<String, Value>, &'static str);

impl CliInput {
    /// Reads the document, if any: it must be an object of the request's members.
    pub(super) fn load(&self) -> Result<Input, String> {
        let (flag, v): (&str, Value) = match (&self.cli_input_json, &self.cli_input_yaml) {
            (Some(j), _) => {
                ("--cli-input-json", serde_json::from_str(&read_arg(j)?).map_err(|e| format!("--cli-input-json: {e}"))?)
            }
            (_, Some(y)) => (
                "--cli-input-yaml",
                serde_norway::from_str(&read_arg(y)?).map_err(|e| format!("--cli-input-yaml: {e}"))?,
            ),
            _ => return Ok(Input(Map::new(), "--cli-input-json")),
        };
        match v {
            Value::Object(m) => Ok(Input(m, flag)),
            _ => Err(format!("{flag}: expected an object of the request's members (see --generate-cli-skeleton)")),
        }
    }
}

impl Input {
    /// The whole document as a request (none: the request's default).
    pub(super) fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        serde_json::from_value(Value::Object(self.0)).map_err(|e| format!("{}: {e}", self.1))
    }

    /// A string member: the option when given, else the document's.
    pub(super) fn opt(&self, given: Option<String>, member: &str) -> Result<Option<String>, String> {
        if given.is_some() {
            return Ok(given);
        }
        match self.0.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{}: {member} must be a string, not {other}", self.1)),
        }
    }

    /// A required string member; the error names the option, as the AWS CLI's does.
    pub(super) fn required(&self, given: Option<String>, member: &str, flag: &str) -> Result<String, String> {
        self.opt(given, member)?
            .ok_or_else(|| format!("the following arguments are required: {flag} (or {member} in --cli-input-json)"))
    }

    /// An integer member (`MaxResults`).
    pub(super) fn int(&self, given: Option<i64>, member: &str) -> Result<Option<i64>, String> {
        match (given, self.0.get(member)) {
            (Some(n), _) => Ok(Some(n)),
            (None, None | Some(Value::Null)) => Ok(None),
            (None, Some(v)) => {
                v.as_i64().map(Some).ok_or_else(|| format!("{}: {member} must be an integer, not {v}", self.1))
            }
        }
    }
}

impl ModelRef {
    /// The project and the model version, from the options or the document.
    pub(super) fn resolve(&self) -> Result<(String, String), String> {
        let doc = self.input.load()?;
        let project = doc.required(self.project_name.clone(), "ProjectName", "--project-name")?;
        Ok((project, doc.required(self.model_version.clone(), "ModelVersion", "--model-version")?))
    }
}

/// An operation's request members (the skeleton) and its response's shape.
fn shapes(op: &str) -> (Value, Value) {
    let project = json!({ "ProjectName": "" });
    let page = |key: &str, item: Value| json!({ key: [item], "NextToken": "" });
    let project_meta = json!({ "ProjectArn": "", "ProjectName": "", "CreationTimestamp": 0.0 });
    let model_meta = json!({
        "CreationTimestamp": 0.0, "ModelVersion": "", "ModelArn": "", "Description": "", "Status": "",
        "StatusMessage": "",
    });
    let job_meta = json!({
        "JobName": "", "ProjectName": "", "ModelVersion": "", "ModelPackagingJobDescription": "",
        "ModelPackagingMethod": "", "Status": "", "StatusMessage": "", "CreationTimestamp": 0.0,
        "LastUpdatedTimestamp": 0.0,
    });
    match op {
        "CreateProject" => {
            (json!({ "ProjectName": "", "ClientToken": "" }), json!({ "ProjectMetadata": project_meta }))
        }
        "DescribeProject" => {
            let mut d = project_meta;
            d["Datasets"] = json!([]);
            (project, json!({ "ProjectDescription": d }))
        }
        "ListProjects" => (json!({ "NextToken": "", "MaxResults": 0 }), page("Projects", project_meta)),
        "DeleteProject" => (project, json!({ "ProjectArn": "" })),
        "ImportModel" => (
            json!({ "ProjectName": "", "Model": "", "Contract": "", "Description": "" }),
            json!({ "ModelDescription": model_meta }),
        ),
        "DescribeModel" => {
            let mut d = model_meta;
            d["ModelSha256"] = json!("");
            d["ModelContract"] = json!({ "Input": {}, "Output": {} });
            (json!({ "ProjectName": "", "ModelVersion": "" }), json!({ "ModelDescription": d }))
        }
        "ListModels" => (json!({ "ProjectName": "", "NextToken": "", "MaxResults": 0 }), page("Models", model_meta)),
        "DeleteModel" => (json!({ "ProjectName": "", "ModelVersion": "" }), json!({ "ModelArn": "" })),
        "StartModelPackagingJob" => (
            json!({
                "ProjectName": "", "ModelVersion": "", "JobName": "",
                "Configuration": { "Greengrass": {
                    "CompilerOptions": "", "TargetDevice": "jetson_xavier",
                    "TargetPlatform": { "Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA" },
                    "S3OutputLocation": { "Bucket": "", "Prefix": "" },
                    "ComponentName": "", "ComponentVersion": "", "ComponentDescription": "",
                    "Tags": [{ "Key": "", "Value": "" }],
                }},
                "Description": "", "ClientToken": "",
            }),
            json!({ "JobName": "" }),
        ),
        "DescribeModelPackagingJob" => {
            let mut d = job_meta;
            d["ModelPackagingConfiguration"] = json!({ "Greengrass": {} });
            d["ModelPackagingOutputDetails"] =
                json!({ "Greengrass": { "ComponentVersionArn": "", "ComponentName": "", "ComponentVersion": "" } });
            (json!({ "ProjectName": "", "JobName": "" }), json!({ "ModelPackagingDescription": d }))
        }
        "ListModelPackagingJobs" => {
            (json!({ "ProjectName": "", "NextToken": "", "MaxResults": 0 }), page("ModelPackagingJobs", job_meta))
        }
        other => unreachable!("no skeleton for {other}"),
    }
}

/// `--generate-cli-skeleton [input|yaml-input|output]` of an operation.
pub(super) fn skeleton(op: &str, kind: &str) -> Result<String, String> {
    let (input, output) = shapes(op);
    match kind {
        "input" => Ok(render(&input, Format::Json)),
        "yaml-input" => Ok(render(&input, Format::Yaml)),
        "output" => Ok(render(&output, Format::Json)),
        other => Err(format!("--generate-cli-skeleton {other}: expected input, yaml-input or output")),
    }
}
