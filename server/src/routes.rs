//! The operations' HTTP bindings (the API model's `http` traits: method, URI, status), each
//! checked against the caller's projects and run on the packaging service off the async
//! threads; plus the `ImportModel` extension, the one operation the managed service did not
//! have (it trained models; we import ONNX files):
//!
//! `POST /edgepack/2020-11-20/projects/{projectName}/models` with the ONNX file as the body
//! (`application/octet-stream`), the model contract as JSON in `X-Edgepack-Contract`, and
//! optionally `X-Edgepack-Description` and `X-Edgepack-Source` (a file name); answers
//! `{"ModelDescription": …}` as `DescribeModel` does. Signed like every other request.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use package::contract::ModelContract;
use package::projects::ImportModel;
use package::shapes::StartModelPackagingJobRequest;
use package::{ApiError, Service};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::errors::ErrorReply;
use crate::AppState;

/// Where the extension operations live (outside the API model's `/2020-11-20/`).
pub const IMPORT_PREFIX: &str = "/edgepack/2020-11-20/";

type Reply = Result<Response, ErrorReply>;

/// The routes (authentication is added by the caller).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/2020-11-20/projects", post(create_project).get(list_projects))
        .route("/2020-11-20/projects/{project}", get(describe_project).delete(delete_project))
        .route("/2020-11-20/projects/{project}/models", get(list_models).post(create_model))
        .route("/2020-11-20/projects/{project}/models/{version}", get(describe_model).delete(delete_model))
        .route("/2020-11-20/projects/{project}/modelpackagingjobs", post(start_job).get(list_jobs))
        .route("/2020-11-20/projects/{project}/modelpackagingjobs/{job}", get(describe_job))
        .route("/edgepack/2020-11-20/projects/{project}/models", post(import_model))
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
}

async fn unknown_operation(method: Method, uri: Uri) -> ErrorReply {
    ErrorReply::new(404, "UnknownOperationException", format!("no operation is bound to {method} {}", uri.path()))
}

/// A JSON answer with the operation's status.
fn reply(status: StatusCode, v: Value) -> Reply {
    Ok((status, [("content-type", "application/json")], v.to_string()).into_response())
}

/// What an operation is asked: the caller, the path's parameters (project first) and the
/// query string.
struct Asked {
    caller: Caller,
    params: Vec<String>,
    query: Option<String>,
}

impl FromRequestParts<Arc<AppState>> for Asked {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ErrorReply> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ErrorReply::internal("an unauthenticated request"))?;
        let params = match Path::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Path(p)) => p.into_iter().map(|(_, v)| v).collect(),
            Err(PathRejection::MissingPathParams(_)) => Vec::new(),
            Err(e) => return Err(ErrorReply::new(400, "ValidationException", format!("request path: {e}"))),
        };
        Ok(Asked { caller, params, query: parts.uri.query().map(str::to_owned) })
    }
}

impl Asked {
    /// The project of the path, once the caller may run `operation` on it.
    fn project(&self, operation: &str) -> Result<String, ErrorReply> {
        let project = self.params.first().cloned().unwrap_or_default();
        self.caller.check(operation, &project)?;
        Ok(project)
    }

    /// The project and the second parameter (model version, job name), checked as [`Self::project`].
    fn project_and(&self, operation: &str) -> Result<(String, String), ErrorReply> {
        Ok((self.project(operation)?, self.params.get(1).cloned().unwrap_or_default()))
    }

    /// `nextToken` and `maxResults` of a list operation.
    fn paging(&self) -> Result<(Option<String>, Option<i64>), ErrorReply> {
        paging(self.query.as_deref())
    }
}

/// Runs a service call that writes the job store, after the writes that arrived before it
/// (see [`AppState::writes`]): one write at a time beside the running reads, not behind them.
async fn write<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ErrorReply> {
    in_turn(state, &state.writes, f).await
}

/// Runs a service call that reads, in its turn among the reads (see [`AppState::running`]).
async fn call<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ErrorReply> {
    in_turn(state, &state.running, f).await
}

/// Runs a service call on the blocking pool once `queue` (first come, first served) lets it.
async fn in_turn<T: Send + 'static>(
    state: &AppState,
    queue: &tokio::sync::Semaphore,
    f: impl FnOnce(&Service) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ErrorReply> {
    let _turn = queue.acquire().await.map_err(|e| ErrorReply::internal(e.to_string()))?;
    let svc = state.service.clone();
    match tokio::task::spawn_blocking(move || f(&svc)).await {
        Ok(r) => r.map_err(ErrorReply::from),
        Err(e) => Err(ErrorReply::internal(format!("the operation failed: {e}"))),
    }
}

fn to_value<T: serde::Serialize>(t: T) -> Value {
    serde_json::to_value(t).expect("serializable")
}

/// A JSON body as an object (an empty body is `{}`).
fn json_body(body: &Bytes) -> Result<Value, ErrorReply> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ErrorReply::serialization("the request body must be a JSON object")),
        Err(e) => Err(ErrorReply::serialization(format!("the request body is not JSON: {e}"))),
    }
}

fn header(h: &HeaderMap, name: &str) -> Result<Option<String>, ErrorReply> {
    h.get(name)
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| ErrorReply::serialization(format!("header {name}: not ASCII")))
        })
        .transpose()
}

/// `nextToken` and `maxResults` of a list operation.
fn paging(q: Option<&str>) -> Result<(Option<String>, Option<i64>), ErrorReply> {
    let (mut token, mut max) = (None, None);
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match &*k {
            "nextToken" => token = Some(v.into_owned()),
            "maxResults" => {
                max = Some(v.parse::<i64>().map_err(|_| {
                    ErrorReply::new(
                        400,
                        "ValidationException",
                        format!("1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: Member must be a number"),
                    )
                })?)
            }
            _ => {}
        }
    }
    Ok((token, max))
}

