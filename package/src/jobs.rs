//! `StartModelPackagingJob`, `DescribeModelPackagingJob`, `ListModelPackagingJobs`: requests
//! validated and recorded in one write transaction (idempotent on the client token, also
//! under concurrent identical requests); the work itself runs off the request path
//! ([`crate::worker`]).

use serde_json::json;

use crate::args;
use crate::error::{ApiError, ResourceType, Result};
use crate::shapes::{
    DescribeModelPackagingJobResponse, ListModelPackagingJobsResponse, ModelPackagingConfiguration,
    ModelPackagingDescription, ModelPackagingJobMetadata, ModelPackagingOutputDetails, StartModelPackagingJobRequest,
    StartModelPackagingJobResponse,
};
use crate::store::{now_ms, page_after_id, page_token, seconds, Row};
use crate::validate::{self, page_size, Violations, JOB_NAME, PROJECT_NAME};
use crate::Service;

/// How long a client token stays bound to its request.
pub const CLIENT_TOKEN_TTL_MS: i64 = 8 * 3600 * 1000;
/// The packaging method the jobs use.
pub const METHOD: &str = "Greengrass";
const START: &str = "StartModelPackagingJob";

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Project.
    pub project: String,
    /// Job name.
    pub name: String,
    /// Model version (resolved number).
    pub model_version: String,
    /// Configuration with defaults filled in.
    pub configuration: ModelPackagingConfiguration,
    /// Description.
    pub description: Option<String>,
    /// CREATED, RUNNING, SUCCEEDED, FAILED.
    pub status: String,
    /// Status message.
    pub status_message: Option<String>,
    /// Epoch ms.
    pub created_ms: i64,
    /// Epoch ms.
    pub updated_ms: i64,
    /// The component's name.
    pub component_name: String,
    /// The component's version.
    pub component_version: String,
    /// Output details once SUCCEEDED.
    pub output: Option<ModelPackagingOutputDetails>,
}

const JOB_COLS: &str = "project, name, model_version, configuration, description, status, status_message, \
                        created_ms, updated_ms, component_name, component_version, output";

impl JobRow {
    /// The job's `ModelPackagingJobMetadata`.
    pub fn metadata(&self) -> ModelPackagingJobMetadata {
        ModelPackagingJobMetadata {
            job_name: self.name.clone(),
            project_name: self.project.clone(),
            model_version: self.model_version.clone(),
            model_packaging_job_description: self.description.clone(),
            model_packaging_method: METHOD.into(),
            status: self.status.clone(),
            status_message: self.status_message.clone(),
            creation_timestamp: seconds(self.created_ms),
            last_updated_timestamp: seconds(self.updated_ms),
        }
    }
}

