//! `bench-check`: the short, fixed-time regression check of the tracked kernel and model figures.
//!
//! ```text
//! bench-check [--update] [--budget-secs S] [--kernels-only]
//!                                              measure, compare with the baseline, append history
//! bench-check --plot PATH                      render the history of this machine class as SVG
//! ```
//! Every kernel figure is a same-process, interleaved throughput ratio against a frozen
//! reference (tract-linalg 0.23.9, pinned, or our own scalar set), see
//! `edgepack_benches::tracking`. The model figures time whole zoo models ([`TRACKED_MODELS`])
//! against ONNX Runtime 1.32 in a long-lived child process, interleaved round by round the
//! same way (`edgepack_benches::ort_peer`); they need the zoo and ORT's venv (`ci/fetch-zoo.sh`,
//! `ci/fetch-models.sh`), and `--kernels-only` leaves them out on purpose. The
//! baseline is `benches/baselines/<machine-class>.json`; history is appended to
//! `benches/history/<machine-class>.jsonl`. Exits 1 when a figure regressed, 2 on usage errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgepack_benches::ort_peer::{default_python, OrtPeer};
use edgepack_benches::peers::{ours, Problem, Tract};
use edgepack_benches::tracking::{
    baseline_figure, combine, history_line, judge, machine_class, measure, to_json, Figure, Measurement, Verdict,
    Workload,
};
use edgepack_benches::{gemm_flops, CONV1X1_SHAPES};
use kernels::{fma_peak_gflops, kernel_set, select, KernelSet, KernelSetId, MatRef, Parallelism, Target};
use plotters::prelude::*;
use serde_json::{json, Value};

/// The tracked products: (label, m, n, k).
fn tracked_shapes() -> Vec<(String, usize, usize, usize)> {
    let mut v = vec![("gemm 256³".to_owned(), 256, 256, 256), ("gemm 1024³".to_owned(), 1024, 1024, 1024)];
    for label in ["160x160_16-64", "48x192_128-256"] {
        let s = CONV1X1_SHAPES.iter().find(|s| s.label == label).expect("listed conv shape");
        v.push((format!("conv1x1 {}", s.label), s.m, s.n, s.k));
    }
    v
}

fn ours_vs_tract<'a>(set: &'a dyn KernelSet, label: &str, (m, n, k): (usize, usize, usize)) -> Figure<'a> {
    let mut p = Problem::new(m, n, k);
    let mut tract = Tract::new(&p);
    let packed = set.pack_b(MatRef::row_major(&p.b, k, n).expect("B"));
    Figure {
        name: format!("{label} {}/tract", set.info().name),
        flops: gemm_flops(m, n, k),
        ours: Workload::Call(Box::new(move || ours(set, &mut p, &packed, Parallelism::Sequential))),
        reference: Workload::Call(Box::new(move || tract.run(m, n))),
    }
}

fn ours_vs_set<'a>(set: &'a dyn KernelSet, reference: &'a dyn KernelSet, label: &str, n: usize) -> Figure<'a> {
    let (mut p, mut q) = (Problem::new(n, n, n), Problem::new(n, n, n));
    let packed = set.pack_b(MatRef::row_major(&p.b, n, n).expect("B"));
    let ref_packed = reference.pack_b(MatRef::row_major(&q.b, n, n).expect("B"));
    Figure {
        name: format!("{label} {}/{}", set.info().name, reference.info().name),
        flops: gemm_flops(n, n, n),
        ours: Workload::Call(Box::new(move || ours(set, &mut p, &packed, Parallelism::Sequential))),
        reference: Workload::Call(Box::new(move || ours(reference, &mut q, &ref_packed, Parallelism::Sequential))),
    }
}

