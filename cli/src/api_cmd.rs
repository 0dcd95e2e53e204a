//! The packaging API's commands, in the shape of the AWS CLI's `lookoutvision` commands:
//! `create-project`, `start-model-packaging-job`, `describe-model-packaging-job`, … with
//! `--cli-input-json|yaml`, `--generate-cli-skeleton`, `--output`, `--query` and `--wait`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use package::contract::{InputSpec, MaskClass, ModelContract, OutputSpec};
use package::output::{S3Settings, Storage, STORAGE_FILE};
use package::projects::ImportModel;
use package::sample::{sample_contract, sample_model, SampleKind};
use package::shapes::{ModelPackagingConfiguration, StartModelPackagingJobRequest};
use package::signing::PublicKey;
use package::{ApiError, Runner, Service, Settings};
use serde_json::{json, Value};

use crate::render::{iso_timestamps, query, render, Format};

/// Options every API command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// Output format.
    #[arg(long, value_enum, default_value = "json", global = true)]
    output: Format,
    /// JMESPath query applied to the response.
    #[arg(long, global = true)]
    query: Option<String>,
    /// The service's folder (job store, model files, local buckets); default
    /// `$EDGEPACK_HOME`, else `~/.edgepack`.
    #[arg(long, global = true)]
    home: Option<PathBuf>,
}

