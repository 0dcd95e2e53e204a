//! `edgepack run | parity | bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use kernels::{KernelSetId, Target};
use model::plan::Plan;
use model::{Prepared, Tensor};
use parity::report::{write_json, write_junit, ModelParity};
use parity::F32_BOUND;

/// What every model command takes.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// An ONNX model, or a plan file written by `--save-plan`.
    model: PathBuf,
    /// Input shape(s), NCHW, e.g. `1x3x640x640` (one per free input, comma-separated); default:
    /// the shapes of the `--input` files.
    #[arg(long, value_delimiter = ',')]
    shape: Vec<String>,
    /// Input `.npy` file(s) (float32/64, NCHW); default: a fixed pseudo-random image in [0, 1).
    #[arg(long, value_delimiter = ',')]
    input: Vec<PathBuf>,
    /// Target configuration JSON (`{"TargetPlatform": {...}}` or `{"TargetDevice": ...}`),
    /// inline or `file://PATH`; default: this host.
    #[arg(long)]
    target: Option<String>,
    /// Kernel set to use instead of the target's (`scalar`, `avx2`, `avx512`, `neon`).
    #[arg(long)]
    kernel_set: Option<String>,
    /// Threads (1: the calling thread only).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Run this plan file (e.g. a package's `model.eppl`) instead of planning the ONNX model
    /// anew; the ONNX model still gives the reference. Its kernel set must match.
    #[arg(long)]
    plan: Option<PathBuf>,
}

/// `edgepack run`.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: ModelArgs,
    /// Write each output as `<dir>/<index>.npy`.
    #[arg(long)]
    save_outputs: Option<PathBuf>,
    /// Write the plan file here.
    #[arg(long)]
    save_plan: Option<PathBuf>,
    /// Print every step of the plan.
    #[arg(long)]
    steps: bool,
}

/// `edgepack parity`.
#[derive(Args)]
pub struct ParityArgs {
    #[command(flatten)]
    common: ModelArgs,
    /// ONNX Runtime's outputs for the same input(s), `.npy`, in output order.
    #[arg(long, value_delimiter = ',')]
    expect: Vec<PathBuf>,
    /// Label of the `--expect` source in the report.
    #[arg(long, default_value = "ONNX Runtime")]
    expect_label: String,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the JUnit report here.
    #[arg(long)]
    junit: Option<PathBuf>,
}

/// `edgepack bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    common: ModelArgs,
    /// Timed runs (after one warm-up run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Keep running until this many seconds have passed.
    #[arg(long, default_value_t = 0.0)]
    min_time: f64,
    /// Also print where the time goes, by operator (`--profile` is the AWS profile of the API
    /// commands).
    #[arg(long)]
    breakdown: bool,
    /// With --breakdown: how many of the slowest steps to list.
    #[arg(long, default_value_t = 12)]
    top: usize,
}

fn parse_shape(s: &str) -> anyhow::Result<Vec<usize>> {
    s.split('x')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| anyhow!("bad shape `{s}`: expected e.g. 1x3x640x640"))
        })
        .collect()
}

fn kernel_set_id(a: &ModelArgs) -> anyhow::Result<KernelSetId> {
    if let Some(name) = &a.kernel_set {
        return KernelSetId::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| anyhow!("unknown kernel set `{name}` (scalar, avx2, avx512, neon, cuda)"));
    }
    let target = match &a.target {
        None => Target::host(),
        Some(t) => {
            let json = match t.strip_prefix("file://") {
                Some(p) => std::fs::read_to_string(p).with_context(|| format!("--target {p}"))?,
                None => t.clone(),
            };
            Target::from_configuration(&json).context("--target")?
        }
    };
    Ok(target.kernel_set())
}

/// The model, prepared and planned; plan files skip preparation.
struct Loaded {
    name: String,
    prepared: Option<Prepared>,
    plan: Plan,
    shapes: Vec<Vec<usize>>,
    prepare_time: Duration,
}

fn load(a: &ModelArgs) -> anyhow::Result<Loaded> {
    let model = || a.model.display().to_string();
    let bytes = std::fs::read(&a.model).with_context(model)?;
    let name = a.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let t0 = Instant::now();
    if bytes.starts_with(b"EPPL") {
        let plan = Plan::from_bytes(&bytes).with_context(model)?;
        let shapes = plan.inputs.iter().map(|&v| plan.values[v].shape.clone()).collect();
        return Ok(Loaded { name, prepared: None, plan, shapes, prepare_time: t0.elapsed() });
    }
    let mut shapes: Vec<Vec<usize>> = a.shape.iter().map(|s| parse_shape(s)).collect::<anyhow::Result<_>>()?;
    if shapes.is_empty() {
        // The input files' own shapes, where they are given.
        shapes = a.input.iter().map(|p| parity::npy::read(p).map(|t| t.shape)).collect::<Result<_, _>>()?;
    }
    if shapes.is_empty() {
        bail!("--shape is required for an ONNX model without --input files (e.g. --shape 1x3x640x640)");
    }
    let prepared = model::prepare(&bytes, &shapes).with_context(model)?;
    let id = kernel_set_id(a)?;
    let plan = match &a.plan {
        Some(path) => {
            let what = || format!("--plan {}", path.display());
            let file = std::fs::read(path).with_context(what)?;
            let plan = Plan::from_bytes(&file).with_context(what)?;
            if plan.kernel_set != id {
                bail!("{} was packed for kernel set `{}`, this run asks for `{id}`", what(), plan.kernel_name);
            }
            let planned: Vec<Vec<usize>> = plan.inputs.iter().map(|&v| plan.values[v].shape.clone()).collect();
            if planned != shapes {
                bail!("{} is for input shapes {planned:?}, not {shapes:?}", what());
            }
            plan
        }
        None => {
            let set = kernels::kernel_set(id)?;
            model::plan::build(&prepared.optimized, &*set).with_context(model)?
        }
    };
    Ok(Loaded { name, prepared: Some(prepared), plan, shapes, prepare_time: t0.elapsed() })
}

