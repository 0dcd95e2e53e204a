//! Model packaging jobs, done locally: the packaging API's semantics (projects, model
//! versions, `StartModelPackagingJob`, `DescribeModelPackagingJob`, `ListModelPackagingJobs`
//! with every constraint and prose rule of the API model), a job store (SQLite embedded, or
//! PostgreSQL shared by several servers and workers: [`store`]), jobs that run off the request
//! path, and Greengrass components that carry a plan pre-packed for the
//! target's kernels and a parity report.
//!
//! A [`Service`] lives in a root folder (created owner-only): `jobs.sqlite` (WAL) and its
//! marker `jobs.created` (or `job-store.json`, naming a PostgreSQL store), `blobs/sha256/` (model files, content-addressed, read-only, a
//! corrupt one replaced by a good import), `storage.json` (where buckets are:
//! [`output::Storage`]), `keys/` (the component signing key), `logs/` (workers' output) and, with the embedded storage,
//! `buckets/<bucket>/`. Opening it sweeps what killed processes left (temporary model files,
//! staging folders).

pub mod agent_component;
pub mod blobs;
pub mod budget;
pub mod component;
pub mod contract;
pub mod error;
pub mod jobs;
pub mod manifest;
pub mod output;
pub mod packaging;
pub mod parity;
pub mod projects;
pub mod sample;
mod setting;
pub mod shapes;
pub mod signing;
pub mod store;
mod temp;
pub mod validate;
pub mod worker;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::{ApiError, ErrorKind, ResourceType, Result};

/// Who runs a job after `StartModelPackagingJob` recorded it.
#[derive(Debug, Clone)]
pub enum Runner {
    /// A thread of this process (the process must outlive the job).
    Thread,
    /// A detached process: `program args… <project> <job>` with `EDGEPACK_HOME` set (the
    /// CLI: `edgepack run-packaging-job`), its output appended to `<root>/logs/<project>/<job>.log`.
    Process(PathBuf, Vec<String>),
    /// Nobody: the caller runs [`Service::run_job`] (tests).
    Manual,
}

/// Service settings.
#[derive(Clone)]
pub struct Settings {
    /// Who runs jobs.
    pub runner: Runner,
    /// A RUNNING job without a heartbeat for this long has lost its worker.
    pub stale_after: Duration,
    /// Threads of the parity run.
    pub threads: usize,
    /// Where components go (default: what `<root>/storage.json` names, see
    /// [`output::Storage`]; without that file, folders under `<root>/buckets`).
    pub output: Option<Arc<dyn output::OutputStore>>,
    /// Where the agent builds are (`<dir>/<x86_64|aarch64>/edgepack-agent`; default:
    /// [`agent_component::default_dir`]).
    pub agent_dir: Option<PathBuf>,
    /// Bytes an import or a job may need at most (default: see [`budget::resolve`]).
    pub memory_budget: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            runner: Runner::Thread,
            stale_after: Duration::from_secs(30),
            threads: 1,
            output: None,
            agent_dir: None,
            memory_budget: None,
        }
    }
}

/// The packaging service on one root folder. Cheap to clone; every operation opens its own
/// database connection, so clones may be used from several threads and processes at once.
#[derive(Clone)]
pub struct Service {
    root: PathBuf,
    settings: Settings,
    output: Arc<dyn output::OutputStore>,
    store: store::Store,
}

impl Service {
    /// Opens (creating) the service in `root`, then recovers: jobs whose worker stopped are
    /// marked FAILED, CREATED jobs nobody claimed are launched again.
    pub fn open(root: &Path, settings: Settings) -> Result<Service> {
        // A new home is the owner's alone (its job store too: see `store::init`).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| ApiError::internal(format!("{}: {e}", root.display())))?;
        let output = match &settings.output {
            Some(o) => o.clone(),
            None => output::Storage::load(root)?.open(root),
        };
        let store = store::Store::open(root, &store::StoreConfig::load(root)?)?;
        let svc = Service { root: root.to_path_buf(), settings, output, store };
        // What killed workers left: staging folders of local publishes, temp model files.
        svc.output.sweep();
        svc.blobs().sweep();
        svc.recover()?;
        Ok(svc)
    }