type St = State<Arc<AppState>>;

async fn create_project(State(st): St, asked: Asked, headers: HeaderMap, body: Bytes) -> Reply {
    let v = json_body(&body)?;
    let name = match v.get("ProjectName") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ErrorReply::serialization("ProjectName must be a string")),
    };
    asked.caller.check("CreateProject", &name)?;
    let token = header(&headers, "x-amzn-client-token")?;
    let m = write(&st, move |s| s.create_project_with_token(&name, token.as_deref())).await?;
    reply(StatusCode::OK, json!({ "ProjectMetadata": to_value(m) }))
}

async fn list_projects(State(st): St, asked: Asked) -> Reply {
    let (token, max) = asked.paging()?;
    let mut page = call(&st, move |s| s.list_projects(token.as_deref(), max)).await?;
    // A key scoped to some projects sees those only (a page may come out short).
    page.projects.retain(|p| asked.caller.scope.allows(&p.project_name));
    reply(StatusCode::OK, to_value(page))
}

async fn describe_project(State(st): St, asked: Asked) -> Reply {
    let project = asked.project("DescribeProject")?;
    let d = call(&st, move |s| s.describe_project(&project)).await?;
    reply(StatusCode::OK, json!({ "ProjectDescription": to_value(d) }))
}

async fn delete_project(State(st): St, asked: Asked) -> Reply {
    let project = asked.project("DeleteProject")?;
    let arn = write(&st, move |s| s.delete_project(&project)).await?;
    reply(StatusCode::OK, json!({ "ProjectArn": arn }))
}

async fn list_models(State(st): St, asked: Asked) -> Reply {
    let project = asked.project("ListModels")?;
    let (token, max) = asked.paging()?;
    let page = call(&st, move |s| s.list_models(&project, token.as_deref(), max)).await?;
    reply(StatusCode::OK, to_value(page))
}

async fn create_model(asked: Asked) -> Reply {
    let project = asked.project("CreateModel")?;
    Err(ErrorReply::new(
        400,
        "ValidationException",
        format!(
            "CreateModel trains a model in the managed service; edgepack packages trained ONNX models: import one with \
             ImportModel (POST {IMPORT_PREFIX}projects/{project}/models, the ONNX file as the body)"
        ),
    ))
}

async fn describe_model(State(st): St, asked: Asked) -> Reply {
    let (project, version) = asked.project_and("DescribeModel")?;
    let d = call(&st, move |s| s.describe_model(&project, &version)).await?;
    reply(StatusCode::OK, json!({ "ModelDescription": to_value(d) }))
}

async fn delete_model(State(st): St, asked: Asked) -> Reply {
    let (project, version) = asked.project_and("DeleteModel")?;
    let arn = write(&st, move |s| s.delete_model(&project, &version)).await?;
    reply(StatusCode::ACCEPTED, json!({ "ModelArn": arn }))
}

async fn start_job(State(st): St, asked: Asked, headers: HeaderMap, body: Bytes) -> Reply {
    let project = asked.project("StartModelPackagingJob")?;
    let mut v = json_body(&body)?;
    // The URI and header members are not the body's to give.
    let obj = v.as_object_mut().expect("an object");
    obj.remove("ProjectName");
    obj.remove("ClientToken");
    let mut req: StartModelPackagingJobRequest =
        serde_json::from_value(v).map_err(|e| ErrorReply::serialization(format!("StartModelPackagingJob: {e}")))?;
    req.project_name = Some(project);
    req.client_token = header(&headers, "x-amzn-client-token")?;
    let r = write(&st, move |s| s.start_model_packaging_job(&req)).await?;
    reply(StatusCode::OK, to_value(r))
}

async fn list_jobs(State(st): St, asked: Asked) -> Reply {
    let project = asked.project("ListModelPackagingJobs")?;
    let (token, max) = asked.paging()?;
    let page = call(&st, move |s| s.list_model_packaging_jobs(&project, token.as_deref(), max)).await?;
    reply(StatusCode::OK, to_value(page))
}

async fn describe_job(State(st): St, asked: Asked) -> Reply {
    let (project, job) = asked.project_and("DescribeModelPackagingJob")?;
    let d = call(&st, move |s| s.describe_model_packaging_job(&project, &job)).await?;
    reply(StatusCode::OK, to_value(d))
}

async fn import_model(State(st): St, asked: Asked, headers: HeaderMap, body: Bytes) -> Reply {
    let project = asked.project("ImportModel")?;
    let contract = header(&headers, "x-edgepack-contract")?.ok_or_else(|| {
        ErrorReply::new(
            400,
            "ValidationException",
            "ImportModel needs the model contract (JSON) in X-Edgepack-Contract",
        )
    })?;
    let contract: ModelContract = serde_json::from_str(&contract)
        .map_err(|e| ErrorReply::new(400, "ValidationException", format!("X-Edgepack-Contract: {e}")))?;
    let req = ImportModel {
        project_name: project,
        onnx: body.to_vec(),
        source: header(&headers, "x-edgepack-source")?.unwrap_or_else(|| "an HTTP upload".into()),
        description: header(&headers, "x-edgepack-description")?,
        contract,
    };
    let d = call(&st, move |s| s.import_model(&req)).await?;
    reply(StatusCode::OK, json!({ "ModelDescription": to_value(d) }))
}