impl Service {
    /// `StartModelPackagingJob`: validates, resolves `latest`, fills the component version
    /// default, records the job as CREATED and hands it to the runner; returns at once.
    ///
    /// With a `ClientToken`: the same token with the same parameters within 8 hours returns
    /// the first call's job (no second job, also when the calls race); with other parameters
    /// it is a `ConflictException`.
    pub fn start_model_packaging_job(
        &self,
        req: &StartModelPackagingJobRequest,
    ) -> Result<StartModelPackagingJobResponse> {
        let valid = validate::start_request(req)?;
        // What the token binds: the request as given (not the generated name or defaults).
        let params = json!({
            "ProjectName": req.project_name, "ModelVersion": req.model_version, "JobName": req.job_name,
            "Configuration": req.configuration, "Description": req.description,
        })
        .to_string();
        // A retry of a call that succeeded answers as it did, also once the model is gone.
        if let Some(token) = &req.client_token {
            let prior = self.db()?.query_opt(
                "SELECT result FROM client_tokens WHERE operation = ?1 AND token = ?2 AND params = ?3
                                                   AND created_ms > ?4",
                args![START, token, &params, now_ms() - CLIENT_TOKEN_TTL_MS],
            )?;
            if let Some(row) = prior {
                return Ok(StartModelPackagingJobResponse { job_name: row.get(0)? });
            }
        }
        let model = self.stored_model(&valid.project_name, &valid.model_version)?;
        let mut gg = valid.greengrass.clone();
        let component_name = gg.component_name.clone().expect("validated");
        let component_version = gg.component_version.get_or_insert_with(|| format!("{}.0.0", model.version)).clone();
        let configuration = ModelPackagingConfiguration { greengrass: Some(gg) };
        let mut c = self.db()?;
        let mut tx = c.write()?;
        let now = now_ms();
        if let Some(token) = &req.client_token {
            if let Some(job) = crate::store::claim_token(&mut tx, START, token, &params, now)? {
                return Ok(StartModelPackagingJobResponse { job_name: job });
            }
        }
        let job_name = req.job_name.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        names_free(&mut tx, &valid.project_name, &job_name, (&component_name, &component_version))?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO jobs(project, name, model_version, configuration, description, status, status_message,
                                  created_ms, updated_ms, component_name, component_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'CREATED', 'queued', ?6, ?6, ?7, ?8) RETURNING id",
                args![
                    &valid.project_name,
                    &job_name,
                    model.version.to_string(),
                    serde_json::to_string(&configuration).expect("serializable"),
                    &req.description,
                    now,
                    &component_name,
                    &component_version
                ],
            )?
            .get(0)?;
        // A failed job's reservation is taken over.
        tx.execute(
            "INSERT INTO component_reservations(component_name, component_version, project, job_name, job_id,
                                                created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(component_name, component_version) DO UPDATE
                 SET project = excluded.project, job_name = excluded.job_name, job_id = excluded.job_id,
                     created_ms = excluded.created_ms",
            args![&component_name, &component_version, &valid.project_name, &job_name, id, now],
        )?;
        if let Some(token) = &req.client_token {
            crate::store::record_token(&mut tx, START, token, &params, &job_name, now)?;
        }
        tx.commit()?;
        self.launch(&valid.project_name, &job_name);
        Ok(StartModelPackagingJobResponse { job_name })
    }

    /// The stored job `name` of `project`.
    pub fn job(&self, project: &str, name: &str) -> Result<JobRow> {
        let mut v = Violations::default();
        v.required("ProjectName", Some(project), &PROJECT_NAME);
        v.required("JobName", Some(name), &JOB_NAME);
        v.finish()?;
        let mut c = self.db()?;
        self.project_created(&mut c, project)?;
        let row = c.query_opt(
            &format!("SELECT {JOB_COLS} FROM jobs WHERE project = ?1 AND name = ?2"),
            args![project, name],
        )?;
        row.map(|r| job_row_at(&r, 0)).transpose()?.ok_or_else(|| {
            ApiError::not_found(
                ResourceType::ModelPackageJob,
                name,
                format!("model packaging job '{name}' does not exist in project '{project}'"),
            )
        })
    }

    /// `DescribeModelPackagingJob`.
    pub fn describe_model_packaging_job(&self, project: &str, name: &str) -> Result<DescribeModelPackagingJobResponse> {
        let mut j = self.job(project, name)?;
        // The liveness rule applies here too, so a caller polling a job whose worker died
        // (`--wait`) sees it FAILED after `stale_after`, not RUNNING forever.
        if j.status == "RUNNING" && !self.fail_interrupted_jobs()?.is_empty() {
            j = self.job(project, name)?;
        }
        Ok(DescribeModelPackagingJobResponse {
            model_packaging_description: ModelPackagingDescription {
                model_packaging_configuration: j.configuration.clone(),
                model_packaging_output_details: j.output.clone(),
                job: j.metadata(),
            },
        })
    }

    /// `ListModelPackagingJobs`: newest first, `max_results` (1..100, default 100) per page.
    pub fn list_model_packaging_jobs(
        &self,
        project: &str,
        next_token: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<ListModelPackagingJobsResponse> {
        let mut v = Violations::default();
        v.required("ProjectName", Some(project), &PROJECT_NAME);
        v.finish()?;
        let limit = page_size(max_results, next_token)?;
        let list = format!("jobs/{project}");
        let after = page_after_id(&list, next_token)?;
        let mut c = self.db()?;
        self.project_created(&mut c, project)?;
        let rows: Vec<(i64, JobRow)> = c
            .query(
                &format!("SELECT id, {JOB_COLS} FROM jobs WHERE project = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"),
                args![project, after, limit + 1],
            )?
            .iter()
            // The job's columns follow the id.
            .map(|r| Ok((r.get(0)?, job_row_at(r, 1)?)))
            .collect::<Result<_>>()?;
        let next_token =
            (rows.len() as i64 > limit).then(|| page_token(&list, &rows[limit as usize - 1].0.to_string()));
        let model_packaging_jobs = rows.iter().take(limit as usize).map(|(_, j)| j.metadata()).collect();
        Ok(ListModelPackagingJobsResponse { model_packaging_jobs, next_token })
    }
}