/// A packaging API command.
#[derive(Subcommand)]
pub enum ApiCommand {
    /// Create a project.
    CreateProject {
        /// The project's name.
        #[arg(long)]
        project_name: String,
    },
    /// Describe a project.
    DescribeProject {
        /// The project's name.
        #[arg(long)]
        project_name: String,
    },
    /// List projects.
    ListProjects(Paging),
    /// Delete a project (its model versions must be deleted first).
    DeleteProject {
        /// The project's name.
        #[arg(long)]
        project_name: String,
    },
    /// Register an ONNX file as the next model version of a project.
    ImportModel(ImportArgs),
    /// Describe a model version (`latest` for the newest).
    DescribeModel {
        /// The project.
        #[arg(long)]
        project_name: String,
        /// Version number or `latest`.
        #[arg(long)]
        model_version: String,
    },
    /// List a project's model versions.
    ListModels {
        /// The project.
        #[arg(long)]
        project_name: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Delete a model version.
    DeleteModel {
        /// The project.
        #[arg(long)]
        project_name: String,
        /// Version number.
        #[arg(long)]
        model_version: String,
    },
    /// Start a model packaging job: a Greengrass component for a target.
    StartModelPackagingJob(StartArgs),
    /// Describe a model packaging job.
    DescribeModelPackagingJob {
        /// The project.
        #[arg(long)]
        project_name: String,
        /// The job.
        #[arg(long)]
        job_name: String,
    },
    /// List a project's model packaging jobs (newest first).
    ListModelPackagingJobs {
        /// The project.
        #[arg(long)]
        project_name: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Check a published component: recipe format, every artifact's SHA-256.
    VerifyComponent {
        /// The bucket.
        #[arg(long)]
        bucket: String,
        /// The component's key prefix (`<Prefix>/<ComponentName>/<ComponentVersion>`).
        #[arg(long)]
        prefix: String,
        /// The key the signature must verify with: what `export-signing-key` printed (JSON or
        /// the bare base64; `file://` reads a file). Default: this service's own key.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the public half of the key this service signs components with (Ed25519), for
    /// `verify-component --public-key` on another machine.
    ExportSigningKey,
    /// Show or change where `S3OutputLocation` buckets are: folders under the home (the
    /// default) or an S3-compatible endpoint. S3 credentials come from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from a file.
    ConfigureStorage(StorageArgs),
    /// Write a sample ONNX model this tool builds itself, and its contract.
    SampleModel {
        /// Which head.
        #[arg(long, value_enum, default_value = "segmentation")]
        kind: Kind,
        /// Input size `HxW` (multiples of 4).
        #[arg(long, default_value = "224x224")]
        size: String,
        /// Where to write the model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a packaging job (the worker `start-model-packaging-job` launches).
    #[command(hide = true)]
    RunPackagingJob {
        /// The project.
        project: String,
        /// The job.
        job: String,
    },
}

/// The sample's head.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Per-pixel anomaly mask.
    Segmentation,
    /// Anomaly score.
    Classification,
}

/// The AWS CLI's pagination options.
#[derive(Args, Clone)]
pub struct Paging {
    /// Where to start (a `NextToken` from an earlier call).
    #[arg(long)]
    starting_token: Option<String>,
    /// Items per API call (1..100).
    #[arg(long)]
    page_size: Option<i64>,
    /// Most items to return (1 or more); a `NextToken` follows when there are more. Handled
    /// here, as the AWS CLI does: the service never sees it.
    #[arg(long, value_parser = at_least_one)]
    max_items: Option<usize>,
    /// One API call only.
    #[arg(long)]
    no_paginate: bool,
}

/// `import-model`.
#[derive(Args)]
pub struct ImportArgs {
    /// The project.
    #[arg(long)]
    project_name: String,
    /// The ONNX file.
    #[arg(long)]
    model: PathBuf,
    /// A `ModelContract` JSON (`file://PATH` or inline) instead of the options below.
    #[arg(long)]
    contract: Option<String>,
    /// Input shape `1x3xHxW`.
    #[arg(long)]
    input_shape: Option<String>,
    /// The ONNX input's name (default: the model's only free input).
    #[arg(long)]
    input_name: Option<String>,
    /// Pixel scale (0..255 pixels × scale).
    #[arg(long, default_value_t = 1.0 / 255.0)]
    scale: f64,
    /// Per-channel mean, `r,g,b`.
    #[arg(long, value_delimiter = ',', default_values_t = [0.485, 0.456, 0.406])]
    mean: Vec<f64>,
    /// Per-channel std, `r,g,b`.
    #[arg(long, value_delimiter = ',', default_values_t = [0.229, 0.224, 0.225])]
    std: Vec<f64>,
    /// Classification: the output holding the anomaly score.
    #[arg(long, conflicts_with = "mask_output")]
    anomaly_output: Option<String>,
    /// Classification: index of the anomaly score in that output.
    #[arg(long, default_value_t = 1)]
    score_index: usize,
    /// Segmentation: the mask output.
    #[arg(long)]
    mask_output: Option<String>,
    /// Segmentation: `name:#rrggbb` per mask channel.
    #[arg(long, value_delimiter = ',')]
    mask_classes: Vec<String>,
    /// Score / mask threshold.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Description.
    #[arg(long)]
    description: Option<String>,
}

/// `configure-storage`; without options it prints the current setting.
#[derive(Args)]
pub struct StorageArgs {
    /// Buckets are folders under the home.
    #[arg(long, conflicts_with_all = ["s3", "endpoint_url", "region"])]
    local: bool,
    /// Buckets are on S3 (AWS S3 unless --endpoint-url names another endpoint).
    #[arg(long)]
    s3: bool,
    /// An S3-compatible endpoint, `http(s)://host[:port]` (path-style requests).
    #[arg(long, requires = "s3")]
    endpoint_url: Option<String>,
    /// The S3 region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, else us-east-1).
    #[arg(long, requires = "s3")]
    region: Option<String>,
}

/// `start-model-packaging-job`.
#[derive(Args)]
pub struct StartArgs {
    /// The project.
    #[arg(long)]
    project_name: Option<String>,
    /// Version number or `latest`.
    #[arg(long)]
    model_version: Option<String>,
    /// The job's name (generated when absent).
    #[arg(long)]
    job_name: Option<String>,
    /// The configuration: JSON, or `file://PATH`.
    #[arg(long)]
    configuration: Option<String>,
    /// The job's description.
    #[arg(long)]
    description: Option<String>,
    /// Idempotency token (8 hours).
    #[arg(long)]
    client_token: Option<String>,
    /// The whole request as JSON (`file://PATH` or inline); options given override it.
    #[arg(long, conflicts_with = "cli_input_yaml")]
    cli_input_json: Option<String>,
    /// The whole request as YAML.
    #[arg(long)]
    cli_input_yaml: Option<String>,
    /// Print a request skeleton (`input`, `yaml-input`) or a sample response (`output`).
    #[arg(long, num_args = 0..=1, default_missing_value = "input")]
    generate_cli_skeleton: Option<String>,
    /// Wait for the job to finish, showing its progress; exit 1 if it failed.
    #[arg(long)]
    wait: bool,
}

/// Exit status of a service error (as the AWS CLI's).
const SERVICE_ERROR: u8 = 254;
/// Exit status of a bad command line or input file.
const USAGE_ERROR: u8 = 252;

/// A command's failure: a service error or a usage error.
pub enum Failure {
    /// From the service, with the operation's name.
    Api(&'static str, ApiError),
    /// Bad arguments or files.
    Usage(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Usage(s)
    }
}

fn api<T: serde::Serialize>(op: &'static str, r: Result<T, ApiError>) -> Result<Value, Failure> {
    r.map(|x| serde_json::to_value(x).expect("serializable")).map_err(|e| Failure::Api(op, e))
}

fn read_arg(s: &str) -> Result<String, String> {
    match s.strip_prefix("file://") {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")),
        None => Ok(s.to_owned()),
    }
}

fn home(g: &Global) -> PathBuf {
    g.home
        .clone()
        .or_else(|| std::env::var_os("EDGEPACK_HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".edgepack"))
}

/// Seconds without a heartbeat after which a RUNNING job's worker counts as gone (default 30;
/// the fault-injection suite shortens it).
const HEARTBEAT_TIMEOUT_ENV: &str = "EDGEPACK_HEARTBEAT_TIMEOUT";

fn open(g: &Global, runner: Runner) -> Result<Service, Failure> {
    let mut settings = Settings { runner, ..Settings::default() };
    if let Some(v) = std::env::var_os(HEARTBEAT_TIMEOUT_ENV) {
        let secs = v.to_str().and_then(|v| v.parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0);
        let secs = secs.ok_or_else(|| format!("{HEARTBEAT_TIMEOUT_ENV}={v:?}: expected a number of seconds"))?;
        settings.stale_after = Duration::from_secs_f64(secs);
    }
    Service::open(&home(g), settings).map_err(|e| Failure::Api("Open", e))
}

fn worker_runner() -> Runner {
    match std::env::current_exe() {
        Ok(exe) => Runner::Process(exe, vec!["run-packaging-job".into()]),
        Err(_) => Runner::Thread,
    }
}

fn print(v: Value, g: &Global) -> Result<(), Failure> {
    let mut v = v;
    iso_timestamps(&mut v);
    let v = query(v, g.query.as_deref())?;
    print!("{}", render(&v, g.output));
    Ok(())
}

fn print_storage(root: &std::path::Path, g: &Global) -> Result<ExitCode, Failure> {
    let storage = api("ConfigureStorage", Storage::load(root))?;
    print(json!({ "Storage": storage, "SettingFile": root.join(STORAGE_FILE) }), g)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a packaging API command.
pub fn run(cmd: ApiCommand, g: &Global) -> ExitCode {
    match dispatch(cmd, g) {
        Ok(code) => code,
        Err(Failure::Api(op, e)) => {
            eprintln!("\nAn error occurred ({}) when calling the {op} operation: {}", e.kind.type_name(), e.message);
            ExitCode::from(SERVICE_ERROR)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("edgepack: error: {m}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

fn dispatch(cmd: ApiCommand, g: &Global) -> Result<ExitCode, Failure> {
    let v = match cmd {
        ApiCommand::CreateProject { project_name } => {
            let svc = open(g, Runner::Manual)?;
            json!({ "ProjectMetadata": api("CreateProject", svc.create_project(&project_name))? })
        }
        ApiCommand::DescribeProject { project_name } => {
            let svc = open(g, Runner::Manual)?;
            json!({ "ProjectDescription": api("DescribeProject", svc.describe_project(&project_name))? })
        }
        ApiCommand::ListProjects(p) => {
            let svc = open(g, Runner::Manual)?;
            paginate("Projects", &p, |t, n| api("ListProjects", svc.list_projects(t, n)))?
        }
        ApiCommand::DeleteProject { project_name } => {
            let svc = open(g, Runner::Manual)?;
            json!({ "ProjectArn": api("DeleteProject", svc.delete_project(&project_name))? })
        }
        ApiCommand::ImportModel(a) => {
            let svc = open(g, Runner::Manual)?;
            let req = import_request(&a)?;
            json!({ "ModelDescription": api("ImportModel", svc.import_model(&req))? })
        }
        ApiCommand::DescribeModel { project_name, model_version } => {
            let svc = open(g, Runner::Manual)?;
            json!({ "ModelDescription": api("DescribeModel", svc.describe_model(&project_name, &model_version))? })
        }
        ApiCommand::ListModels { project_name, paging } => {
            let svc = open(g, Runner::Manual)?;
            paginate("Models", &paging, |t, n| api("ListModels", svc.list_models(&project_name, t, n)))?
        }
        ApiCommand::DeleteModel { project_name, model_version } => {
            let svc = open(g, Runner::Manual)?;
            json!({ "ModelArn": api("DeleteModel", svc.delete_model(&project_name, &model_version))? })
        }
        ApiCommand::StartModelPackagingJob(a) => return start(a, g),
        ApiCommand::DescribeModelPackagingJob { project_name, job_name } => {
            let svc = open(g, worker_runner())?;
            api("DescribeModelPackagingJob", svc.describe_model_packaging_job(&project_name, &job_name))?
        }
        ApiCommand::ListModelPackagingJobs { project_name, paging } => {
            let svc = open(g, worker_runner())?;
            paginate("ModelPackagingJobs", &paging, |t, n| {
                api("ListModelPackagingJobs", svc.list_model_packaging_jobs(&project_name, t, n))
            })?
        }
        ApiCommand::VerifyComponent { bucket, prefix, public_key } => {
            let svc = open(g, Runner::Manual)?;
            let fail = |e| Failure::Api("VerifyComponent", e);
            let trusted = match public_key {
                Some(k) => PublicKey::parse(&read_arg(&k)?).map_err(fail)?,
                None => svc.signer().map_err(fail)?.public_key(),
            };
            let v = package::component::verify(svc.output(), &bucket, &prefix, &trusted).map_err(fail)?;
            json!({ "Verified": true, "Artifacts": v.artifacts, "SignedBy": v.signed_by })
        }
        ApiCommand::ExportSigningKey => {
            let svc = open(g, Runner::Manual)?;
            api("ExportSigningKey", svc.signer().map(|s| s.public_key().export()))?
        }
        ApiCommand::ConfigureStorage(a) => {
            let root = home(g);
            let change = match (a.local, a.s3) {
                (true, _) => Some(Storage::Local),
                (_, true) => Some(Storage::S3(S3Settings { endpoint_url: a.endpoint_url, region: a.region })),
                _ => None,
            };
            if let Some(storage) = change {
                api("ConfigureStorage", storage.save(&root))?;
            }
            return print_storage(&root, g);
        }
        ApiCommand::SampleModel { kind, size, out } => {
            let (h, w) = size
                .split_once('x')
                .and_then(|(h, w)| Some((h.parse::<usize>().ok()?, w.parse::<usize>().ok()?)))
                .filter(|&(h, w)| h > 0 && w > 0 && h.is_multiple_of(4) && w.is_multiple_of(4))
                .ok_or_else(|| format!("--size {size}: expected HxW, multiples of 4"))?;
            let k = match kind {
                Kind::Segmentation => SampleKind::Segmentation,
                Kind::Classification => SampleKind::Classification,
            };
            std::fs::write(&out, sample_model(k, h, w)).map_err(|e| format!("{}: {e}", out.display()))?;
            let contract_path = out.with_extension("contract.json");
            let contract = serde_json::to_string_pretty(&sample_contract(k, h, w)).expect("JSON");
            std::fs::write(&contract_path, contract + "\n").map_err(|e| format!("{}: {e}", contract_path.display()))?;
            json!({ "Model": out, "Contract": contract_path })
        }
        ApiCommand::RunPackagingJob { project, job } => {
            let svc = open(g, Runner::Manual)?;
            // The worker the service launches supervises a child that runs the job, so that a
            // child killed or aborted (memory) fails the job with its cause at once.
            let child = std::env::var_os(package::worker::WORKER_CHILD_ENV).is_some();
            match std::env::current_exe() {
                Ok(exe) if !child => {
                    let args = ["run-packaging-job".to_owned()];
                    api("RunPackagingJob", svc.supervise_job(&exe, &args, &project, &job))?;
                }
                _ => {
                    // Fail points from FAILPOINTS, for the fault-injection suite only.
                    #[cfg(feature = "fault-injection")]
                    let _scenario = fail::FailScenario::setup();
                    api("RunPackagingJob", svc.run_job(&project, &job))?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    print(v, g)?;
    Ok(ExitCode::SUCCESS)
}

/// Calls a list operation page by page as the AWS CLI does: all pages unless `--no-paginate`,
/// at most `--max-items` items (then a `NextToken` to continue from).
/// A count of 1 or more (`--max-items`).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a count of 1 or more")),
    }
}

fn paginate(
    key: &str,
    p: &Paging,
    mut call: impl FnMut(Option<&str>, Option<i64>) -> Result<Value, Failure>,
) -> Result<Value, Failure> {
    let mut items = Vec::new();
    let mut token = p.starting_token.clone();
    loop {
        let room = p.max_items.map(|m| m.saturating_sub(items.len()) as i64);
        let size = match (p.page_size, room) {
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

fn import_request(a: &ImportArgs) -> Result<ImportModel, String> {
    let onnx = std::fs::read(&a.model).map_err(|e| format!("--model {}: {e}", a.model.display()))?;
    let contract = match &a.contract {
        Some(c) => serde_json::from_str::<ModelContract>(&read_arg(c)?).map_err(|e| format!("--contract: {e}"))?,
        None => {
            let shape = a.input_shape.as_deref().ok_or("--input-shape (or --contract) is required")?;
            let shape: Vec<usize> = shape
                .split('x')
                .map(|d| d.parse().map_err(|_| format!("--input-shape {shape}: expected 1x3xHxW")))
                .collect::<Result<_, _>>()?;
            let name = match &a.input_name {
                Some(n) => n.clone(),
                None => {
                    let g = model::import(&onnx).map_err(|e| format!("--model {}: {e}", a.model.display()))?;
                    let names: Vec<&str> = g.inputs.iter().map(|&i| g.values[i].name.as_str()).collect();
                    match names[..] {
                        [n] => n.to_owned(),
                        _ => return Err(format!("the model has inputs {names:?}: name one with --input-name")),
                    }
                }
            };
            let three = |v: &[f64], what: &str| -> Result<[f64; 3], String> {
                v.try_into().map_err(|_| format!("--{what} needs 3 values (r,g,b), got {}", v.len()))
            };
            let output = match (&a.anomaly_output, &a.mask_output) {
                (Some(o), None) => OutputSpec::Classification {
                    score_output: o.clone(),
                    score_index: a.score_index,
                    threshold: a.threshold,
                },
                (None, Some(o)) => OutputSpec::Segmentation {
                    mask_output: o.clone(),
                    classes: a
                        .mask_classes
                        .iter()
                        .map(|c| {
                            let (name, color) = c
                                .split_once(':')
                                .ok_or_else(|| format!("--mask-classes {c}: expected name:#rrggbb"))?;
                            Ok(MaskClass { name: name.into(), color: color.into() })
                        })
                        .collect::<Result<_, String>>()?,
                    threshold: a.threshold,
                },
                _ => return Err("give --anomaly-output (classification) or --mask-output (segmentation)".into()),
            };
            ModelContract {
                input: InputSpec {
                    name,
                    shape,
                    scale: a.scale,
                    mean: three(&a.mean, "mean")?,
                    std: three(&a.std, "std")?,
                },
                output,
            }
        }
    };
    Ok(ImportModel {
        project_name: a.project_name.clone(),
        onnx,
        source: a.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        description: a.description.clone(),
        contract,
    })
}

fn skeleton(kind: &str) -> Result<String, String> {
    let input = json!({
        "ProjectName": "", "ModelVersion": "", "JobName": "",
        "Configuration": { "Greengrass": {
            "CompilerOptions": "", "TargetDevice": "jetson_xavier",
            "TargetPlatform": { "Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA" },
            "S3OutputLocation": { "Bucket": "", "Prefix": "" },
            "ComponentName": "", "ComponentVersion": "", "ComponentDescription": "",
            "Tags": [{ "Key": "", "Value": "" }],
        }},
        "Description": "", "ClientToken": "",
    });
    match kind {
        "input" => Ok(render(&input, Format::Json)),
        "yaml-input" => Ok(render(&input, Format::Yaml)),
        "output" => Ok(render(&json!({ "JobName": "" }), Format::Json)),
        other => Err(format!("--generate-cli-skeleton {other}: expected input, yaml-input or output")),
    }
}

fn start_request(a: &StartArgs) -> Result<StartModelPackagingJobRequest, String> {
    let mut req: StartModelPackagingJobRequest = match (&a.cli_input_json, &a.cli_input_yaml) {
        (Some(j), _) => serde_json::from_str(&read_arg(j)?).map_err(|e| format!("--cli-input-json: {e}"))?,
        (_, Some(y)) => serde_norway::from_str(&read_arg(y)?).map_err(|e| format!("--cli-input-yaml: {e}"))?,
        _ => StartModelPackagingJobRequest::default(),
    };
    let set = |field: &mut Option<String>, v: &Option<String>| {
        if v.is_some() {
            field.clone_from(v);
        }
    };
    set(&mut req.project_name, &a.project_name);
    set(&mut req.model_version, &a.model_version);
    set(&mut req.job_name, &a.job_name);
    set(&mut req.description, &a.description);
    set(&mut req.client_token, &a.client_token);
    if let Some(c) = &a.configuration {
        let c: ModelPackagingConfiguration =
            serde_json::from_str(&read_arg(c)?).map_err(|e| format!("--configuration: {e}"))?;
        req.configuration = Some(c);
    }
    // As the AWS SDKs do: a token for every call, so that a retry of this call is safe.
    if req.client_token.is_none() {
        req.client_token = Some(uuid::Uuid::new_v4().to_string());
    }
    Ok(req)
}

fn start(a: StartArgs, g: &Global) -> Result<ExitCode, Failure> {
    if let Some(kind) = &a.generate_cli_skeleton {
        print!("{}", skeleton(kind)?);
        return Ok(ExitCode::SUCCESS);
    }
    let req = start_request(&a)?;
    let svc = open(g, worker_runner())?;
    let r = api("StartModelPackagingJob", svc.start_model_packaging_job(&req))?;
    if !a.wait {
        print(r, g)?;
        return Ok(ExitCode::SUCCESS);
    }
    let project = req.project_name.clone().unwrap_or_default();
    let job = r["JobName"].as_str().unwrap_or_default().to_owned();
    let d = wait(&svc, &project, &job)?;
    let failed = d["ModelPackagingDescription"]["Status"] == "FAILED";
    print(d, g)?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Polls the job until it ends, with a spinner on a terminal and a line per status change
/// otherwise; returns the final `DescribeModelPackagingJob` response.
fn wait(svc: &Service, project: &str, job: &str) -> Result<Value, Failure> {
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("template"));
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let mut last = String::new();
    loop {
        let d = api("DescribeModelPackagingJob", svc.describe_model_packaging_job(project, job))?;
        let desc = &d["ModelPackagingDescription"];
        let status = desc["Status"].as_str().unwrap_or_default().to_owned();
        let line = format!("{job}: {status}: {}", desc["StatusMessage"].as_str().unwrap_or(""));
        if line != last {
            match &bar {
                Some(b) => b.set_message(line.clone()),
                None => eprintln!("{line}"),
            }
            last = line;
        }
        if status == "SUCCEEDED" || status == "FAILED" {
            if let Some(b) = bar {
                b.finish_with_message(last);
            }
            return Ok(d);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
