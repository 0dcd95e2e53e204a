//! `edgepack-agent bench`: DetectAnomalies throughput and latency percentiles through a running
//! agent with 1, 2, … concurrent clients (each on its own connection, like separate client
//! processes), and the same work in-process (preprocess, run the plan, read the outputs) on the
//! same image with as many threads, each with its own session. Figures, not tests: they go in
//! `docs/performance.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use agent::components::Component;
use agent::proto::{bitmap, Bitmap, DetectAnomaliesRequest};

/// `edgepack-agent bench` options.
#[derive(Args)]
pub struct BenchArgs {
    /// The agent's socket.
    #[arg(long, default_value = agent::socket::DEFAULT_SOCKET)]
    socket: String,
    /// The model component (RUNNING in the agent).
    #[arg(long)]
    model: String,
    /// Its folder, for the in-process figures.
    #[arg(long)]
    component: PathBuf,
    /// Image size `WxH` (default: the model's input size).
    #[arg(long)]
    image: Option<String>,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,2,8")]
    clients: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Threads of one in-process call (match the agent's --call-threads).
    #[arg(long, default_value_t = 1)]
    call_threads: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Start the model (StartModel) if the agent has it stopped, as a client does on a device
    /// where Greengrass started the agent.
    #[arg(long)]
    start: bool,
}

/// A deterministic test image: a textured background with darker strokes (text-like).
pub fn test_image(width: usize, height: usize) -> Vec<u8> {
    let mut rng = model::rng::SplitMix::new(0x1a5e);
    let mut px = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let grain = (rng.next_u64() >> 60) as u8;
            let stroke = (y / 8) % 6 == 2 && (x / 5) % 7 < 5;
            let base = if stroke { 40 } else { 200 + ((x + y) % 32) as u8 };
            px.extend_from_slice(&[base.saturating_add(grain), base, base.saturating_sub(grain)]);
        }
    }
    px
}

/// One measurement.
struct Figures {
    calls: usize,
    refused: usize,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Figures {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((p / 100.0) * (l.len() - 1) as f64).round() as usize;
        l[i].as_secs_f64() * 1e3
    }
    fn throughput(&self) -> f64 {
        self.calls as f64 / self.secs
    }
}

/// What each call does: one image through one component.
struct Workload<'a> {
    component: &'a Component,
    plan: &'a model::plan::Plan,
    image: Arc<Vec<u8>>,
    width: usize,
    height: usize,
}

fn in_process(work: &Workload<'_>, threads: usize, clients: usize, secs: f64) -> anyhow::Result<Figures> {
    let (c, plan, image, w, h) = (work.component, work.plan, &work.image[..], work.width, work.height);
    let names: Vec<String> = plan.outputs.iter().map(|&v| plan.values[v].name.clone()).collect();
    let start = Instant::now();
    let per_thread: Vec<anyhow::Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let names = &names;
                // The agent's workers' stack (see `agent::runner`): unoptimised builds need more
                // than a spawned thread's default 2 MiB to run a plan.
                let thread = std::thread::Builder::new().name(format!("bench-client-{i}")).stack_size(8 << 20);
                thread.spawn_scoped(s, move || -> anyhow::Result<Vec<Duration>> {
                    let mut session = plan.session(threads).context("starting the plan")?;
                    let mut lat = Vec::new();
                    while start.elapsed().as_secs_f64() < secs {
                        let t = Instant::now();
                        let img = model::image::Rgb8::new(w, h, image)?;
                        let x = model::image::to_input(img, &c.contract);
                        let outs = session.run(std::slice::from_ref(&x)).context("running the plan")?;
                        agent::answer::read(&c.contract, names, &outs, w, h)?;
                        lat.push(t.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        let join = |h: std::io::Result<std::thread::ScopedJoinHandle<'_, anyhow::Result<Vec<Duration>>>>| match h {
            Ok(h) => h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a thread panicked"))),
            Err(e) => Err(anyhow::anyhow!("cannot start a bench thread: {e}")),
        };
        handles.into_iter().map(join).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for r in per_thread {
        latencies.extend(r?);
    }
    Ok(Figures { calls: latencies.len(), refused: 0, secs, latencies })
}

async fn through_agent(
    socket: &std::path::Path,
    name: &str,
    image: Arc<Vec<u8>>,
    w: usize,
    h: usize,
    clients: usize,
    secs: f64,
) -> anyhow::Result<Figures> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (image, name, socket) = (image.clone(), name.to_owned(), socket.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut client = agent::client::connect(socket).await?;
            let (mut lat, mut refused) = (Vec::new(), 0usize);
            while start.elapsed().as_secs_f64() < secs {
                let req = DetectAnomaliesRequest {
                    model_component: name.clone(),
                    bitmap: Some(Bitmap {
                        width: w as i32,
                        height: h as i32,
                        data: Some(bitmap::Data::ByteData(image.to_vec())),
                    }),
                    anomaly_mask_params: None,
                };
                let t = Instant::now();
                match client.detect_anomalies(req).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => refused += 1,
                    Err(s) => anyhow::bail!("DetectAnomalies: {s}"),
                }
            }
            Ok::<_, anyhow::Error>((lat, refused))
        }));
    }
    let (mut latencies, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (l, r) = t.await??;
        latencies.extend(l);
        refused += r;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Figures { calls: latencies.len(), refused, secs, latencies })
}

