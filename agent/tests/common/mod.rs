//! Helpers of the agent tests: components published by a real packaging job (the sample
//! segmentation and classification models, planned for this host; the segmentation model also
//! for NEON), and an agent served in-process on a socket in a temporary folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use agent::proto::edge_agent_client::EdgeAgentClient;
use agent::proto::{DescribeModelRequest, ModelStatus, StartModelRequest};
use agent::registry::{Options, Registry};
use package::sample::{sample_contract, sample_model, SampleKind};
use package::shapes::{
    GreengrassConfiguration, ModelPackagingConfiguration, S3Location, StartModelPackagingJobRequest, TargetPlatform,
};
use package::{Runner, Service, Settings};
use tonic::transport::Channel;

/// Segmentation sample input size (not square, so a swapped width and height shows).
pub const SEG_H: usize = 96;
/// Its width.
pub const SEG_W: usize = 128;

/// What [`remove_at_exit`] removes when the test binary exits.
static AT_EXIT: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

/// One thing to remove at exit.
enum Cleanup {
    Folder(PathBuf),
    SharedMemory(String),
}

extern "C" fn clean_up_at_exit() {
    let items = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for item in items {
        match item {
            Cleanup::Folder(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::SharedMemory(name) => agent::shm::unlink(&name),
        }
    }
}

fn at_exit(item: Cleanup) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    // SAFETY: `clean_up_at_exit` is an `extern "C" fn()` that lives for the whole program; libc's
    // atexit only stores the pointer and calls it once when the process exits (libtest's main
    // returns or calls `exit`, both of which run it).
    REGISTERED.call_once(|| unsafe {
        libc::atexit(clean_up_at_exit);
    });
    AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()).push(item);
}

/// Removes `dir` when the test binary exits: what a `static` holds is never dropped, so a
/// `TempDir` kept in one would stay in the temporary folder after every run.
pub fn remove_at_exit(dir: tempfile::TempDir) -> PathBuf {
    let path = dir.keep();
    at_exit(Cleanup::Folder(path.clone()));
    path
}

/// Unlinks the shared-memory object `name` when the test binary exits.
pub fn unlink_at_exit(name: &str) {
    at_exit(Cleanup::SharedMemory(name.to_string()));
}

/// Components packaged once per test binary (their folder is removed at exit).
pub struct Components {
    /// The segmentation sample planned for this host.
    pub segmentation: PathBuf,
    /// The classification sample planned for this host.
    pub classification: PathBuf,
    /// The segmentation sample planned for NEON (not runnable on x86 hosts).
    pub neon: PathBuf,
    /// The agent component published beside them.
    pub agent: PathBuf,
}

fn host_mcpu() -> (&'static str, &'static str) {
    if cfg!(target_arch = "aarch64") {
        ("ARM64", "generic")
    } else if std::arch::is_x86_feature_detected!("avx512f") {
        ("X86_64", "skylake-avx512")
    } else {
        ("X86_64", "core-avx2")
    }
}

fn config(arch: &str, mcpu: &str, component: &str) -> GreengrassConfiguration {
    GreengrassConfiguration {
        compiler_options: Some(format!("{{\"mcpu\": \"{mcpu}\"}}")),
        target_device: None,
        target_platform: Some(TargetPlatform { os: Some("LINUX".into()), arch: Some(arch.into()), accelerator: None }),
        s3_output_location: Some(S3Location { bucket: Some("components".into()), prefix: Some("factory".into()) }),
        component_name: Some(component.into()),
        component_version: None,
        component_description: None,
        tags: None,
    }
}

/// A folder holding `x86_64/edgepack-agent` and `aarch64/edgepack-agent`: this test build's
/// agent binary (the aarch64 copy only stands in as the NEON component's artifact; no test runs
/// it). Hard links where the file system allows, a copy elsewhere.
pub fn agent_dir(root: &Path) -> PathBuf {
    let dir = root.join("agent-builds");
    let built = env!("CARGO_BIN_EXE_edgepack-agent");
    for arch in ["x86_64", "aarch64"] {
        std::fs::create_dir_all(dir.join(arch)).unwrap();
        let to = dir.join(arch).join("edgepack-agent");
        if std::fs::hard_link(built, &to).is_err() {
            std::fs::copy(built, &to).unwrap();
        }
    }
    dir
}

