//! The long-term drift check: this run's ratios against the machine class's committed baseline
//! (`benches/baselines/<class>.json`), each ratio taken against a frozen reference in the same
//! process, so that a baseline from weeks ago still compares.

use std::path::PathBuf;
use std::time::Duration;

use edgepack_benches::tracking::{baseline_figure, judge, to_json, Figure, Measurement, Verdict};
use kernels::{fma_peak_gflops, KernelSet};
use serde_json::{json, Value};

use crate::measure_passes;

/// Where the class's baseline and history live, and how to measure.
pub struct Drift<'a> {
    /// The set the figures' peak refers to.
    pub best: &'a dyn KernelSet,
    /// Machine class.
    pub class: String,
    /// `benches/baselines/<class>.json`.
    pub baseline_path: PathBuf,
    /// Time per figure.
    pub budget: Duration,
    /// Rewrite the baseline instead of judging.
    pub update: bool,
    /// Today, for the baseline (`YYYY-MM-DD`).
    pub date: String,
    /// This commit, for the baseline.
    pub commit: String,
}

/// Measures `figures`, judges them against the baseline (a figure that looks regressed is
/// measured again and counts only when the second measurement agrees), prints the table, and
/// writes the baseline when updating. Returns the (name, measurement) of every figure and the
/// number of confirmed regressions.
pub fn check(d: &Drift<'_>, figures: &mut [Figure<'_>]) -> (Vec<(String, Measurement)>, usize) {
    let baseline: Option<Value> =
        std::fs::read_to_string(&d.baseline_path).ok().and_then(|s| serde_json::from_str(&s).ok());
    announce(d, baseline.as_ref());
    // The FMA peak, probed before every figure; the best probe is the estimate (informational).
    // (`None` throughout for a set on portable vectors: it claims no ceiling.)
    let probe = || fma_peak_gflops(d.best, 1 << 21);
    let has_peak = probe().is_some();
    // Several passes over all figures, so that each figure's samples spread over the whole run;
    // the baseline takes more passes to estimate its spread well.
    let passes = if d.update { 5 } else { 3 };
    let mut peak = 0.0f64;
    let all: Vec<usize> = (0..figures.len()).collect();
    let first = measure_passes(figures, &all, passes, d.budget, &mut || {
        peak = peak.max(probe().unwrap_or(0.0));
    });
    let base_of = |name: &str| baseline.as_ref().filter(|_| !d.update).and_then(|b| baseline_figure(b, name));
    let verdict_of = |name: &str, m: &Measurement| base_of(name).map(|(ratio, se)| judge(ratio, se, m).2);
    // A figure that looks regressed is measured again, on its own, for as long as the first
    // measurement took; it counts as regressed only when the second measurement agrees
    // (between-run noise of memory-bound shapes on shared machines exceeds the within-run spread).
    let suspects: Vec<usize> =
        all.iter().copied().filter(|&i| verdict_of(&figures[i].name, &first[i]) == Some(Verdict::Regressed)).collect();
    let mut confirmation: Vec<Option<Measurement>> = vec![None; figures.len()];
    if !suspects.is_empty() {
        eprintln!("re-measuring {} figure(s) that look regressed", suspects.len());
        let again = measure_passes(figures, &suspects, passes, d.budget, &mut || {});
        for i in suspects {
            confirmation[i] = Some(again[i].clone());
        }
    }
    println!();
    println!("| figure (ratio = our throughput / reference's, same process, interleaved) | baseline | now | change | allowed drop | verdict | ours GFLOP/s | ref GFLOP/s | % peak |");
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|");
    let mut regressions = 0;
    let mut measured = Vec::new();
    let best_name = d.best.info().name;
    let is_best = |name: &str| !name.starts_with("model ") && name.contains(&format!(" {best_name}/"));
    for (i, fig) in figures.iter().enumerate() {
        let m = &first[i];
        let pct =
            if has_peak && is_best(&fig.name) { format!("{:.0}%", m.gflops / peak * 100.0) } else { "–".into() };
        let verdict = row(&fig.name, m, base_of(&fig.name), confirmation[i].as_ref(), &pct);
        regressions += usize::from(verdict == Verdict::Regressed);
        measured.push((fig.name.clone(), m.clone()));
    }
    println!();
    println!("FMA peak of {best_name} this run: {peak:.1} GFLOP/s");
    if d.update {
        write_baseline(d, &measured, has_peak.then_some(peak), &is_best);
    } else if regressions > 0 {
        println!("{regressions} figure(s) REGRESSED against the baseline beyond max(5%, 3× combined standard error), confirmed by a second measurement");
    } else if baseline.is_some() {
        println!("no regression against the baseline");
    }
    (measured, regressions)
}