/// Zoo models tracked whole, with the thread counts they are timed at: a compute-bound CNN
/// (and its two-thread scaling), depthwise-separable blocks, and SiLU/squeeze-excitation
/// epilogues with their vectorized transcendentals.
const TRACKED_MODELS: &[(&str, &[usize])] = &[("resnet18", &[1, 2]), ("mobilenet_v2", &[1]), ("efficientnet_b0", &[1])];

/// A tracked zoo model, planned for `set`, with its input and ONNX Runtime's outputs.
struct TrackedModel {
    name: String,
    threads: &'static [usize],
    path: PathBuf,
    input_file: PathBuf,
    plan: model::plan::Plan,
    input: model::Tensor,
    expected: model::Tensor,
}

fn tracked_models(set: &dyn KernelSet) -> Result<Vec<TrackedModel>, Box<dyn std::error::Error>> {
    let zoo = harness::zoo::all()?;
    let mut out = Vec::new();
    for &(name, threads) in TRACKED_MODELS {
        let m = zoo.iter().find(|m| m.name == name).ok_or_else(|| format!("the zoo has no model `{name}`"))?;
        let prepared = model::prepare(&std::fs::read(&m.path)?, std::slice::from_ref(&m.shape))?;
        let plan = model::plan::build(&prepared.optimized, set)?;
        let ort_dir = m.ort_dir();
        let (input, outputs) = harness::models::read_case(&ort_dir)?;
        let expected = outputs.into_iter().next().ok_or_else(|| format!("{name}: no ONNX Runtime output"))?;
        out.push(TrackedModel {
            name: name.to_owned(),
            threads,
            path: m.path.clone(),
            input_file: ort_dir.join("input_0.npy"),
            plan,
            input,
            expected,
        });
    }
    Ok(out)
}

/// `model NAME NT SET/ort-VERSION`: the model on our best set against ONNX Runtime at the same
/// thread count. Our first output is checked against ORT's before anything is timed. Each side
/// runs once untimed before each timed block: a model is timed as it runs in a camera loop,
/// warm, not straight after the other engine has flushed the caches.
fn ours_vs_ort<'a>(tracked: &'a TrackedModel, threads: usize, python: &Path) -> Figure<'a> {
    fn failed(name: &str, threads: usize, e: &dyn std::fmt::Display) -> ! {
        fail(&format!("model {name} at {threads} thread(s): {e}"))
    }
    let mut session = tracked.plan.session(threads).unwrap_or_else(|e| failed(&tracked.name, threads, &e));
    let out = session.run(std::slice::from_ref(&tracked.input)).unwrap_or_else(|e| failed(&tracked.name, threads, &e));
    let (got, want) = (out[0].floats().unwrap_or_default(), tracked.expected.floats().unwrap_or_default());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    if got.len() != want.len() || err.is_nan() || err > 1e-3 {
        failed(
            &tracked.name,
            threads,
            &format!(
                "differs from ONNX Runtime (max relative error {err:.1e}, {} vs {} values)",
                got.len(),
                want.len()
            ),
        );
    }
    let mut peer = OrtPeer::start(python, &tracked.path, &tracked.input_file, threads)
        .unwrap_or_else(|e| failed(&tracked.name, threads, &e));
    let input = &tracked.input;
    Figure {
        name: format!(
            "model {} {threads}T {}/ort-{}",
            tracked.name,
            tracked.plan.kernel_name,
            harness::models::ORT_VERSION
        ),
        flops: tracked.plan.flops,
        ours: Workload::Timed(Box::new(move |reps| {
            let mut run = || {
                session.run(std::slice::from_ref(input)).unwrap_or_else(|e| fail(&format!("model run: {e}")));
            };
            run();
            let start = Instant::now();
            (0..reps).for_each(|_| run());
            start.elapsed().as_secs_f64()
        })),
        reference: Workload::Timed(Box::new(move |reps| peer.run(reps).unwrap_or_else(|e| fail(&e.to_string())))),
    }
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned())
}

fn fail(msg: &str) -> ! {
    eprintln!("bench-check: {msg}");
    std::process::exit(2)
}

