//! The API commands' arguments (clap).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::render::Format;

/// Options every API command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// Output format.
    #[arg(long, value_enum, default_value = "json", global = true)]
    pub(super) output: Format,
    /// JMESPath query applied to the response.
    #[arg(long, global = true)]
    pub(super) query: Option<String>,
    /// The service's folder (job store, model files, local buckets); default
    /// `$EDGEPACK_HOME`, else `~/.edgepack`.
    #[arg(long, global = true)]
    pub(super) home: Option<PathBuf>,
    /// The API commands: a server of the packaging API to call (`http://host:port`, e.g.
    /// `edgepack serve`) instead of the home; `configure-storage --s3`: the S3 endpoint.
    #[arg(long, global = true)]
    pub(super) endpoint_url: Option<String>,
    /// The region to sign requests for (with `--endpoint-url`; default `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, the profile's, else us-east-1); `configure-storage --s3`: the
    /// S3 region.
    #[arg(long, global = true)]
    pub(super) region: Option<String>,
    /// The profile of the AWS shared credentials and config files (with `--endpoint-url`).
    #[arg(long, global = true)]
    pub(super) profile: Option<String>,
    /// Print each request to the server and its answer's status on standard error.
    #[arg(long, global = true)]
    pub(super) debug: bool,
    /// Accepted as the AWS CLI accepts it (edgepack never pages its output).
    #[arg(long, global = true)]
    pub(super) no_cli_pager: bool,
}

/// Options a `--cli-input-*` document or `--generate-cli-skeleton` makes optional.
const FROM_INPUT: [&str; 3] = ["cli_input_json", "cli_input_yaml", "generate_cli_skeleton"];