/// Waits until the agent reports `model` RUNNING (StartModel is asynchronous: a model loads
/// and checks its plan first, for minutes on an emulated board), starting it first when
/// `start_it` and it is stopped; an error when it fails to start or takes longer than `limit`.
async fn wait_running(socket: &std::path::Path, model: &str, limit: Duration, start_it: bool) -> anyhow::Result<()> {
    use agent::proto::{DescribeModelRequest, ModelStatus, StartModelRequest};
    let start = Instant::now();
    let mut client = agent::client::connect(socket.to_owned())
        .await
        .with_context(|| format!("connecting to the agent on {}", socket.display()))?;
    loop {
        let req = DescribeModelRequest { model_component: model.to_owned() };
        let d = client.describe_model(req).await.with_context(|| format!("DescribeModel {model}"))?;
        let d = d.into_inner().model_description.unwrap_or_default();
        match ModelStatus::try_from(d.status) {
            Ok(ModelStatus::Running) => return Ok(()),
            Ok(ModelStatus::Failed) => anyhow::bail!("{model} failed to start: {}", d.status_message),
            Ok(ModelStatus::Stopped) if start_it => {
                let req = StartModelRequest { model_component: model.to_owned() };
                client.start_model(req).await.with_context(|| format!("StartModel {model}"))?;
            }
            Ok(ModelStatus::Stopped) => {
                anyhow::bail!("{model} is not started (serve it with --start {model}, or bench with --start)")
            }
            _ if start.elapsed() > limit => {
                anyhow::bail!("{model} not RUNNING after {} s: {}", limit.as_secs(), d.status_message)
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs the benchmark.
pub fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let c = Component::load(&a.component, None)?;
    let (plan, _) = c.plan()?;
    let (w, h) = match &a.image {
        Some(s) => {
            let size = || format!("--image {s}: expected WxH");
            let (w, h) = s.split_once('x').with_context(size)?;
            (w.parse().with_context(size)?, h.parse().with_context(size)?)
        }
        None => (c.contract.input.shape[3], c.contract.input.shape[2]),
    };
    let image = Arc::new(test_image(w, h));
    let clients: Vec<usize> = a
        .clients
        .split(',')
        .map(|s| s.trim().parse().with_context(|| format!("--clients {}: expected numbers", a.clients)))
        .collect::<anyhow::Result<_>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let socket = agent::socket::socket_path(&a.socket);
    runtime.block_on(wait_running(&socket, &a.model, Duration::from_secs(300), a.start))?;
    println!(
        "model {} ({}), image {w}x{h}, {} s per row, host {}",
        a.model,
        c.kernel_set,
        a.seconds,
        kernels::host_cpu_name()
    );
    println!(
        "{:<10} {:>7} {:>7} {:>9} {:>9} {:>9} {:>8}",
        "mode", "clients", "calls", "calls/s", "p50 ms", "p99 ms", "refused"
    );
    let mut rows = Vec::new();
    for &n in &clients {
        let work = Workload { component: &c, plan: &plan, image: image.clone(), width: w, height: h };
        let inproc = in_process(&work, a.call_threads, n, a.seconds)?;
        let agent = runtime.block_on(through_agent(&socket, &a.model, image.clone(), w, h, n, a.seconds))?;
        for (mode, f) in [("in-process", &inproc), ("agent", &agent)] {
            println!(
                "{mode:<10} {n:>7} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>8}",
                f.calls,
                f.throughput(),
                f.percentile(50.0),
                f.percentile(99.0),
                f.refused
            );
            rows.push(json!({"Mode": mode, "Clients": n, "Calls": f.calls, "PerSecond": f.throughput(),
                "P50Ms": f.percentile(50.0), "P99Ms": f.percentile(99.0), "Refused": f.refused}));
        }
    }
    if let Some(p) = &a.json {
        let doc = json!({"Model": a.model, "Image": [w, h], "Host": kernels::host_cpu_name(), "Rows": rows});
        std::fs::write(p, serde_json::to_string_pretty(&doc)? + "\n").with_context(|| p.display().to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