struct Args {
    update: bool,
    kernels_only: bool,
    budget: Duration,
    plot: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args { update: false, kernels_only: false, budget: Duration::from_secs(4), plot: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--update" => args.update = true,
            "--kernels-only" => args.kernels_only = true,
            "--budget-secs" => {
                let s: f64 =
                    it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| fail("--budget-secs needs seconds"));
                args.budget = Duration::from_secs_f64(s);
            }
            "--plot" => args.plot = Some(it.next().unwrap_or_else(|| fail("--plot needs a path")).into()),
            other => fail(&format!("unknown argument {other}; see the doc comment of bench-check")),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    let best = select(&Target::host()).or_else(|_| kernel_set(KernelSetId::Scalar)).expect("scalar set");
    let scalar = kernel_set(KernelSetId::Scalar).expect("scalar set");
    let class = machine_class(best.info().name);
    let baseline_path = root.join("baselines").join(format!("{class}.json"));
    let history_path = root.join("history").join(format!("{class}.jsonl"));
    if let Some(out) = &args.plot {
        let baseline: Option<Value> =
            std::fs::read_to_string(&baseline_path).ok().and_then(|s| serde_json::from_str(&s).ok());
        plot(&history_path, baseline.as_ref(), out, &class).unwrap_or_else(|e| fail(&format!("plot: {e}")));
        println!("wrote {}", out.display());
        return;
    }

    let start = Instant::now();
    // The FMA peak, probed before every figure; the best probe is the estimate (informational).
    // (`None` throughout for a set on portable vectors: it claims no ceiling.)
    let probe = || fma_peak_gflops(&*best, 1 << 21);
    let has_peak = probe().is_some();

    let models = if args.kernels_only {
        Vec::new()
    } else {
        tracked_models(&*best).unwrap_or_else(|e| {
            fail(&format!("the tracked zoo models: {e} (ci/fetch-zoo.sh; --kernels-only leaves them out)"))
        })
    };
    let python = default_python();
    let mut figures: Vec<Figure<'_>> =
        tracked_shapes().into_iter().map(|(label, m, n, k)| ours_vs_tract(&*best, &label, (m, n, k))).collect();
    if best.info().id != KernelSetId::Scalar {
        figures.push(ours_vs_set(&*best, &*scalar, "gemm 512³", 512));
    }
    figures.push(ours_vs_tract(&*scalar, "gemm 256³", (256, 256, 256)));
    for m in &models {
        for &threads in m.threads {
            figures.push(ours_vs_ort(m, threads, &python));
        }
    }

