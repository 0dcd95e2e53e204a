//! Whole-model latency, same inputs, same run: edgepack (a plan on this host's best kernel
//! set) against ONNX Runtime (CPU provider, `benches/ort_model.py` in the pinned venv) and
//! tract-onnx, at 1 and 2 threads, for any model of `harness::models` (the PP-OCR pair,
//! `ocr`, the default) or of the zoo's manifest (`harness::zoo`: `zoo` for all, or names).
//!
//!     cargo run --release -p edgepack-benches --features onnx-peers --bin model-bench -- \
//!         [--models ocr|zoo|NAME,...] [--rounds 5] [--runs 5] [--threads 1,2] [--json FILE]
//!
//! The machine is noisy, so engines are interleaved: each round times `runs` runs of each
//! engine in turn, and the medians are over every run of every round.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use edgepack_benches::ort_peer::default_python;
use harness::models::{MODELS, ORT_VERSION};
use tract_onnx::prelude::*;

/// A model to time: its file, input shape and ONNX Runtime's folder (input and outputs).
struct Subject {
    name: String,
    path: PathBuf,
    shape: Vec<usize>,
    ort_dir: PathBuf,
}

/// `ocr` (the PP-OCR pair), `zoo` (every zoo model), or names from either, comma-separated.
fn subjects(list: &str) -> Result<Vec<Subject>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let ocr = MODELS.iter().filter(|m| name == "ocr" || m.name == name);
        let found: Vec<Subject> = ocr
            .map(|m| Subject { name: m.name.to_string(), path: m.path(), shape: m.shape(), ort_dir: m.ort_dir() })
            .collect();
        if !found.is_empty() {
            out.extend(found);
            continue;
        }
        let zoo = harness::zoo::all().map_err(|e| e.to_string())?;
        let found: Vec<Subject> = zoo
            .into_iter()
            .filter(|m| name == "zoo" || m.name == name)
            .map(|m| Subject { ort_dir: m.ort_dir(), name: m.name, path: m.path, shape: m.shape })
            .collect();
        if found.is_empty() {
            return Err(format!("no model `{name}` among the PP-OCR models and the zoo"));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Whole-model latency against ONNX Runtime and tract, interleaved.
#[derive(clap::Parser)]
#[command(name = "model-bench")]
struct Args {
    /// `ocr` (the PP-OCR pair), `zoo` (every zoo model), or model names, comma-separated.
    #[arg(long, default_value = "ocr")]
    models: String,
    /// Rounds: each times `--runs` runs of every engine in turn.
    #[arg(long, default_value_t = 5, value_parser = positive)]
    rounds: usize,
    /// Runs per engine and round.
    #[arg(long, default_value_t = 5, value_parser = positive)]
    runs: usize,
    /// Thread counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2], value_parser = positive)]
    threads: Vec<usize>,
    /// Write the rows as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The Python with ONNX Runtime (default: the pinned venv `ci/fetch-models.sh` makes).
    #[arg(long, default_value_os_t = default_python())]
    python: PathBuf,
}

/// A count of at least one.
fn positive(v: &str) -> Result<usize, String> {
    v.parse().ok().filter(|&n| n > 0).ok_or_else(|| format!("a positive count, not `{v}`"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ort_times(a: &Args, m: &Subject, threads: usize) -> Vec<f64> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ort_model.py");
    let out = Command::new(&a.python)
        .arg(script)
        .arg(&m.path)
        .args(["--input".as_ref(), m.ort_dir.join("input_0.npy").as_os_str()])
        .args(["--runs", &a.runs.to_string(), "--threads", &threads.to_string()])
        .output()
        .expect("run the ONNX Runtime script (ci/fetch-models.sh makes its venv)");
    assert!(out.status.success(), "ort_model.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from ort_model.py");
    v["times_ms"].as_array().expect("times_ms").iter().map(|t| t.as_f64().expect("ms")).collect()
}

fn main() -> TractResult<()> {
    let a = <Args as clap::Parser>::parse();
    let set = kernels::kernel_set(kernels::Target::host().kernel_set())?;
    println!(
        "host: {} | kernel set {} | ONNX Runtime {ORT_VERSION} | tract-onnx 0.23.9 | {} rounds × {} runs per engine",
        kernels::host_cpu_name(),
        set.info().name,
        a.rounds,
        a.runs
    );
    println!();
    println!("| model | input | GFLOP | threads | edgepack ms | ONNX Runtime ms | tract ms | edgepack / ORT | edgepack / tract |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for m in subjects(&a.models).map_err(TractError::msg)? {
        let prepared = model::prepare(&std::fs::read(&m.path)?, std::slice::from_ref(&m.shape))?;
        let plan = model::plan::build(&prepared.optimized, &*set)?;
        let (input, ort_out) = harness::models::read_case(&m.ort_dir).map_err(TractError::msg)?;
        let tract_input: TValue =
            tract_ndarray::ArrayD::from_shape_vec(m.shape.clone(), input.floats().expect("float").to_vec())?
                .into_tensor()
                .into_tvalue();
        let tract = tract_peer(&m, &tract_input, ort_out[0].floats().expect("float"));
        let engines = Engines { plan: &plan, input: &input, tract: tract.as_ref().map(|t| (t, &tract_input)) };
        for &threads in &a.threads {
            rows.push(measure(&a, &m, &engines, threads)?);
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rows)? + "\n")?;
    }
    Ok(())
}

/// tract's plan for `m`, its output checked against ONNX Runtime's (`expected`; the error on
/// stderr), or None where tract cannot run the model: tract is a peer where it runs it, and
/// its column reads n/a where it cannot.
fn tract_peer(m: &Subject, input: &TValue, expected: &[f32]) -> Option<Arc<TypedRunnableModel>> {
    let plan = (|| -> TractResult<_> {
        let p = tract_onnx::onnx()
            .model_for_path(&m.path)?
            .with_input_fact(0, f32::fact(&m.shape).into())?
            .into_optimized()?
            .into_runnable()?;
        let out = p.run(tvec!(input.clone()))?;
        let got = out[0].to_plain_array_view::<f32>()?.iter().copied().collect::<Vec<f32>>();
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
        eprintln!("{}: tract vs ORT max rel err {err:.1e}", m.name);
        Ok(p)
    })();
    plan.inspect_err(|e| eprintln!("{}: tract cannot run it ({e}); its column reads n/a", m.name)).ok()
}

/// What runs one model: our plan and its input, and tract's plan and input where it runs.
struct Engines<'a> {
    plan: &'a model::plan::Plan,
    input: &'a model::Tensor,
    tract: Option<(&'a Arc<TypedRunnableModel>, &'a TValue)>,
}

/// The three engines on `m` at `threads`, interleaved round by round; prints the table row and
/// returns it as JSON.
fn measure(a: &Args, m: &Subject, e: &Engines<'_>, threads: usize) -> TractResult<serde_json::Value> {
    let mut session = e.plan.session(threads)?;
    tract_linalg::multithread::set_default_executor(if threads > 1 {
        tract_linalg::multithread::Executor::multithread(threads)
    } else {
        tract_linalg::multithread::Executor::SingleThread
    });
    // One warm-up run each.
    session.run(std::slice::from_ref(e.input))?;
    if let Some((t, input)) = e.tract {
        t.run(tvec!((*input).clone()))?;
    }
    let (mut ours, mut ort, mut tract) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        for _ in 0..a.runs {
            let t = Instant::now();
            session.run(std::slice::from_ref(e.input))?;
            ours.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ort.extend(ort_times(a, m, threads));
        if let Some((tp, input)) = e.tract {
            for _ in 0..a.runs {
                let t = Instant::now();
                tp.run(tvec!((*input).clone()))?;
                tract.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let (o, r) = (median(&mut ours), median(&mut ort));
    let t = (!tract.is_empty()).then(|| median(&mut tract));
    let shape: Vec<String> = m.shape.iter().map(|d| d.to_string()).collect();
    let na = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    let gflop = e.plan.flops as f64 / 1e9;
    println!(
        "| {} | {} | {gflop:.2} | {threads} | {o:.2} | {r:.2} | {} | {:.2} | {} |",
        m.name,
        shape.join("×"),
        na(t),
        o / r,
        na(t.map(|t| o / t))
    );
    Ok(serde_json::json!({
        "model": m.name, "shape": m.shape, "gflop": gflop, "threads": threads,
        "edgepack_ms": o, "ort_ms": r, "tract_ms": t, "vs_ort": o / r, "vs_tract": t.map(|t| o / t),
        "edgepack_min_ms": ours.first(), "ort_min_ms": ort.first(), "tract_min_ms": tract.first(),
    }))
}
