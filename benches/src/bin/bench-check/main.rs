//! `bench-check`: the short, fixed-time regression check of the tracked kernel and model figures.
//!
//! ```text
//! bench-check [--update] [--budget-secs S] [--kernels-only] [--class NAME]
//!             [--against BIN [--against-label LABEL]]
//!                                  measure, compare with the class's baseline, append history;
//!                                  with --against, also time this commit against BIN
//! bench-check --worker [--kernels-only]
//!                                  serve our side of every figure to another bench-check
//! bench-check --plot PATH          render the history of this machine class as SVG
//! ```
//! Two checks:
//! - **Drift** ([`drift`]): every kernel figure is a same-process, interleaved throughput ratio
//!   against a frozen reference (tract-linalg 0.23.9, pinned, or our own scalar set), see
//!   `edgepack_benches::tracking`; the model figures time whole zoo models against ONNX Runtime
//!   1.32 in a long-lived child process, interleaved round by round the same way
//!   (`edgepack_benches::ort_peer`). The ratios are compared with the class's baseline
//!   `benches/baselines/<machine-class>.json` and appended to `benches/history/<class>.jsonl`.
//!   A class without a baseline is not judged here.
//! - **Against another commit** ([`versus`], `--against`): the same work, ours alone, timed
//!   against a `bench-check` built from another commit (`ci/bench-check.sh` builds the parent),
//!   both as `--worker` processes (`edgepack_benches::gate`). Judges on any machine class.
//!
//! The model figures need the zoo and ORT's venv (`ci/fetch-zoo.sh`, `ci/fetch-models.sh`);
//! `--kernels-only` leaves them out on purpose. `--class` names the machine class instead of
//! this CPU's (to check what a machine without a baseline gets). Exits 1 when a figure
//! regressed, 2 on usage errors.

mod drift;
mod figures;
mod plot;
mod versus;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgepack_benches::gate::serve;
use edgepack_benches::ort_peer::default_python;
use edgepack_benches::tracking::{combine, history_line, machine_class, measure, Figure, Measurement};
use kernels::{kernel_set, select, KernelSetId, Target};
use serde_json::Value;

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

/// The regression check of the tracked kernel and model figures (see the module's doc).
#[derive(clap::Parser)]
#[command(name = "bench-check")]
struct Args {
    /// Rewrite this machine class's baseline with what is measured.
    #[arg(long)]
    update: bool,
    /// Leave the model figures out (they need the zoo and ONNX Runtime's venv).
    #[arg(long)]
    kernels_only: bool,
    /// Seconds of measurement per figure.
    #[arg(long = "budget-secs", value_name = "SECS", default_value = "4", value_parser = seconds)]
    budget: Duration,
    /// Render this machine class's history as SVG to this path, then exit.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Serve our side of every figure to another bench-check (on stdin and stdout).
    #[arg(long)]
    worker: bool,
    /// Also time this commit against this other commit's bench-check.
    #[arg(long)]
    against: Option<PathBuf>,
    /// What to call `--against` in the report.
    #[arg(long, requires = "against")]
    against_label: Option<String>,
    /// The machine class to judge as, instead of this CPU's.
    #[arg(long)]
    class: Option<String>,
}

/// A non-negative, finite number of seconds.
fn seconds(v: &str) -> Result<Duration, String> {
    v.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()).ok_or_else(|| format!("seconds, not `{v}`"))
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let best = select(&Target::host()).or_else(|_| kernel_set(KernelSetId::Scalar)).expect("scalar set");
    let scalar = kernel_set(KernelSetId::Scalar).expect("scalar set");
    let models = || {
        if args.kernels_only {
            return Vec::new();
        }
        figures::tracked_models(&*best).unwrap_or_else(|e| {
            fail(&format!("the tracked zoo models: {e} (ci/fetch-zoo.sh; --kernels-only leaves them out)"))
        })
    };
    if args.worker {
        let models = models();
        let mut jobs = figures::worker_jobs(&*best, &*scalar, &models);
        let stdin = std::io::stdin().lock();
        serve(&mut jobs, stdin, std::io::stdout().lock()).unwrap_or_else(|e| fail(&format!("worker: {e}")));
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    let class = args.class.clone().unwrap_or_else(|| machine_class(best.info().name));
    let baseline_path = root.join("baselines").join(format!("{class}.json"));
    let history_path = root.join("history").join(format!("{class}.jsonl"));
    if let Some(out) = &args.plot {
        let baseline: Option<Value> =
            std::fs::read_to_string(&baseline_path).ok().and_then(|s| serde_json::from_str(&s).ok());
        plot::plot(&history_path, baseline.as_ref(), out, &class).unwrap_or_else(|e| fail(&format!("plot: {e}")));
        println!("wrote {}", out.display());
        return;
    }

    let start = Instant::now();
    let models = models();
    let mut figures = figures::kernel_figures(&*best, &*scalar);
    figures.extend(figures::model_figures(&models, &default_python()));
    let d = drift::Drift {
        best: &*best,
        class,
        baseline_path,
        budget: args.budget,
        update: args.update,
        date: command_output("date", &["+%Y-%m-%d"]),
        commit: command_output("git", &["rev-parse", "--short", "HEAD"]),
    };
    let (measured, mut regressions) = drift::check(&d, &mut figures);
    drop(figures);
    let ratios: Vec<(String, f64)> = measured.iter().map(|(n, m)| (n.clone(), m.ratio)).collect();
    append_history(&history_path, &history_line(&d.date, &d.commit, &ratios));
    if let (Some(other), false) = (&args.against, args.update) {
        let label = args.against_label.clone().unwrap_or_else(|| other.display().to_string());
        let worker_args = if args.kernels_only { vec!["--kernels-only"] } else { Vec::new() };
        regressions += versus::check(&versus::Versus { other, label: &label, worker_args, budget: args.budget });
    }
    println!();
    println!("bench-check: total {:.0} s", start.elapsed().as_secs_f64());
    if regressions > 0 {
        std::process::exit(1);
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