/// A job from row `r`, its columns starting at index `o`. A damaged row is an error that
/// names the job (a list fails saying which row to repair or delete).
pub(crate) fn job_row_at(r: &Row, o: usize) -> Result<JobRow> {
    read_job_row(r, o).map_err(|e| {
        let named = |i| r.get::<String>(i).unwrap_or_else(|_| "?".into());
        ApiError::internal(format!(
            "the stored job '{}' of project '{}' is damaged: {}",
            named(o + 1),
            named(o),
            e.message
        ))
    })
}

fn read_job_row(r: &Row, o: usize) -> Result<JobRow> {
    let conf: String = r.get(o + 3)?;
    let output: Option<String> = r.get(o + 11)?;
    let json_err = |i, e: serde_json::Error| ApiError::internal(format!("column {i}: {e}"));
    Ok(JobRow {
        project: r.get(o)?,
        name: r.get(o + 1)?,
        model_version: r.get(o + 2)?,
        configuration: serde_json::from_str(&conf).map_err(|e| json_err(o + 3, e))?,
        description: r.get(o + 4)?,
        status: r.get(o + 5)?,
        status_message: r.get(o + 6)?,
        created_ms: r.get(o + 7)?,
        updated_ms: r.get(o + 8)?,
        component_name: r.get(o + 9)?,
        component_version: r.get(o + 10)?,
        output: output.map(|s| serde_json::from_str(&s)).transpose().map_err(|e| json_err(o + 11, e))?,
    })
}

/// A `ConflictException` when `project` already has a job named `job_name`, or when the
/// component version is reserved by a job not known to have failed (a deleted project's jobs
/// are gone, their reservations stay).
fn names_free(
    tx: &mut crate::store::Db,
    project: &str,
    job_name: &str,
    (component_name, component_version): (&str, &str),
) -> Result<()> {
    let exists = tx.query_opt("SELECT 1 FROM jobs WHERE project = ?1 AND name = ?2", args![project, job_name])?;
    if exists.is_some() {
        return Err(ApiError::conflict(
            ResourceType::ModelPackageJob,
            job_name,
            format!("a model packaging job named '{job_name}' already exists in project '{project}'"),
        ));
    }
    let taken = tx.query_opt(
        "SELECT r.project, r.job_name FROM component_reservations r
         WHERE r.component_name = ?1 AND r.component_version = ?2
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id AND j.status = 'FAILED')",
        args![component_name, component_version],
    )?;
    if let Some(row) = taken {
        let (project, other): (String, String) = (row.get(0)?, row.get(1)?);
        let id = format!("{component_name}:{component_version}");
        return Err(ApiError::conflict(
            ResourceType::Component,
            &id,
            format!(
                "component {component_name} version {component_version} already exists (job {other} of project \
                 '{project}'); a component name and version cannot be reused: give another ComponentVersion"
            ),
        ));
    }
    Ok(())
}