fn package(svc: &Service, kind: SampleKind, h: usize, w: usize, name: &str, arch: &str, mcpu: &str) -> PathBuf {
    let project = name.to_ascii_lowercase().replace('.', "-");
    svc.create_project(&project).expect("project");
    let version = svc
        .import_model(&package::projects::ImportModel {
            project_name: project.clone(),
            onnx: sample_model(kind, h, w),
            source: "agent tests".into(),
            description: None,
            contract: sample_contract(kind, h, w),
        })
        .expect("import")
        .model
        .model_version;
    let req = StartModelPackagingJobRequest {
        project_name: Some(project.clone()),
        model_version: Some(version),
        configuration: Some(ModelPackagingConfiguration { greengrass: Some(config(arch, mcpu, name)) }),
        ..Default::default()
    };
    let job = svc.start_model_packaging_job(&req).expect("start job").job_name;
    assert!(svc.run_job(&project, &job).expect("run job"), "the packaging job ran");
    let d = svc.describe_model_packaging_job(&project, &job).expect("describe job");
    let m = &d.model_packaging_description.job;
    assert_eq!(m.status, "SUCCEEDED", "{:?}", m.status_message);
    svc.root().join("buckets/components/factory").join(name).join("1.0.0")
}

/// The packaged components (packaged on first use).
pub fn components() -> &'static Components {
    static C: OnceLock<Components> = OnceLock::new();
    C.get_or_init(|| {
        let dir = remove_at_exit(tempfile::tempdir().unwrap());
        let settings = Settings { runner: Runner::Manual, agent_dir: Some(agent_dir(&dir)), ..Settings::default() };
        let svc = Service::open(&dir.join("home"), settings).expect("service");
        let (arch, mcpu) = host_mcpu();
        let segmentation = package(&svc, SampleKind::Segmentation, SEG_H, SEG_W, "factory.Defects", arch, mcpu);
        let classification = package(&svc, SampleKind::Classification, 64, 64, "factory.Scores", arch, mcpu);
        let neon = package(&svc, SampleKind::Segmentation, 32, 32, "factory.NeonOnly", "ARM64", "generic");
        let agent = svc
            .root()
            .join("buckets/components/factory/edgepack.EdgeAgent")
            .join(package::agent_component::AGENT_VERSION);
        Components { segmentation, classification, neon, agent }
    })
}

/// Copies a component folder (to damage the copy).
pub fn copy_component(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Agent options serving `models` (no Greengrass tree).
pub fn options(models: &[(&str, &Path)]) -> Options {
    Options {
        components_dir: None,
        work_dir: None,
        models: models.iter().map(|(n, p)| (n.to_string(), p.to_path_buf())).collect(),
        threads: 2,
        call_threads: 1,
        queue: 4,
        memory_limit: None,
    }
}

/// An agent served on a socket in a temporary folder, stopped on drop.
pub struct Served {
    /// The socket's folder.
    pub dir: tempfile::TempDir,
    /// The socket.
    pub socket: PathBuf,
    /// The agent's models.
    pub registry: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serves `options` on the current tokio runtime.
pub async fn serve(options: Options) -> Served {
    let registry = Registry::new(options).expect("registry");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = agent::socket::bind(&socket).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let r = registry.clone();
    tokio::spawn(async move {
        agent::serve(r, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve")
    });
    Served { dir, socket, registry, stop: Some(stop) }
}

impl Served {
    /// A client on the socket.
    pub async fn client(&self) -> EdgeAgentClient<Channel> {
        agent::client::connect(&self.socket).await.expect("connect")
    }
}

/// Polls DescribeModel until `name` leaves STARTING / STOPPING (10 s at most).
pub async fn settle(client: &mut EdgeAgentClient<Channel>, name: &str) -> (ModelStatus, String) {
    let t = Instant::now();
    loop {
        let d = client
            .describe_model(DescribeModelRequest { model_component: name.into() })
            .await
            .expect("describe")
            .into_inner()
            .model_description
            .expect("description");
        let status = ModelStatus::try_from(d.status).expect("a known status");
        if !matches!(status, ModelStatus::Starting | ModelStatus::Stopping) || t.elapsed() > Duration::from_secs(10) {
            return (status, d.status_message);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts `name` and waits until it is RUNNING.
pub async fn start_running(client: &mut EdgeAgentClient<Channel>, name: &str) {
    let s = client.start_model(StartModelRequest { model_component: name.into() }).await.expect("start").into_inner();
    assert_eq!(s.status, ModelStatus::Starting as i32);
    let (status, message) = settle(client, name).await;
    assert_eq!(status, ModelStatus::Running, "{message}");
}

/// A deterministic RGB888 image.
pub fn image(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = model::rng::SplitMix::new(seed);
    (0..w * h * 3).map(|_| (rng.next_u64() >> 56) as u8).collect()
}