fn inputs(a: &ModelArgs, shapes: &[Vec<usize>]) -> anyhow::Result<Vec<Tensor>> {
    if a.input.is_empty() {
        return Ok(shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut rng = parity::SplitMix::new(0x5eed + i as u64);
                Tensor::float(s.clone(), rng.vec(s.iter().product(), 0.0, 1.0))
            })
            .collect());
    }
    if a.input.len() != shapes.len() {
        bail!("{} --input files for {} inputs", a.input.len(), shapes.len());
    }
    Ok(a.input.iter().map(|p| parity::npy::read(p)).collect::<Result<_, _>>()?)
}

fn summary(t: &Tensor) -> String {
    let v = t.reals();
    let (min, max) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let head: Vec<String> = v.iter().take(4).map(|x| format!("{x:.6}")).collect();
    format!("shape {:?}  min {min:.6}  max {max:.6}  mean {mean:.6}  first [{}]", t.shape, head.join(", "))
}

fn describe(l: &Loaded, threads: usize) {
    let p = &l.plan;
    // What the plan was built under (a malformed knob never gets here: the set was refused).
    let tuning = if p.tuning.is_empty() { "defaults".to_string() } else { p.tuning.join(" ") };
    println!(
        "model {}  kernel set {}  threads {threads}  {:.2} GFLOP  {} steps  activations {:.1} MiB  weights {:.1} MiB  prepared in {:.0} ms  tuning {tuning}",
        l.name,
        p.kernel_set,
        p.flops as f64 / 1e9,
        p.steps.len(),
        p.activation_bytes() as f64 / (1 << 20) as f64,
        p.weight_bytes() as f64 / (1 << 20) as f64,
        l.prepare_time.as_secs_f64() * 1e3
    );
    if let Some(pr) = &l.prepared {
        println!(
            "graph {} nodes -> {} after optimisation ({:?})",
            pr.specialized.nodes.len(),
            pr.optimized.nodes.len(),
            pr.rewrites
        );
    }
}

/// `edgepack run`.
pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let l = load(&a.common)?;
    describe(&l, a.common.threads);
    if let Some(path) = &a.save_plan {
        std::fs::write(path, l.plan.to_bytes()).with_context(|| path.display().to_string())?;
        println!("plan written to {}", path.display());
    }
    if a.steps {
        for (i, s) in l.plan.steps.iter().enumerate() {
            let out = &l.plan.values[model::plan::output_of(&s.step)];
            let ins: Vec<String> =
                model::plan::inputs_of(&s.step).iter().map(|&v| l.plan.values[v].name.clone()).collect();
            println!("{i:>4} {:<34} {:<28} {:?} <- {}", s.op, out.name, out.shape, ins.join(", "));
        }
    }
    let xs = inputs(&a.common, &l.shapes)?;
    let mut session = l.plan.session(a.common.threads)?;
    let t0 = Instant::now();
    let outs = session.run(&xs)?;
    let first = t0.elapsed();
    let t1 = Instant::now();
    session.run(&xs)?;
    let second = t1.elapsed();
    for (i, (o, &v)) in outs.iter().zip(&l.plan.outputs).enumerate() {
        println!("output {i} `{}`: {}", l.plan.values[v].name, summary(o));
        if let Some(dir) = &a.save_outputs {
            parity::npy::write(&dir.join(format!("{i}.npy")), o)?;
        }
    }
    println!("latency: first run {:.2} ms, second run {:.2} ms", first.as_secs_f64() * 1e3, second.as_secs_f64() * 1e3);
    Ok(ExitCode::SUCCESS)
}

