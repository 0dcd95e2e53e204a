//! Where the API commands go: the service on the home (local), or a server of the API
//! (`--endpoint-url`, see [`super::remote`]). Both answer the same JSON, so rendering,
//! `--query`, pagination and `--wait` do not care which.

use package::projects::ImportModel;
use package::shapes::StartModelPackagingJobRequest;
use package::{Runner, Service};
use serde_json::{json, Value};
use server::sigv4::uri_encode;

use super::args::Global;
use super::remote::Remote;
use super::{api, open, Failure};

/// The service the commands talk to.
pub(super) enum Backend {
    /// The home's service.
    Local(Service),
    /// A server.
    Remote(Remote),
}

/// A path segment.
fn seg(s: &str) -> String {
    uri_encode(s.as_bytes(), false)
}

/// `?nextToken=…&maxResults=…` (empty when neither).
fn page_query(token: Option<&str>, max: Option<i64>) -> String {
    let mut q = Vec::new();
    if let Some(t) = token {
        q.push(format!("nextToken={}", seg(t)));
    }
    if let Some(m) = max {
        q.push(format!("maxResults={m}"));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

impl Backend {
    /// The server of `--endpoint-url`, else the home's service with `runner`.
    pub(super) fn open(g: &Global, runner: Runner) -> Result<Backend, Failure> {
        match &g.endpoint_url {
            Some(url) => Ok(Backend::Remote(Remote::new(url, g)?)),
            None => Ok(Backend::Local(open(g, runner)?)),
        }
    }

    /// The home's service, for a command a server does not offer.
    pub(super) fn local(g: &Global, runner: Runner, command: &str) -> Result<Service, Failure> {
        if g.endpoint_url.is_some() {
            return Err(format!("{command} works on the home's service; it does not take --endpoint-url").into());
        }
        open(g, runner)
    }

    /// `CreateProject`, with a client token (one is generated when absent, as the AWS SDKs do:
    /// a retry of this call is then safe).
    pub(super) fn create_project(&self, name: &str, token: Option<String>) -> Result<Value, Failure> {
        let token = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        match self {
            Backend::Local(s) => Ok(json!({
                "ProjectMetadata": api("CreateProject", s.create_project_with_token(name, Some(&token)))?
            })),
            Backend::Remote(r) => {
                let body = json!({ "ProjectName": name }).to_string().into_bytes();
                r.call("CreateProject", "POST", "/2020-11-20/projects", &[JSON, ("x-amzn-client-token", &token)], body)
            }
        }
    }

    pub(super) fn describe_project(&self, name: &str) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => Ok(json!({ "ProjectDescription": api("DescribeProject", s.describe_project(name))? })),
            Backend::Remote(r) => {
                r.call("DescribeProject", "GET", &format!("/2020-11-20/projects/{}", seg(name)), &[], vec![])
            }
        }
    }

    pub(super) fn list_projects(&self, token: Option<&str>, max: Option<i64>) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => api("ListProjects", s.list_projects(token, max)),
            Backend::Remote(r) => {
                r.call("ListProjects", "GET", &format!("/2020-11-20/projects{}", page_query(token, max)), &[], vec![])
            }
        }
    }

    pub(super) fn delete_project(&self, name: &str) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => Ok(json!({ "ProjectArn": api("DeleteProject", s.delete_project(name))? })),
            Backend::Remote(r) => {
                let token = uuid::Uuid::new_v4().to_string();
                let path = format!("/2020-11-20/projects/{}", seg(name));
                r.call("DeleteProject", "DELETE", &path, &[("x-amzn-client-token", &token)], vec![])
            }
        }
    }

    pub(super) fn import_model(&self, req: ImportModel) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => Ok(json!({ "ModelDescription": api("ImportModel", s.import_model(&req))? })),
            Backend::Remote(r) => {
                let contract = serde_json::to_string(&req.contract).expect("serializable");
                let path = format!("/edgepack/2020-11-20/projects/{}/models", seg(&req.project_name));
                let mut headers = vec![
                    ("content-type", "application/octet-stream"),
                    ("x-edgepack-contract", contract.as_str()),
                    ("x-edgepack-source", req.source.as_str()),
                ];
                if let Some(d) = &req.description {
                    headers.push(("x-edgepack-description", d.as_str()));
                }
                r.call("ImportModel", "POST", &path, &headers, req.onnx)
            }
        }
    }

    pub(super) fn describe_model(&self, project: &str, version: &str) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => {
                Ok(json!({ "ModelDescription": api("DescribeModel", s.describe_model(project, version))? }))
            }
            Backend::Remote(r) => {
                let path = format!("/2020-11-20/projects/{}/models/{}", seg(project), seg(version));
                r.call("DescribeModel", "GET", &path, &[], vec![])
            }
        }
    }

    pub(super) fn list_models(&self, project: &str, token: Option<&str>, max: Option<i64>) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => api("ListModels", s.list_models(project, token, max)),
            Backend::Remote(r) => {
                let path = format!("/2020-11-20/projects/{}/models{}", seg(project), page_query(token, max));
                r.call("ListModels", "GET", &path, &[], vec![])
            }
        }
    }

    pub(super) fn delete_model(&self, project: &str, version: &str) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => Ok(json!({ "ModelArn": api("DeleteModel", s.delete_model(project, version))? })),
            Backend::Remote(r) => {
                let token = uuid::Uuid::new_v4().to_string();
                let path = format!("/2020-11-20/projects/{}/models/{}", seg(project), seg(version));
                r.call("DeleteModel", "DELETE", &path, &[("x-amzn-client-token", &token)], vec![])
            }
        }
    }

    pub(super) fn start_job(&self, req: &StartModelPackagingJobRequest) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => api("StartModelPackagingJob", s.start_model_packaging_job(req)),
            Backend::Remote(r) => {
                let project = req.project_name.clone().unwrap_or_default();
                let mut body = serde_json::to_value(req).expect("serializable");
                let obj = body.as_object_mut().expect("an object");
                obj.remove("ProjectName");
                obj.remove("ClientToken");
                let mut headers = vec![JSON];
                if let Some(t) = &req.client_token {
                    headers.push(("x-amzn-client-token", t.as_str()));
                }
                let path = format!("/2020-11-20/projects/{}/modelpackagingjobs", seg(&project));
                r.call("StartModelPackagingJob", "POST", &path, &headers, body.to_string().into_bytes())
            }
        }
    }

    pub(super) fn describe_job(&self, project: &str, job: &str) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => api("DescribeModelPackagingJob", s.describe_model_packaging_job(project, job)),
            Backend::Remote(r) => {
                let path = format!("/2020-11-20/projects/{}/modelpackagingjobs/{}", seg(project), seg(job));
                r.call("DescribeModelPackagingJob", "GET", &path, &[], vec![])
            }
        }
    }

    pub(super) fn list_jobs(&self, project: &str, token: Option<&str>, max: Option<i64>) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => api("ListModelPackagingJobs", s.list_model_packaging_jobs(project, token, max)),
            Backend::Remote(r) => {
                let path =
                    format!("/2020-11-20/projects/{}/modelpackagingjobs{}", seg(project), page_query(token, max));
                r.call("ListModelPackagingJobs", "GET", &path, &[], vec![])
            }
        }
    }
}