    let baseline: Option<Value> =
        std::fs::read_to_string(&baseline_path).ok().and_then(|s| serde_json::from_str(&s).ok());
    println!("bench-check: machine class {class} ({}), {:?} per figure", kernels::host_cpu_name(), args.budget);
    match (&baseline, args.update) {
        (_, true) => println!("updating the baseline {}", baseline_path.display()),
        (Some(b), false) => println!(
            "baseline {} ({} at {})",
            baseline_path.display(),
            b["date"].as_str().unwrap_or("?"),
            b["commit"].as_str().unwrap_or("?")
        ),
        (None, false) => {
            println!("NO BASELINE for this machine class: figures are printed, nothing is judged (run with --update)")
        }
    }
    println!();
    println!("| figure (ratio = our throughput / reference's, same process, interleaved) | baseline | now | change | allowed drop | verdict | ours GFLOP/s | ref GFLOP/s | % peak |");
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|");
    let mut measured: Vec<(String, Measurement)> = Vec::new();
    // Several passes over all figures, so that each figure's samples spread over the whole run;
    // the baseline takes more passes to estimate its spread well.
    let passes = if args.update { 5 } else { 3 };
    let mut peak = 0.0f64;
    let all: Vec<usize> = (0..figures.len()).collect();
    let first = measure_passes(&mut figures, &all, passes, args.budget, &mut || {
        peak = peak.max(probe().unwrap_or(0.0));
    });
    let base_of = |name: &str| baseline.as_ref().filter(|_| !args.update).and_then(|b| baseline_figure(b, name));
    let verdict_of = |name: &str, m: &Measurement| base_of(name).map(|(ratio, se)| judge(ratio, se, m).2);
    // A figure that looks regressed is measured again, on its own, for as long as the first
    // measurement took; it counts as regressed only when the second measurement agrees
    // (between-run noise of memory-bound shapes on shared machines exceeds the within-run spread).
    let suspects: Vec<usize> =
        all.iter().copied().filter(|&i| verdict_of(&figures[i].name, &first[i]) == Some(Verdict::Regressed)).collect();
    let mut confirmation: Vec<Option<Measurement>> = vec![None; figures.len()];
    if !suspects.is_empty() {
        eprintln!("re-measuring {} figure(s) that look regressed", suspects.len());
        let again = measure_passes(&mut figures, &suspects, passes, args.budget, &mut || {});
        for i in suspects {
            confirmation[i] = Some(again[i].clone());
        }
    }
    let mut regressions = 0;
    let mut rows = Vec::new();
    for (i, fig) in figures.iter().enumerate() {
        let m = &first[i];
        let (base_txt, change_txt, allowed_txt, mut verdict) = match base_of(&fig.name) {
            Some((ratio, se)) => {
                let (change, allowed, v) = judge(ratio, se, m);
                (
                    format!("{ratio:.3} ±{:.1}%", se * 100.0),
                    format!("{:+.1}%", change * 100.0),
                    format!("{:.1}%", allowed * 100.0),
                    v,
                )
            }
            None => ("–".into(), "–".into(), "–".into(), Verdict::New),
        };
        let mut verdict_txt = String::new();
        if let (Some(again), Some((ratio, se))) = (&confirmation[i], base_of(&fig.name)) {
            let (change, _, v) = judge(ratio, se, again);
            verdict = v;
            verdict_txt = format!(" (re-measured {:.3}, {:+.1}%)", again.ratio, change * 100.0);
        }
        if verdict == Verdict::Regressed {
            regressions += 1;
        }
        rows.push((
            format!(
                "| {} | {base_txt} | {:.3} ±{:.1}% | {change_txt} | {allowed_txt} | {}{verdict_txt} | {:.1} | {:.1} |",
                fig.name,
                m.ratio,
                m.rel_spread * 100.0,
                match verdict {
                    Verdict::Ok => "ok",
                    Verdict::Faster => "faster (consider --update)",
                    Verdict::Regressed => "REGRESSED",
                    Verdict::New => "new",
                },
                m.gflops,
                m.reference_gflops
            ),
            m.gflops,
            !fig.name.starts_with("model ")
                && (fig.name.starts_with(&format!("{} ", best.info().name))
                    || fig.name.contains(&format!(" {}/", best.info().name))),
        ));
        measured.push((fig.name.clone(), m.clone()));
    }
    // The peak is known only after every probe: print the rows now.
    for (row, gflops, ours_is_best) in rows {
        let pct = if has_peak && ours_is_best { format!("{:.0}%", gflops / peak * 100.0) } else { "–".into() };
        println!("{row} {pct} |");
    }
    println!();
    println!(
        "FMA peak of {} this run: {peak:.1} GFLOP/s; total {:.0} s",
        best.info().name,
        start.elapsed().as_secs_f64()
    );

