//! Projects and model versions: `CreateProject`, `DescribeProject`, `ListProjects`,
//! `DeleteProject`, and `ImportModel` (the managed service trained models; we import ONNX
//! files), `DescribeModel`, `ListModels`, `DeleteModel`.

use crate::args;
use crate::contract::{ModelContract, OutputSpec};
use crate::error::{ApiError, ResourceType, Result};
use crate::shapes::{
    ListModelsResponse, ListProjectsResponse, ModelDescription, ModelMetadata, ProjectDescription, ProjectMetadata,
};
use crate::store::{now_ms, page_after, page_after_id, page_token, seconds, Db, Row};
use crate::validate::{page_size, Violations, MODEL_VERSION, MODEL_VERSION_NO_LATEST, PROJECT_NAME};
use crate::Service;

/// An `ImportModel` request: a new model version of a project from an ONNX file.
#[derive(Debug, Clone)]
pub struct ImportModel {
    /// The project.
    pub project_name: String,
    /// The ONNX file's bytes.
    pub onnx: Vec<u8>,
    /// Where it came from (a file name), for the status message.
    pub source: String,
    /// Optional description (`ModelDescriptionMessage`: 1..500 of `[0-9A-Za-z.-_]`).
    pub description: Option<String>,
    /// Input and output contract.
    pub contract: ModelContract,
}

/// `ModelDescriptionMessage`.
const MODEL_DESCRIPTION: crate::validate::StrRule =
    crate::validate::StrRule { min: 1, max: 500, pattern: Some(r"[0-9A-Za-z\.\-_]*") };

/// The client-token operation name of `CreateProject`.
const CREATE_PROJECT: &str = "CreateProject";

/// The ARN of a project.
pub fn project_arn(name: &str) -> String {
    format!("arn:edgepack:lookoutvision:local:000000000000:project/{name}")
}

/// The ARN of a model version.
pub fn model_arn(project: &str, version: i64) -> String {
    format!("arn:edgepack:lookoutvision:local:000000000000:model/{project}/{version}")
}

fn project_metadata(name: String, created_ms: i64) -> ProjectMetadata {
    ProjectMetadata { project_arn: project_arn(&name), project_name: name, creation_timestamp: seconds(created_ms) }
}

fn project_name_ok(name: &str) -> Result<()> {
    let mut v = Violations::default();
    v.required("ProjectName", Some(name), &PROJECT_NAME);
    v.finish()
}

/// The columns of a stored model, as [`model_row`] reads them.
const MODEL_COLS: &str = "SELECT version, created_ms, description, sha256, source, contract FROM models";

fn model_row(r: &Row) -> Result<StoredModel> {
    let contract: String = r.get(5)?;
    Ok(StoredModel {
        version: r.get(0)?,
        created_ms: r.get(1)?,
        description: r.get(2)?,
        sha256: r.get(3)?,
        source: r.get(4)?,
        contract: serde_json::from_str(&contract)
            .map_err(|e| ApiError::internal(format!("job store: a stored model's contract: {e}")))?,
    })
}

/// A stored model version.
#[derive(Debug, Clone)]
pub struct StoredModel {
    /// Version number.
    pub version: i64,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// Description.
    pub description: Option<String>,
    /// SHA-256 of the ONNX file.
    pub sha256: String,
    /// Where it came from.
    pub source: String,
    /// Its contract.
    pub contract: ModelContract,
}

impl StoredModel {
    fn metadata(&self, project: &str) -> ModelMetadata {
        ModelMetadata {
            creation_timestamp: seconds(self.created_ms),
            model_version: self.version.to_string(),
            model_arn: model_arn(project, self.version),
            description: self.description.clone(),
            status: "TRAINED".into(),
            status_message: format!("imported from {}", self.source),
        }
    }
}

impl Service {
    /// `CreateProject`.
    pub fn create_project(&self, name: &str) -> Result<ProjectMetadata> {
        self.create_project_with_token(name, None)
    }