/// `edgepack parity`.
pub fn parity(a: ParityArgs) -> anyhow::Result<ExitCode> {
    let l = load(&a.common)?;
    describe(&l, a.common.threads);
    let pr =
        l.prepared.as_ref().context("parity needs the ONNX model (the reference runs the graph), not a plan file")?;
    let xs = inputs(&a.common, &l.shapes)?;
    let mut session = l.plan.session(a.common.threads)?;
    let outs = session.run(&xs)?;
    let wide: Vec<Tensor<f64>> = xs.iter().map(Tensor::to_f64).collect();
    let reference = model::reference::run(&pr.specialized, &wide)?;
    let names: Vec<String> = l.plan.outputs.iter().map(|&v| l.plan.values[v].name.clone()).collect();
    let base = |against: String| ModelParity {
        model: l.name.clone(),
        shapes: l.shapes.clone(),
        kernel_set: l.plan.kernel_set.name().into(),
        threads: a.common.threads,
        against,
        outputs: Vec::new(),
    };
    let mut runs = vec![base("float64 reference".into())];
    for ((o, r), n) in outs.iter().zip(&reference).zip(&names) {
        runs[0].outputs.push(parity::compare(n, o, &r.reals(), &r.shape, F32_BOUND));
    }
    if !a.expect.is_empty() {
        if a.expect.len() != outs.len() {
            bail!("{} --expect files for {} outputs", a.expect.len(), outs.len());
        }
        let mut ours = base(a.expect_label.clone());
        let mut refs = base(a.expect_label.clone());
        refs.kernel_set = "float64 reference".into();
        for (((o, r), n), path) in outs.iter().zip(&reference).zip(&names).zip(&a.expect) {
            let e = parity::npy::read(path)?;
            let ev: Vec<f64> = e.reals();
            ours.outputs.push(parity::compare(n, o, &ev, &e.shape, F32_BOUND));
            refs.outputs.push(parity::compare(n, &r.to_f32(), &ev, &e.shape, F32_BOUND));
        }
        runs.push(ours);
        runs.push(refs);
    }
    for r in &runs {
        println!("{} on {} vs {}:", r.model, r.kernel_set, r.against);
        for o in &r.outputs {
            println!(
                "  {:<32} {:<18} max_rel_err {:.3e}  mean_rel_err {:.3e}  max_abs_err {:.3e}  bound {:.0e}  {}",
                o.name,
                format!("{:?}", o.shape),
                o.max_rel_err,
                o.mean_rel_err,
                o.max_abs_err,
                o.bound,
                o.failure.as_deref().unwrap_or("PASS")
            );
        }
    }
    if let Some(p) = &a.json {
        write_json(p, &runs).with_context(|| p.display().to_string())?;
    }
    if let Some(p) = &a.junit {
        write_junit(p, &runs).with_context(|| p.display().to_string())?;
    }
    Ok(if runs.iter().all(ModelParity::passed) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `edgepack bench`.
pub fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let l = load(&a.common)?;
    describe(&l, a.common.threads);
    let xs = inputs(&a.common, &l.shapes)?;
    let mut session = l.plan.session(a.common.threads)?;
    session.run(&xs)?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < a.runs.max(1) || start.elapsed().as_secs_f64() < a.min_time {
        let t = Instant::now();
        session.run(&xs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    if a.breakdown {
        profile(&l.plan, &mut session, &xs, times.len(), a.top)?;
    }
    println!(
        "latency over {} runs: median {median:.2} ms  min {:.2} ms  max {:.2} ms  ({:.1} GFLOP/s at the median)",
        times.len(),
        times[0],
        times[times.len() - 1],
        l.plan.flops as f64 / median / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

/// Per-operator time over `runs` profiled runs, largest first.
fn profile(
    plan: &Plan,
    session: &mut model::plan::Session<'_>,
    xs: &[Tensor],
    runs: usize,
    top: usize,
) -> anyhow::Result<()> {
    let mut t = vec![Duration::ZERO; plan.steps.len()];
    for _ in 0..runs {
        session.run_profiled(xs, &mut t)?;
    }
    let mut by_op: std::collections::BTreeMap<&str, (Duration, usize)> = Default::default();
    for (s, d) in plan.steps.iter().zip(&t) {
        let e = by_op.entry(s.op.as_str()).or_default();
        e.0 += *d;
        e.1 += 1;
    }
    let total: Duration = t.iter().sum();
    let mut rows: Vec<_> = by_op.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
    println!("profile ({runs} runs, per run):");
    for (op, (d, n)) in rows {
        println!(
            "  {:<36} {:>4} steps {:>9.2} ms {:>5.1} %",
            op,
            n,
            d.as_secs_f64() * 1e3 / runs as f64,
            100.0 * d.as_secs_f64() / total.as_secs_f64().max(1e-12)
        );
    }
    let mut steps: Vec<(usize, Duration)> = t.iter().copied().enumerate().collect();
    steps.sort_by_key(|s| std::cmp::Reverse(s.1));
    println!("slowest steps:");
    for (i, d) in steps.into_iter().take(top) {
        let s = &plan.steps[i];
        let out = model::plan::output_of(&s.step);
        println!(
            "  {:>8.3} ms  {:<28} {:<30} -> {:?}",
            d.as_secs_f64() * 1e3 / runs as f64,
            s.op,
            s.node,
            plan.values[out].shape
        );
    }
    Ok(())
}