/// A packaging API command.
#[derive(Subcommand)]
pub enum ApiCommand {
    /// Create a project.
    CreateProject {
        /// The project's name.
        #[arg(long, required_unless_present_any = FROM_INPUT)]
        project_name: Option<String>,
        /// Idempotency token (8 hours; generated when absent, as the AWS SDKs do).
        #[arg(long)]
        client_token: Option<String>,
        #[command(flatten)]
        input: CliInput,
    },
    /// Describe a project.
    DescribeProject {
        /// The project's name.
        #[arg(long, required_unless_present_any = FROM_INPUT)]
        project_name: Option<String>,
        #[command(flatten)]
        input: CliInput,
    },
    /// List projects.
    ListProjects(Paging),
    /// Delete a project (its model versions must be deleted first).
    DeleteProject {
        /// The project's name.
        #[arg(long, required_unless_present_any = FROM_INPUT)]
        project_name: Option<String>,
        #[command(flatten)]
        input: CliInput,
    },
    /// Register an ONNX file as the next model version of a project.
    ImportModel(ImportArgs),
    /// Describe a model version (`latest` for the newest).
    DescribeModel(ModelRef),
    /// List a project's model versions.
    ListModels {
        /// The project.
        #[arg(long, required_unless_present_any = FROM_INPUT)]
        project_name: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Delete a model version.
    DeleteModel(ModelRef),
    /// Start a model packaging job: a Greengrass component for a target.
    StartModelPackagingJob(StartArgs),
    /// Describe a model packaging job.
    DescribeModelPackagingJob {
        /// The project.
        #[arg(long, required_unless_present_any = FROM_INPUT)]
        project_name: Option<String>,
        /// The job.
        #[arg(long, required_unless_present_any = FROM_INPUT)]
        job_name: Option<String>,
        #[command(flatten)]
        input: CliInput,
    },
    /// List a project's model packaging jobs (newest first).
    ListModelPackagingJobs {
        /// The project.
        #[arg(long, required_unless_present_any = FROM_INPUT)]
        project_name: Option<String>,
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
    /// Show or change where the job store is: SQLite in the home (the default, one machine)
    /// or a PostgreSQL database that several servers and workers share (a team). The setting
    /// is checked by connecting (and migrating the schema) before it is saved.
    ConfigureJobStore(JobStoreArgs),
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
    /// Serve the packaging API over HTTP for the AWS SDKs and the AWS CLI (`--endpoint-url`):
    /// rest-json, every request signed (SigV4) with a key of `create-access-key`.
    Serve(ServeArgs),
    /// Make an access key for `serve` (its secret is shown once).
    CreateAccessKey {
        /// A project the key may touch (a name, or a prefix ending in `*`); repeatable.
        #[arg(long = "project", required_unless_present = "all_projects")]
        projects: Vec<String>,
        /// Every project, also ones created later.
        #[arg(long, conflicts_with = "projects")]
        all_projects: bool,
    },
    /// List the access keys (no secrets).
    ListAccessKeys,
    /// Delete an access key: `serve` refuses it within seconds.
    DeleteAccessKey {
        /// The key's id.
        #[arg(long)]
        access_key_id: String,
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
    pub(super) starting_token: Option<String>,
    /// Items per API call (1..100).
    #[arg(long)]
    pub(super) page_size: Option<i64>,
    /// Most items to return (1 or more); a `NextToken` follows when there are more. Handled
    /// here, as the AWS CLI does: the service never sees it.
    #[arg(long, value_parser = at_least_one)]
    pub(super) max_items: Option<usize>,
    /// One API call only.
    #[arg(long)]
    pub(super) no_paginate: bool,
    #[command(flatten)]
    pub(super) input: CliInput,
}

/// A model version of a project (`describe-model`, `delete-model`).
#[derive(Args)]
pub struct ModelRef {
    /// The project.
    #[arg(long, required_unless_present_any = FROM_INPUT)]
    pub(super) project_name: Option<String>,
    /// Version number (`describe-model`: or `latest`).
    #[arg(long, required_unless_present_any = FROM_INPUT)]
    pub(super) model_version: Option<String>,
    #[command(flatten)]
    pub(super) input: CliInput,
}

/// `--cli-input-json|yaml` and `--generate-cli-skeleton`, as every AWS CLI operation takes
/// them: the request's members from a document (options given override them), or its
/// skeleton.
#[derive(Args, Clone, Default)]
pub struct CliInput {
    /// The whole request as JSON (`file://PATH` or inline); options given override it.
    #[arg(long, conflicts_with = "cli_input_yaml")]
    pub(super) cli_input_json: Option<String>,
    /// The whole request as YAML.
    #[arg(long)]
    pub(super) cli_input_yaml: Option<String>,
    /// Print a request skeleton (`input`, `yaml-input`) or a sample response (`output`).
    #[arg(long, num_args = 0..=1, default_missing_value = "input")]
    pub(super) generate_cli_skeleton: Option<String>,
}

/// `import-model`.
#[derive(Args)]
pub struct ImportArgs {
    /// The project.
    #[arg(long, required_unless_present_any = FROM_INPUT)]
    pub(super) project_name: Option<String>,
    /// The ONNX file.
    #[arg(long, required_unless_present_any = FROM_INPUT)]
    pub(super) model: Option<PathBuf>,
    /// A `ModelContract` JSON (`file://PATH` or inline) instead of the options below.
    #[arg(long)]
    pub(super) contract: Option<String>,
    /// Input shape `1x3xHxW`.
    #[arg(long)]
    pub(super) input_shape: Option<String>,
    /// The ONNX input's name (default: the model's only free input).
    #[arg(long)]
    pub(super) input_name: Option<String>,
    /// Pixel scale (0..255 pixels × scale).
    #[arg(long, default_value_t = 1.0 / 255.0)]
    pub(super) scale: f64,
    /// Per-channel mean, `r,g,b`.
    #[arg(long, value_delimiter = ',', default_values_t = [0.485, 0.456, 0.406])]
    pub(super) mean: Vec<f64>,
    /// Per-channel std, `r,g,b`.
    #[arg(long, value_delimiter = ',', default_values_t = [0.229, 0.224, 0.225])]
    pub(super) std: Vec<f64>,
    /// Classification: the output holding the anomaly score.
    #[arg(long, conflicts_with = "mask_output")]
    pub(super) anomaly_output: Option<String>,
    /// Classification: index of the anomaly score in that output.
    #[arg(long, default_value_t = 1)]
    pub(super) score_index: usize,
    /// Segmentation: the mask output.
    #[arg(long)]
    pub(super) mask_output: Option<String>,
    /// Segmentation: `name:#rrggbb` per mask channel.
    #[arg(long, value_delimiter = ',')]
    pub(super) mask_classes: Vec<String>,
    /// Score / mask threshold.
    #[arg(long, default_value_t = 0.5)]
    pub(super) threshold: f64,
    /// Description.
    #[arg(long)]
    pub(super) description: Option<String>,
    #[command(flatten)]
    pub(super) input: CliInput,
}

/// `configure-storage`; without options it prints the current setting.
#[derive(Args)]
pub struct StorageArgs {
    /// Buckets are folders under the home.
    #[arg(long, conflicts_with = "s3")]
    pub(super) local: bool,
    /// Buckets are on S3: AWS S3, or the S3-compatible endpoint `--endpoint-url`
    /// (`http(s)://host[:port]`, path-style requests), in `--region` (default: `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, else us-east-1).
    #[arg(long)]
    pub(super) s3: bool,
}

/// `configure-job-store`; without options it prints the current setting (a password in the
/// connection string shown as `***`).
#[derive(Args)]
pub struct JobStoreArgs {
    /// The job store is `jobs.sqlite` in the home.
    #[arg(long, conflicts_with = "postgres")]
    pub(super) sqlite: bool,
    /// The job store is this PostgreSQL database: `postgresql://user[:password]@host[:port]/db`
    /// or `host=… port=… user=… dbname=…`.
    #[arg(long, value_name = "CONNECTION_STRING")]
    pub(super) postgres: Option<String>,
    /// Connections each process keeps open at most (PostgreSQL; default 8).
    #[arg(long, requires = "postgres")]
    pub(super) max_connections: Option<u32>,
}

/// `start-model-packaging-job`.
#[derive(Args)]
pub struct StartArgs {
    /// The project.
    #[arg(long)]
    pub(super) project_name: Option<String>,
    /// Version number or `latest`.
    #[arg(long)]
    pub(super) model_version: Option<String>,
    /// The job's name (generated when absent).
    #[arg(long)]
    pub(super) job_name: Option<String>,
    /// The configuration: JSON, `file://PATH`, or shorthand
    /// (`Greengrass={TargetDevice=jetson_xavier,S3OutputLocation={Bucket=b},ComponentName=c}`).
    #[arg(long)]
    pub(super) configuration: Option<String>,
    /// The job's description.
    #[arg(long)]
    pub(super) description: Option<String>,
    /// Idempotency token (8 hours).
    #[arg(long)]
    pub(super) client_token: Option<String>,
    #[command(flatten)]
    pub(super) input: CliInput,
    /// Wait for the job to finish, showing its progress; exit 1 if it failed.
    #[arg(long)]
    pub(super) wait: bool,
}

/// A count of 1 or more (`--max-items`).
pub(super) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a count of 1 or more")),
    }
}

/// `serve`'s arguments.
#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on (plain HTTP only on loopback unless `--insecure-http`).
    #[arg(long, default_value = "127.0.0.1")]
    pub(super) address: std::net::IpAddr,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8470)]
    pub(super) port: u16,
    /// PEM certificate chain: serve HTTPS (with `--tls-key`).
    #[arg(long, requires = "tls_key")]
    pub(super) tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub(super) tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback.
    #[arg(long)]
    pub(super) insecure_http: bool,
    /// The largest ONNX file an import may upload, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub(super) max_model_mib: usize,
    /// Requests dated further than this many seconds from the server's clock are refused.
    #[arg(long, default_value_t = 900)]
    pub(super) clock_skew_secs: u64,
}