    /// `CreateProject` with its `ClientToken` (`X-Amzn-Client-Token`, which the AWS SDKs always
    /// send): a retry with the same token and name within 8 hours answers as the first call did
    /// (the project it made), with another name it is a `ConflictException`.
    pub fn create_project_with_token(&self, name: &str, client_token: Option<&str>) -> Result<ProjectMetadata> {
        project_name_ok(name)?;
        let mut c = self.db()?;
        let mut tx = c.write()?;
        let now = now_ms();
        if let Some(token) = client_token {
            if let Some(result) = crate::store::claim_token(&mut tx, CREATE_PROJECT, token, name, now)? {
                return serde_json::from_str(&result)
                    .map_err(|e| ApiError::internal(format!("client token {token}: {e}")));
            }
        }
        // Under the store's writer lock: nobody creates it between the check and the insert.
        if tx.query_opt("SELECT 1 FROM projects WHERE name = ?1", args![name])?.is_some() {
            return Err(ApiError::conflict(ResourceType::Project, name, format!("project '{name}' already exists")));
        }
        tx.execute("INSERT INTO projects(name, created_ms) VALUES (?1, ?2)", args![name, now])?;
        let meta = project_metadata(name.into(), now);
        if let Some(token) = client_token {
            let result = serde_json::to_string(&meta).expect("serializable");
            crate::store::record_token(&mut tx, CREATE_PROJECT, token, name, &result, now)?;
        }
        tx.commit()?;
        Ok(meta)
    }

    pub(crate) fn project_created(&self, c: &mut Db, name: &str) -> Result<i64> {
        c.query_opt("SELECT created_ms FROM projects WHERE name = ?1", args![name])?
            .ok_or_else(|| {
                ApiError::not_found(ResourceType::Project, name, format!("project '{name}' does not exist"))
            })?
            .get(0)
    }

    /// `DescribeProject`.
    pub fn describe_project(&self, name: &str) -> Result<ProjectDescription> {
        project_name_ok(name)?;
        let created = self.project_created(&mut self.db()?, name)?;
        Ok(ProjectDescription { project: project_metadata(name.into(), created), datasets: Vec::new() })
    }

    /// `ListProjects`: by name, `max_results` (1..100, default 100) per page.
    pub fn list_projects(&self, next_token: Option<&str>, max_results: Option<i64>) -> Result<ListProjectsResponse> {
        let limit = page_size(max_results, next_token)?;
        let after = page_after("projects", next_token)?.unwrap_or_default();
        let mut projects: Vec<ProjectMetadata> = self
            .db()?
            .query(
                "SELECT name, created_ms FROM projects WHERE name > ?1 ORDER BY name LIMIT ?2",
                args![after, limit + 1],
            )?
            .iter()
            .map(|r| Ok(project_metadata(r.get(0)?, r.get(1)?)))
            .collect::<Result<_>>()?;
        let next_token = (projects.len() as i64 > limit).then(|| {
            projects.truncate(limit as usize);
            page_token("projects", &projects[projects.len() - 1].project_name)
        });
        Ok(ListProjectsResponse { projects, next_token })
    }

