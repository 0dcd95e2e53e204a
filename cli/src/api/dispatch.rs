//! A parsed API command to the service call it names, and the AWS CLI's pagination.

use std::process::ExitCode;

use package::output::{S3Settings, Storage, STORAGE_FILE};
use package::sample::{sample_contract, sample_model, SampleKind};
use package::signing::PublicKey;
use package::store::{PostgresSettings, StoreConfig};
use package::Runner;
use serde_json::{json, Value};

use super::args::{ApiCommand, Global, Kind, Paging};
use super::backend::Backend;
use super::input::{skeleton, Input};
use super::requests::{import_request, read_arg};
use super::wait::start;
use super::{api, home, print_as, worker_runner, Failure};

/// Runs one API command against the service.
pub(super) fn dispatch(cmd: ApiCommand, g: &Global) -> Result<ExitCode, Failure> {
    if let Some((op, kind)) = cmd.skeleton() {
        print!("{}", skeleton(op, kind)?);
        return Ok(ExitCode::SUCCESS);
    }
    let op = cmd.operation();
    let v = match cmd {
        ApiCommand::CreateProject { project_name, client_token, input } => {
            let i = input.load()?;
            let name = i.required(project_name, "ProjectName", "--project-name")?;
            let token = i.opt(client_token, "ClientToken")?;
            Backend::open(g, Runner::Manual)?.create_project(&name, token)?
        }
        ApiCommand::DescribeProject { project_name, input } => {
            let name = input.load()?.required(project_name, "ProjectName", "--project-name")?;
            Backend::open(g, Runner::Manual)?.describe_project(&name)?
        }
        ApiCommand::ListProjects(p) => {
            let doc = p.input.load()?;
            let b = Backend::open(g, Runner::Manual)?;
            paginate("Projects", &p, &doc, |t, n| b.list_projects(t, n))?
        }
        ApiCommand::DeleteProject { project_name, input } => {
            let name = input.load()?.required(project_name, "ProjectName", "--project-name")?;
            Backend::open(g, Runner::Manual)?.delete_project(&name)?
        }
        ApiCommand::ImportModel(a) => {
            let b = Backend::open(g, Runner::Manual)?;
            b.import_model(import_request(&a)?)?
        }
        ApiCommand::DescribeModel(m) => {
            let (project, version) = m.resolve()?;
            Backend::open(g, Runner::Manual)?.describe_model(&project, &version)?
        }
        ApiCommand::ListModels { project_name, paging } => {
            let doc = paging.input.load()?;
            let project = doc.required(project_name, "ProjectName", "--project-name")?;
            let b = Backend::open(g, Runner::Manual)?;
            paginate("Models", &paging, &doc, |t, n| b.list_models(&project, t, n))?
        }
        ApiCommand::DeleteModel(m) => {
            let (project, version) = m.resolve()?;
            Backend::open(g, Runner::Manual)?.delete_model(&project, &version)?
        }
        ApiCommand::StartModelPackagingJob(a) => return start(a, g),
        ApiCommand::Serve(a) => return super::serve::serve(a, g),
        ApiCommand::CreateAccessKey { projects, all_projects } => super::serve::create_key(projects, all_projects, g)?,
        ApiCommand::ListAccessKeys => super::serve::list_keys(g)?,
        ApiCommand::DeleteAccessKey { access_key_id } => super::serve::delete_key(&access_key_id, g)?,
        ApiCommand::DescribeModelPackagingJob { project_name, job_name, input } => {
            let i = input.load()?;
            let project = i.required(project_name, "ProjectName", "--project-name")?;
            let job = i.required(job_name, "JobName", "--job-name")?;
            Backend::open(g, worker_runner())?.describe_job(&project, &job)?
        }
        ApiCommand::ListModelPackagingJobs { project_name, paging } => {
            let doc = paging.input.load()?;
            let project = doc.required(project_name, "ProjectName", "--project-name")?;
            let b = Backend::open(g, worker_runner())?;
            paginate("ModelPackagingJobs", &paging, &doc, |t, n| b.list_jobs(&project, t, n))?
        }
        ApiCommand::VerifyComponent { bucket, prefix, public_key } => {
            verify_component(&bucket, &prefix, public_key, g)?
        }
        ApiCommand::ExportSigningKey => {
            let svc = Backend::local(g, Runner::Manual, "export-signing-key")?;
            api("ExportSigningKey", svc.signer().map(|s| s.public_key().export()))?
        }
        ApiCommand::ConfigureStorage(a) => return configure_storage(&a, g),
        ApiCommand::ConfigureJobStore(a) => return configure_job_store(a, g),
        ApiCommand::SampleModel { kind, size, out } => write_sample(kind, &size, &out)?,
        ApiCommand::RunPackagingJob { project, job } => return run_packaging_job(&project, &job, g),
    };
    print_as(v, g, op)?;
    Ok(ExitCode::SUCCESS)
}

