//! The gate against another commit (`--against BIN`): this commit's work timed against the
//! same work built from another commit (the parent, in CI), interleaved in fresh pairs of
//! worker processes, judged by the same noise rule as the drift check with the other commit
//! as a baseline of ratio 1.

use std::path::Path;
use std::time::Duration;

use edgepack_benches::gate::{measure_versus, pairs, Worker};
use edgepack_benches::tracking::{judge, Measurement, Verdict};

use crate::drift::verdict_word;
use crate::fail;

/// What to compare with.
pub struct Versus<'a> {
    /// A `bench-check` binary built from the other commit.
    pub other: &'a Path,
    /// How the other commit is named in the table (`parent 9fded3b`).
    pub label: &'a str,
    /// Arguments for both workers (`--kernels-only`).
    pub worker_args: Vec<&'a str>,
    /// Time per figure, over all passes.
    pub budget: Duration,
}

/// Passes, each with a fresh pair of processes.
const PASSES: u32 = 3;

/// Runs the gate; returns the number of confirmed regressions. When the other commit's binary
/// does not serve workers (built before the gate), says so and judges nothing.
pub fn check(v: &Versus<'_>) -> usize {
    let this_exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("this binary's path: {e}")));
    let this_name = "this commit's worker";
    let other_name = format!("the worker of {}", v.label);
    println!();
    println!(
        "== against {} ({}): both built here, timed interleaved in {PASSES} fresh process pairs",
        v.label,
        v.other.display()
    );
    let this = Worker::start(this_name, &this_exe, &v.worker_args).unwrap_or_else(|e| fail(&e.to_string()));
    let other = match Worker::start(&other_name, v.other, &v.worker_args) {
        Ok(w) => w,
        Err(e) => {
            println!("NOT COMPARED with {}: {e}", v.label);
            return 0;
        }
    };
    let (this_jobs, other_jobs) = (this.jobs().to_vec(), other.jobs().to_vec());
    // The pair that listed the jobs times the first pass; every later pass starts its own.
    let mut first_pair = Some((this, other));
    let mut start = || -> std::io::Result<(Worker, Worker)> {
        match first_pair.take() {
            Some(pair) => Ok(pair),
            None => Ok((
                Worker::start(this_name, &this_exe, &v.worker_args)?,
                Worker::start(&other_name, v.other, &v.worker_args)?,
            )),
        }
    };
    let (both, only_here) = pairs(&this_jobs, &other_jobs);
    let mut progress = |pass: u32, name: &str| eprint!("\rpass {}/{PASSES}: {name:<40}", pass + 1);
    let all: Vec<usize> = (0..both.len()).collect();
    let first = measure_versus(&mut start, &both, &all, PASSES, v.budget, &mut progress)
        .unwrap_or_else(|e| fail(&e.to_string()));
    eprintln!();
    let verdict = |m: &Measurement| judge(1.0, 0.0, m);
    let suspects: Vec<usize> = all.iter().copied().filter(|&i| verdict(&first[i]).2 == Verdict::Regressed).collect();
    let mut again = vec![None; both.len()];
    if !suspects.is_empty() {
        eprintln!("re-measuring {} figure(s) that look regressed", suspects.len());
        let m = measure_versus(&mut start, &both, &suspects, PASSES, v.budget, &mut progress)
            .unwrap_or_else(|e| fail(&e.to_string()));
        eprintln!();
        for i in suspects {
            again[i] = Some(m[i].clone());
        }
    }
    println!();
    println!(
        "| figure (ratio = this commit's throughput / {}'s) | ratio | change | allowed drop | verdict | this GFLOP/s | other GFLOP/s |",
        v.label
    );
    println!("|---|---:|---:|---:|---|---:|---:|");
    let mut regressions = 0;
    for (i, p) in both.iter().enumerate() {
        let m = &first[i];
        let (change, allowed, mut v) = verdict(m);
        let mut again_txt = String::new();
        if let Some(a) = &again[i] {
            let (change, _, w) = verdict(a);
            v = w;
            again_txt = format!(" (re-measured {:.3}, {:+.1}%)", a.ratio, change * 100.0);
        }
        regressions += usize::from(v == Verdict::Regressed);
        println!(
            "| {} | {:.3} ±{:.1}% | {:+.1}% | {:.1}% | {}{again_txt} | {:.1} | {:.1} |",
            p.name,
            m.ratio,
            m.rel_spread * 100.0,
            change * 100.0,
            allowed * 100.0,
            if v == Verdict::Faster { "faster" } else { verdict_word(v) },
            m.gflops,
            m.reference_gflops
        );
    }
    for name in only_here {
        println!("| {name} | – | – | – | new ({} lacks it) | – | – |", v.label);
    }
    println!();
    if regressions > 0 {
        println!("{regressions} figure(s) REGRESSED against {} beyond max(5%, 3× standard error), confirmed by a second measurement", v.label);
    } else {
        println!("no regression against {}", v.label);
    }
    regressions
}