    /// `DeleteProject`: refused while it has model versions (delete them first); its
    /// packaging jobs' records go with it, published components stay.
    pub fn delete_project(&self, name: &str) -> Result<String> {
        project_name_ok(name)?;
        let mut c = self.db()?;
        let mut tx = c.write()?;
        self.project_created(&mut tx, name)?;
        let models: i64 = tx.query_one("SELECT COUNT(*) FROM models WHERE project = ?1", args![name])?.get(0)?;
        if models > 0 {
            return Err(ApiError::conflict(
                ResourceType::Project,
                name,
                format!("project '{name}' still has {models} model version(s); delete them first (delete-model)"),
            ));
        }
        let running: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE project = ?1 AND status IN ('CREATED', 'RUNNING')",
                args![name],
            )?
            .get(0)?;
        if running > 0 {
            return Err(ApiError::conflict(
                ResourceType::Project,
                name,
                format!("project '{name}' has {running} packaging job(s) in progress"),
            ));
        }
        // Failed jobs published nothing: their reservations go with them; the others stay.
        tx.execute(
            "DELETE FROM component_reservations
             WHERE job_id IN (SELECT id FROM jobs WHERE project = ?1 AND status = 'FAILED')",
            args![name],
        )?;
        tx.execute("DELETE FROM jobs WHERE project = ?1", args![name])?;
        tx.execute("DELETE FROM projects WHERE name = ?1", args![name])?;
        tx.commit()?;
        Ok(project_arn(name))
    }

    /// `ImportModel`: checks the ONNX file (it must import and plan at the contract's input
    /// shape) and the contract against it, stores the file content-addressed and registers
    /// the next version number of the project (numbers are never reused).
    pub fn import_model(&self, req: &ImportModel) -> Result<ModelDescription> {
        project_name_ok(&req.project_name)?;
        let mut v = Violations::default();
        v.check("Description", req.description.as_deref(), &MODEL_DESCRIPTION);
        v.finish()?;
        req.contract.check().map_err(|e| ApiError::validation(format!("model contract: {e}")))?;
        let prepared = check_against_model(&req.onnx, &req.contract)?;
        self.check_memory(&prepared, &req.contract.input.shape)?;
        self.project_created(&mut self.db()?, &req.project_name)?;
        let sha = self.put_model_file(&req.onnx)?;
        let contract = serde_json::to_string(&req.contract).expect("serializable");
        let mut c = self.db()?;
        let mut tx = c.write()?;
        self.project_created(&mut tx, &req.project_name)?;
        // Never a number given before, also to a deleted model or a deleted project's
        // (`model_versions` holds every number given: see the store's migrations).
        let version: i64 = tx
            .query_one(
                "SELECT COALESCE((SELECT last FROM model_versions WHERE project = ?1), 0) + 1",
                args![&req.project_name],
            )?
            .get(0)?;
        tx.execute(
            "INSERT INTO model_versions(project, last) VALUES (?1, ?2)
             ON CONFLICT(project) DO UPDATE SET last = excluded.last",
            args![&req.project_name, version],
        )?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO models(project, version, created_ms, description, sha256, source, contract)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![&req.project_name, version, now, &req.description, sha, &req.source, contract],
        )?;
        tx.commit()?;
        self.describe_model(&req.project_name, &version.to_string())
    }

    /// The stored model `version` (a number or `latest`) of `project`.
    pub fn stored_model(&self, project: &str, version: &str) -> Result<StoredModel> {
        project_name_ok(project)?;
        let mut v = Violations::default();
        v.required("ModelVersion", Some(version), &MODEL_VERSION);
        v.finish()?;
        let mut c = self.db()?;
        self.project_created(&mut c, project)?;
        let found = if version == "latest" {
            c.query_opt(&format!("{MODEL_COLS} WHERE project = ?1 ORDER BY version DESC LIMIT 1"), args![project])?
        } else {
            let n: i64 = version
                .parse()
                .map_err(|_| ApiError::validation(format!("ModelVersion '{version}' is not a number")))?;
            c.query_opt(&format!("{MODEL_COLS} WHERE project = ?1 AND version = ?2"), args![project, n])?
        };
        found.map(|r| model_row(&r)).transpose()?.ok_or_else(|| {
            ApiError::not_found(
                ResourceType::Model,
                version,
                format!("model version '{version}' of project '{project}' does not exist"),
            )
        })
    }

    /// `DescribeModel`.
    pub fn describe_model(&self, project: &str, version: &str) -> Result<ModelDescription> {
        let m = self.stored_model(project, version)?;
        Ok(ModelDescription { model: m.metadata(project), model_sha256: m.sha256, model_contract: m.contract })
    }

    /// `ListModels`: newest first.
    pub fn list_models(
        &self,
        project: &str,
        next_token: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<ListModelsResponse> {
        project_name_ok(project)?;
        let limit = page_size(max_results, next_token)?;
        let list = format!("models/{project}");
        let after = page_after_id(&list, next_token)?;
        let mut c = self.db()?;
        self.project_created(&mut c, project)?;
        let rows: Vec<StoredModel> = c
            .query(
                &format!("{MODEL_COLS} WHERE project = ?1 AND version < ?2 ORDER BY version DESC LIMIT ?3"),
                args![project, after, limit + 1],
            )?
            .iter()
            .map(model_row)
            .collect::<Result<_>>()?;
        let next_token =
            (rows.len() as i64 > limit).then(|| page_token(&list, &rows[limit as usize - 1].version.to_string()));
        let models = rows.iter().take(limit as usize).map(|m| m.metadata(project)).collect();
        Ok(ListModelsResponse { models, next_token })
    }

    /// `DeleteModel`: refused while a packaging job of it is in progress. The version is a
    /// number (`ModelVersionNoLatest`: `latest` is a ValidationException, as in the API). The
    /// model file stays in the content-addressed store (other versions may share it).
    pub fn delete_model(&self, project: &str, version: &str) -> Result<String> {
        let mut v = Violations::default();
        v.required("ModelVersion", Some(version), &MODEL_VERSION_NO_LATEST);
        v.finish()?;
        let m = self.stored_model(project, version)?;
        let mut c = self.db()?;
        let mut tx = c.write()?;
        let running: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE project = ?1 AND model_version = ?2 AND status IN ('CREATED', 'RUNNING')",
                args![project, m.version.to_string()],
            )?
            .get(0)?;
        if running > 0 {
            return Err(ApiError::conflict(
                ResourceType::Model,
                &m.version.to_string(),
                format!("model version {} of '{project}' is being packaged; wait for the job", m.version),
            ));
        }
        tx.execute("DELETE FROM models WHERE project = ?1 AND version = ?2", args![project, m.version])?;
        tx.commit()?;
        Ok(model_arn(project, m.version))
    }
}