/// Calls a list operation page by page as the AWS CLI does: all pages unless `--no-paginate`,
/// at most `--max-items` items (then a `NextToken` to continue from); `doc` is the
/// `--cli-input-*` document (its `NextToken` and `MaxResults`).
fn paginate(
    key: &str,
    p: &Paging,
    doc: &Input,
    mut call: impl FnMut(Option<&str>, Option<i64>) -> Result<Value, Failure>,
) -> Result<Value, Failure> {
    let page_size = doc.int(p.page_size, "MaxResults")?;
    let mut items = Vec::new();
    let mut token = doc.opt(p.starting_token.clone(), "NextToken")?;
    loop {
        let room = p.max_items.map(|m| m.saturating_sub(items.len()) as i64);
        let size = match (page_size, room) {
            (Some(s), Some(r)) => Some(s.min(r)),
            (s, r) => s.or(r.map(|r| r.min(100))),
        };
        let page = call(token.as_deref(), size)?;
        items.extend(page[key].as_array().cloned().unwrap_or_default());
        token = page["NextToken"].as_str().map(str::to_owned);
        let full = p.max_items.is_some_and(|m| items.len() >= m);
        if token.is_none() || p.no_paginate || full {
            break;
        }
    }
    let mut v = json!({ key: items });
    if let Some(t) = token {
        v["NextToken"] = t.into();
    }
    Ok(v)
}

fn print_storage(root: &std::path::Path, g: &Global) -> Result<ExitCode, Failure> {
    let storage = api("ConfigureStorage", Storage::load(root))?;
    print_as(json!({ "Storage": storage, "SettingFile": root.join(STORAGE_FILE) }), g, "ConfigureStorage")?;
    Ok(ExitCode::SUCCESS)
}

impl ApiCommand {
    /// The operation's name (the title of `--output table`).
    fn operation(&self) -> &'static str {
        match self {
            ApiCommand::CreateProject { .. } => "CreateProject",
            ApiCommand::DescribeProject { .. } => "DescribeProject",
            ApiCommand::ListProjects(_) => "ListProjects",
            ApiCommand::DeleteProject { .. } => "DeleteProject",
            ApiCommand::ImportModel(_) => "ImportModel",
            ApiCommand::DescribeModel(_) => "DescribeModel",
            ApiCommand::ListModels { .. } => "ListModels",
            ApiCommand::DeleteModel(_) => "DeleteModel",
            ApiCommand::StartModelPackagingJob(_) => "StartModelPackagingJob",
            ApiCommand::DescribeModelPackagingJob { .. } => "DescribeModelPackagingJob",
            ApiCommand::ListModelPackagingJobs { .. } => "ListModelPackagingJobs",
            ApiCommand::VerifyComponent { .. } => "VerifyComponent",
            ApiCommand::ExportSigningKey => "ExportSigningKey",
            ApiCommand::ConfigureStorage(_) => "ConfigureStorage",
            ApiCommand::ConfigureJobStore(_) => "ConfigureJobStore",
            ApiCommand::SampleModel { .. } => "SampleModel",
            ApiCommand::Serve(_) => "Serve",
            ApiCommand::CreateAccessKey { .. } => "CreateAccessKey",
            ApiCommand::ListAccessKeys => "ListAccessKeys",
            ApiCommand::DeleteAccessKey { .. } => "DeleteAccessKey",
            ApiCommand::RunPackagingJob { .. } => "RunPackagingJob",
        }
    }

    /// `--generate-cli-skeleton KIND` of an API operation: the operation and the kind.
    fn skeleton(&self) -> Option<(&'static str, &str)> {
        let input = match self {
            ApiCommand::CreateProject { input, .. }
            | ApiCommand::DescribeProject { input, .. }
            | ApiCommand::DeleteProject { input, .. } => input,
            ApiCommand::ListProjects(p)
            | ApiCommand::ListModels { paging: p, .. }
            | ApiCommand::ListModelPackagingJobs { paging: p, .. } => &p.input,
            ApiCommand::ImportModel(a) => &a.input,
            ApiCommand::DescribeModel(m) | ApiCommand::DeleteModel(m) => &m.input,
            ApiCommand::StartModelPackagingJob(a) => &a.input,
            ApiCommand::DescribeModelPackagingJob { input, .. } => input,
            _ => return None,
        };
        input.generate_cli_skeleton.as_deref().map(|k| (self.operation(), k))
    }
}

