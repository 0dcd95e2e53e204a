//! `edgepack-agent`: serve model components over the edge agent API, check a component's
//! parity on this device, or measure the agent under load.

use std::path::PathBuf;
use std::process::ExitCode;

use agent::registry::{Options, Registry};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

mod bench;

#[derive(Parser)]
#[command(
    name = "edgepack-agent",
    version,
    about = "The edgepack edge agent: serves packaged model components over gRPC on a Unix socket"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default when no command is given).
    Serve(ServeArgs),
    /// Check a component's plan on this device against the float64 reference of its model.
    Parity(ParityArgs),
    /// Measure DetectAnomalies through a running agent and in-process on the same image.
    Bench(bench::BenchArgs),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// The socket (`unix:///path`, or a path).
    #[arg(long, default_value = agent::socket::DEFAULT_SOCKET)]
    socket: String,
    /// Greengrass's artifacts root: `<dir>/<component>/<version>/manifest.json`.
    #[arg(long)]
    components_dir: Option<PathBuf>,
    /// Greengrass's work root (device parity reports: `<dir>/<component>/device-parity.json`);
    /// default: `work` beside the `packages` folder of --components-dir.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// A component folder to serve as NAME (repeatable; without Greengrass).
    #[arg(long = "model", value_name = "NAME=DIR", value_parser = parse_model)]
    models: Vec<(String, PathBuf)>,
    /// Threads for inference in all (default: this machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Threads of one call; calls of a model run in parallel on threads / call-threads workers.
    #[arg(long, default_value_t = 1)]
    call_threads: usize,
    /// Calls that may wait per model before RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Memory the running models may use in all, in bytes (default: MemAvailable at StartModel).
    #[arg(long)]
    memory_limit: Option<u64>,
    /// Start these models at once (repeatable; `all` for every one found).
    #[arg(long = "start", value_name = "NAME")]
    start: Vec<String>,
}

#[derive(Args)]
struct ParityArgs {
    /// The component folder (`{artifacts:path}`).
    #[arg(long)]
    component: PathBuf,
    /// Where the report goes (`{work:path}/device-parity.json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Threads of the plan run.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn parse_model(s: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected NAME=DIR"))?;
    if name.is_empty() || dir.is_empty() {
        return Err(format!("`{s}`: expected NAME=DIR"));
    }
    Ok((name.to_owned(), PathBuf::from(dir)))
}

const GREENGRASS_ARTIFACTS: &str = "/greengrass/v2/packages/artifacts";

fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let components_dir = match (&a.components_dir, a.models.is_empty()) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => Some(PathBuf::from(GREENGRASS_ARTIFACTS)),
        (None, false) => None,
    };
    let work_dir = a.work_dir.clone().or_else(|| {
        let root = components_dir.as_ref()?.parent()?.parent()?;
        Some(root.join("work"))
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if a.call_threads == 0 || a.queue == 0 || a.threads == Some(0) {
        bail!("--threads, --call-threads and --queue must be at least 1");
    }
    let options = Options {
        components_dir,
        work_dir,
        models: a.models.clone(),
        threads: a.threads.unwrap_or(cores).max(a.call_threads),
        call_threads: a.call_threads,
        queue: a.queue,
        memory_limit: a.memory_limit,
    };
    let registry = Registry::new(options)?;
    let path = agent::socket::socket_path(&a.socket);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let listener = runtime.block_on(async { agent::socket::bind(&path) })?;
    let models = registry.list();
    eprintln!(
        "edgepack-agent {}: serving {} model(s) on unix://{} ({} worker(s) per model × {} thread(s), queue {})",
        env!("CARGO_PKG_VERSION"),
        models.len(),
        path.display(),
        registry.workers(),
        a.call_threads,
        a.queue
    );
    for m in &models {
        eprintln!("  {}: {}", m.name, m.message);
    }
    let start_all = a.start.iter().any(|s| s == "all");
    for m in models.iter().filter(|m| start_all || a.start.contains(&m.name)) {
        if let Err(e) = registry.start(&m.name) {
            bail!("--start {}: {}", m.name, e.message());
        }
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        eprintln!("edgepack-agent: stopping");
    };
    let served = runtime.block_on(agent::serve(registry, listener, shutdown));
    let _ = std::fs::remove_file(&path);
    served.context("serving")?;
    Ok(ExitCode::SUCCESS)
}

fn parity(a: ParityArgs) -> anyhow::Result<ExitCode> {
    let (report, passed) = agent::parity::check(&a.component, a.threads.max(1))?;
    let text = serde_json::to_string_pretty(&report)? + "\n";
    if let Some(p) = &a.json {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        }
        std::fs::write(p, &text).with_context(|| p.display().to_string())?;
    }
    let worst = agent::parity::worst_error(&report);
    println!(
        "device parity {} on {}: max rel err {worst:.2e} (bound {:.0e}){}",
        report["Status"].as_str().unwrap_or("?"),
        report["RanOn"].as_str().unwrap_or("?"),
        model::parity::F32_BOUND,
        a.json.as_ref().map(|p| format!("; report: {}", p.display())).unwrap_or_default()
    );
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(a)) => serve(a),
        Some(Command::Parity(a)) => parity(a),
        Some(Command::Bench(a)) => bench::run(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("edgepack-agent: {e:#}");
        ExitCode::from(2)
    })
}