/// The model must import and specialise at the contract's input shape, the input's name must
/// be the model's (only) free input, and the outputs the contract names must exist with room
/// for the score index / one channel per mask class. Returns the prepared model.
fn check_against_model(onnx: &[u8], contract: &ModelContract) -> Result<model::Prepared> {
    let bad = |m: String| ApiError::validation(format!("model: {m}"));
    let prepared = model::prepare(onnx, std::slice::from_ref(&contract.input.shape)).map_err(|e| bad(e.to_string()))?;
    let g = &prepared.specialized;
    let inputs: Vec<&str> = g.inputs.iter().map(|&i| g.values[i].name.as_str()).collect();
    if inputs != [contract.input.name.as_str()] {
        return Err(bad(format!(
            "the contract's input is '{}', the model's free inputs are {inputs:?} (one image input is supported)",
            contract.input.name
        )));
    }
    // Images arrive as float tensors; any other input would plan nowhere (every job failed).
    let dtype = g.values[g.inputs[0]].dtype;
    if dtype.is_int() {
        return Err(bad(format!(
            "input '{}' has element type {dtype:?}; the service packages models whose image input is float32",
            contract.input.name
        )));
    }
    let output_shape = |name: &str| -> Result<Vec<usize>> {
        let id = g.outputs.iter().copied().find(|&o| g.values[o].name == name).ok_or_else(|| {
            let names: Vec<&str> = g.outputs.iter().map(|&o| g.values[o].name.as_str()).collect();
            bad(format!("the model has no output '{name}'; its outputs are {names:?}"))
        })?;
        g.values[id].shape.clone().ok_or_else(|| bad(format!("output '{name}' has no inferred shape")))
    };
    match &contract.output {
        OutputSpec::Classification { score_output, score_index, .. } => {
            let s = output_shape(score_output)?;
            let n: usize = s.iter().product();
            if *score_index >= n {
                return Err(bad(format!(
                    "score index {score_index} is outside output '{score_output}' of shape {s:?}"
                )));
            }
        }
        OutputSpec::Segmentation { mask_output, classes, .. } => {
            let s = output_shape(mask_output)?;
            if s.len() != 4 || s[1] != classes.len() {
                return Err(bad(format!(
                    "mask output '{mask_output}' has shape {s:?}; {} class(es) need [1, {}, H, W]",
                    classes.len(),
                    classes.len()
                )));
            }
        }
    }
    Ok(prepared)
}