/// `verify-component`: the published component's recipe and artifacts against the signing key
/// (`public_key`, or this service's own).
fn verify_component(bucket: &str, prefix: &str, public_key: Option<String>, g: &Global) -> Result<Value, Failure> {
    let svc = Backend::local(g, Runner::Manual, "verify-component")?;
    let fail = |e| Failure::Api("VerifyComponent", e);
    let trusted = match public_key {
        Some(k) => PublicKey::parse(&read_arg(&k)?).map_err(fail)?,
        None => svc.signer().map_err(fail)?.public_key(),
    };
    let v = package::component::verify(svc.output(), bucket, prefix, &trusted).map_err(fail)?;
    Ok(json!({ "Verified": true, "Artifacts": v.artifacts, "SignedBy": v.signed_by }))
}

/// `configure-storage`: saves the change asked for, then shows the setting in force.
fn configure_storage(a: &super::args::StorageArgs, g: &Global) -> Result<ExitCode, Failure> {
    let root = home(g);
    if !a.s3 && (g.endpoint_url.is_some() || g.region.is_some()) {
        return Err("configure-storage: --endpoint-url and --region need --s3".to_owned().into());
    }
    let change = match (a.local, a.s3) {
        (true, _) => Some(Storage::Local),
        (_, true) => Some(Storage::S3(S3Settings { endpoint_url: g.endpoint_url.clone(), region: g.region.clone() })),
        _ => None,
    };
    if let Some(storage) = change {
        api("ConfigureStorage", storage.save(&root))?;
    }
    print_storage(&root, g)
}

/// `configure-job-store`: checks and saves the change asked for (a PostgreSQL store is
/// connected to and migrated first), then shows the setting in force.
fn configure_job_store(a: super::args::JobStoreArgs, g: &Global) -> Result<ExitCode, Failure> {
    let root = home(g);
    let change = match (a.sqlite, a.postgres) {
        (true, _) => Some(StoreConfig::Sqlite),
        (_, Some(url)) => Some(StoreConfig::Postgres(PostgresSettings { url, max_connections: a.max_connections })),
        _ => None,
    };
    if let Some(config) = change {
        // Connecting (and migrating) first: a setting that cannot work is never saved.
        let fail = |e| Failure::Api("ConfigureJobStore", e);
        if let StoreConfig::Postgres(_) = &config {
            package::store::Store::open(&root, &config).map_err(fail)?;
        }
        config.save(&root).map_err(fail)?;
    }
    let config = StoreConfig::load(&root).map_err(|e| Failure::Api("ConfigureJobStore", e))?;
    let v = json!({ "JobStore": config.redacted(), "SettingFile": StoreConfig::path(&root) });
    print_as(v, g, "ConfigureJobStore")?;
    Ok(ExitCode::SUCCESS)
}

/// `sample-model`: writes the sample model and its contract beside it.
fn write_sample(kind: Kind, size: &str, out: &std::path::Path) -> Result<Value, Failure> {
    let (h, w) = size
        .split_once('x')
        .and_then(|(h, w)| Some((h.parse::<usize>().ok()?, w.parse::<usize>().ok()?)))
        .filter(|&(h, w)| h > 0 && w > 0 && h.is_multiple_of(4) && w.is_multiple_of(4))
        .ok_or_else(|| format!("--size {size}: expected HxW, multiples of 4"))?;
    let k = match kind {
        Kind::Segmentation => SampleKind::Segmentation,
        Kind::Classification => SampleKind::Classification,
    };
    std::fs::write(out, sample_model(k, h, w)).map_err(|e| format!("{}: {e}", out.display()))?;
    let contract_path = out.with_extension("contract.json");
    let contract = serde_json::to_string_pretty(&sample_contract(k, h, w)).expect("JSON");
    std::fs::write(&contract_path, contract + "\n").map_err(|e| format!("{}: {e}", contract_path.display()))?;
    Ok(json!({ "Model": out, "Contract": contract_path }))
}

/// `run-packaging-job` (the worker the service launches): supervises a child that runs the
/// job, or, as that child, runs it.
fn run_packaging_job(project: &str, job: &str, g: &Global) -> Result<ExitCode, Failure> {
    let svc = Backend::local(g, Runner::Manual, "run-packaging-job")?;
    // The worker the service launches supervises a child that runs the job, so that a
    // child killed or aborted (memory) fails the job with its cause at once.
    let child = std::env::var_os(package::worker::WORKER_CHILD_ENV).is_some();
    match std::env::current_exe() {
        Ok(exe) if !child => {
            let args = ["run-packaging-job".to_owned()];
            api("RunPackagingJob", svc.supervise_job(&exe, &args, project, job))?;
        }
        _ => {
            // Fail points from FAILPOINTS, for the fault-injection suite only.
            #[cfg(feature = "fault-injection")]
            let _scenario = fail::FailScenario::setup();
            api("RunPackagingJob", svc.run_job(project, job))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