    /// The liveness rule and the queue, as a service applies them when it opens and a server
    /// periodically: jobs whose worker stopped (on this machine or, with a shared store, on
    /// another) are FAILED, and CREATED jobs nobody claimed are handed to the runner (of all
    /// the workers that then try, one claims each). Returns how many of each.
    pub fn recover(&self) -> Result<(usize, usize)> {
        let failed = self.fail_interrupted_jobs()?.len();
        let queued = self.unclaimed_jobs()?;
        for (project, job) in &queued {
            self.launch(project, job);
        }
        Ok((failed, queued.len()))
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The job store.
    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// A connection to the job store.
    pub fn db(&self) -> Result<store::Db> {
        self.store.connect()
    }

    /// The service's component signing key (made on first use: see [`signing::Signer`]).
    pub fn signer(&self) -> Result<signing::Signer> {
        signing::Signer::load_or_create(&self.root)
    }

    /// Refuses a prepared model whose estimated peak memory is over the budget.
    pub fn check_memory(&self, prepared: &model::Prepared, input_shape: &[usize]) -> Result<()> {
        let budget = budget::resolve(self.settings.memory_budget)?;
        budget::check(&model::memory::estimate(prepared), &budget, &format!("at input shape {input_shape:?}"))
    }

    /// The model file store.
    pub fn blobs(&self) -> blobs::Blobs {
        blobs::Blobs::new(&self.root)
    }

    /// Stores a model file (content-addressed) and returns its SHA-256: in this root's
    /// `blobs/`, and in a shared job store too, for workers on other machines.
    pub(crate) fn put_model_file(&self, bytes: &[u8]) -> Result<String> {
        let sha = self.blobs().put(bytes)?;
        if self.store.is_shared() {
            self.db()?.execute(
                "INSERT INTO model_blobs(sha256, bytes) VALUES (?1, ?2) ON CONFLICT(sha256) DO NOTHING",
                args![&sha, bytes],
            )?;
        }
        Ok(sha)
    }

    /// The model file `sha256`, verified: from this root's `blobs/`, or (a model imported on
    /// another machine of a shared store) from the store, kept in `blobs/` from then on.
    pub(crate) fn model_file(&self, sha256: &str) -> Result<Vec<u8>> {
        let local = self.blobs().get(sha256);
        if local.is_ok() || !self.store.is_shared() {
            return local;
        }
        let row = self.db()?.query_opt("SELECT bytes FROM model_blobs WHERE sha256 = ?1", args![sha256])?;
        let bytes: Vec<u8> = row.ok_or_else(|| local.unwrap_err())?.get(0)?;
        if self.blobs().put(&bytes)? != sha256 {
            return Err(ApiError::internal(format!("model file {sha256} in the job store is corrupt")));
        }
        Ok(bytes)
    }

    /// Where components go.
    pub fn output(&self) -> &dyn output::OutputStore {
        &*self.output
    }

    /// Hands a CREATED job to the runner.
    fn launch(&self, project: &str, job: &str) {
        match &self.settings.runner {
            Runner::Manual => {}
            Runner::Thread => {
                let svc = self.clone();
                let (p, j) = (project.to_owned(), job.to_owned());
                std::thread::spawn(move || svc.run_job(&p, &j));
            }
            Runner::Process(program, args) => {
                if let Err(e) = self.spawn_worker(program, args, project, job) {
                    // Said at once, in the job: nothing would ever run it.
                    let _ = self.fail_unstarted(project, job, &format!("the worker could not be started: {e}"));
                }
            }
        }
    }

    /// A job's log: `logs/<project>/<job>.log` (both names are validated path-safe words).
    /// The worker appends a line per step of the job and its outcome (see
    /// [`Service::log_line`]); a worker process's own output goes there too.
    pub fn log_path(&self, project: &str, job: &str) -> PathBuf {
        self.root.join("logs").join(project).join(format!("{job}.log"))
    }

    /// Appends `<UTC time> <line>` to a job's log (best effort: a log that cannot be written
    /// never fails the job).
    pub(crate) fn log_line(&self, project: &str, job: &str, line: &str) {
        use std::io::Write;
        let path = self.log_path(project, job);
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let _ = writeln!(f, "{now} {line}");
        }
    }

    /// A worker process for the job, its output appended to its log ([`Service::log_path`]); the error
    /// names the path or program that failed.
    fn spawn_worker(
        &self,
        program: &Path,
        args: &[String],
        project: &str,
        job: &str,
    ) -> std::result::Result<(), SpawnError> {
        fn at(p: &Path) -> impl Fn(std::io::Error) -> SpawnError + '_ {
            move |source| SpawnError { path: p.to_path_buf(), source }
        }
        let path = self.log_path(project, job);
        let logs = path.parent().expect("the logs folder");
        std::fs::create_dir_all(logs).map_err(at(logs))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(at(&path))?;
        std::process::Command::new(program)
            .args(args)
            .args([project, job])
            .env("EDGEPACK_HOME", &self.root)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(at(&path))?)
            .stderr(log)
            .spawn()
            .map_err(at(program))?;
        Ok(())
    }
}

/// A worker process that could not be started: the path or program that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
struct SpawnError {
    path: PathBuf,
    source: std::io::Error,
}