    let date = command_output("date", &["+%Y-%m-%d"]);
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let ratios: Vec<(String, f64)> = measured.iter().map(|(n, m)| (n.clone(), m.ratio)).collect();
    append_history(&history_path, &history_line(&date, &commit, &ratios));
    if args.update {
        let figures: serde_json::Map<String, Value> = measured
            .iter()
            .map(|(n, m)| {
                let pct = (has_peak && !n.starts_with("model ") && n.contains(&format!(" {}/", best.info().name)))
                    .then(|| m.gflops / peak * 100.0);
                (n.clone(), to_json(m, pct))
            })
            .collect();
        let doc = json!({
            "machine_class": class,
            "cpu": kernels::host_cpu_name(),
            "isa": best.info().isa,
            "date": date,
            "commit": commit,
            "fma_peak_gflops": peak,
            "figures": figures,
        });
        std::fs::create_dir_all(baseline_path.parent().expect("dir")).expect("baseline dir");
        std::fs::write(&baseline_path, serde_json::to_string_pretty(&doc).expect("JSON") + "\n")
            .expect("write baseline");
        println!("baseline written: {}", baseline_path.display());
    } else if regressions > 0 {
        println!("{regressions} figure(s) REGRESSED beyond max(5%, 3× combined standard error), confirmed by a second measurement");
        std::process::exit(1);
    } else if baseline.is_some() {
        println!("no regression");
    }
}

/// Measures the figures `which` in `passes` interleaved passes of `budget / passes` each, calling
/// `before_each` before every measurement; returns one combined measurement per figure (indices
/// not in `which` hold a placeholder).
fn measure_passes(
    figures: &mut [Figure<'_>],
    which: &[usize],
    passes: u32,
    budget: Duration,
    before_each: &mut dyn FnMut(),
) -> Vec<Measurement> {
    let mut per_pass: Vec<Vec<Measurement>> = vec![Vec::new(); figures.len()];
    for pass in 0..passes {
        for &i in which {
            eprint!("\rpass {}/{passes}: {:<40}", pass + 1, figures[i].name);
            before_each();
            per_pass[i].push(measure(&mut figures[i], budget / passes));
        }
    }
    eprintln!();
    per_pass.iter().map(|p| if p.is_empty() { Measurement::default() } else { combine(p) }).collect()
}

fn append_history(path: &Path, line: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("history dir");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("history file");
    writeln!(f, "{line}").expect("append history");
}

/// Renders each figure's ratio over the history runs as one line, relative to the baseline's
/// ratio when there is one (1.0 = baseline; the dashed line is the 5 % regression floor).
fn plot(history: &Path, baseline: Option<&Value>, out: &Path, class: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(history).map_err(|e| format!("{}: {e}", history.display()))?;
    let runs: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if runs.is_empty() {
        return Err(format!("{} has no runs", history.display()).into());
    }
    let mut names: Vec<String> = runs
        .iter()
        .flat_map(|r| r["figures"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())
        .collect();
    names.sort();
    names.dedup();
    let scale = |name: &str| baseline.and_then(|b| baseline_figure(b, name)).map_or(1.0, |(r, _)| r);
    let value = |run: &Value, name: &str| run["figures"][name].as_f64().map(|v| v / scale(name));
    let values = runs.iter().flat_map(|r| names.iter().filter_map(move |n| value(r, n)));
    let (lo, hi) = values.fold((0.95f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let root = SVGBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            if baseline.is_some() {
                format!("tracked ratios relative to the baseline, {class}")
            } else {
                format!("tracked ratios (ours / reference), {class}")
            },
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..(runs.len().max(2) - 1) as f64, (lo - 0.05)..(hi + 0.05))?;
    chart
        .configure_mesh()
        .x_labels(runs.len().clamp(2, 20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("run (benches/history, oldest first)")
        .y_desc(if baseline.is_some() { "ratio / baseline ratio" } else { "throughput ratio" })
        .draw()?;
    if baseline.is_some() {
        let last = (runs.len().max(2) - 1) as f64;
        chart.draw_series(DashedLineSeries::new(vec![(0.0, 0.95), (last, 0.95)], 6, 4, BLACK.stroke_width(1)))?;
    }
    for (i, name) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> =
            runs.iter().enumerate().filter_map(|(x, r)| value(r, name).map(|y| (x as f64, y))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