/// The run's first lines: the machine class and the baseline it is judged against, if any.
fn announce(d: &Drift<'_>, baseline: Option<&Value>) {
    println!("bench-check: machine class {} ({}), {:?} per figure", d.class, kernels::host_cpu_name(), d.budget);
    match (baseline, d.update) {
        (_, true) => println!("updating the baseline {}", d.baseline_path.display()),
        (Some(b), false) => println!(
            "baseline {} ({} at {})",
            d.baseline_path.display(),
            b["date"].as_str().unwrap_or("?"),
            b["commit"].as_str().unwrap_or("?")
        ),
        (None, false) => println!(
            "NO BASELINE for this machine class: the drift is not judged (run with --update); \
             the gate against another commit (--against) still is"
        ),
    }
}

/// Prints one figure's row: its measurement `m` against the baseline's (ratio, standard error)
/// where there is one, the re-measurement's verdict replacing the first where the figure was
/// measured again. Returns the verdict.
fn row(name: &str, m: &Measurement, base: Option<(f64, f64)>, again: Option<&Measurement>, pct: &str) -> Verdict {
    let (base_txt, change_txt, allowed_txt, mut verdict) = match base {
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
    if let (Some(again), Some((ratio, se))) = (again, base) {
        let (change, _, v) = judge(ratio, se, again);
        verdict = v;
        verdict_txt = format!(" (re-measured {:.3}, {:+.1}%)", again.ratio, change * 100.0);
    }
    println!(
        "| {name} | {base_txt} | {:.3} ±{:.1}% | {change_txt} | {allowed_txt} | {}{verdict_txt} | {:.1} | {:.1} | {pct} |",
        m.ratio,
        m.rel_spread * 100.0,
        verdict_word(verdict),
        m.gflops,
        m.reference_gflops
    );
    verdict
}

/// The verdict column's word.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Faster => "faster (consider --update)",
        Verdict::Regressed => "REGRESSED",
        Verdict::New => "new",
    }
}

fn write_baseline(
    d: &Drift<'_>,
    measured: &[(String, Measurement)],
    peak: Option<f64>,
    is_best: &dyn Fn(&str) -> bool,
) {
    let figures: serde_json::Map<String, Value> = measured
        .iter()
        .map(|(n, m)| {
            let pct = peak.filter(|_| is_best(n)).map(|p| m.gflops / p * 100.0);
            (n.clone(), to_json(m, pct))
        })
        .collect();
    let doc = json!({
        "machine_class": d.class,
        "cpu": kernels::host_cpu_name(),
        "isa": d.best.info().isa,
        "date": d.date,
        "commit": d.commit,
        "fma_peak_gflops": peak.unwrap_or(0.0),
        "figures": figures,
    });
    std::fs::create_dir_all(d.baseline_path.parent().expect("dir")).expect("baseline dir");
    std::fs::write(&d.baseline_path, serde_json::to_string_pretty(&doc).expect("JSON") + "\n").expect("write baseline");
    println!("baseline written: {}", d.baseline_path.display());
}
