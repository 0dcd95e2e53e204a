//! The commit-against-commit gate: this commit's kernels and models timed against its parent's
//! (or any other commit's), both built in the same run and on the same machine, so that it
//! judges on a machine class that has no baseline.
//!
//! Each side is a `bench-check --worker` process built from its commit. A worker lists the
//! jobs it can time (a kernel call or a model run, ours only: no peer) and then times the one
//! asked for, `reps` times, and answers the seconds ([`serve`]). The judge ([`measure_versus`])
//! pairs the two workers' jobs by name and alternates the sides round by round as every other
//! figure does ([`crate::tracking::measure`]), in several passes, each with a fresh pair of
//! processes: process-level effects (placement, allocation, the neighbour's load at that
//! moment) land in the spread between passes instead of in a biased median.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use crate::line_child::LineChild;
use crate::tracking::{combine, measure, Figure, Measurement, Workload};

/// The first line a worker writes; a binary that predates the gate writes something else.
pub const PROTOCOL: &str = "edgepack-bench-worker 1";

/// One job a worker times: its figure name, its flop count and the work.
pub struct Job<'a> {
    /// Figure name, the same on both sides when the work is the same (`gemm 256³ avx512`).
    pub name: String,
    /// Floating-point operations per repetition.
    pub flops: u64,
    /// The work.
    pub work: Workload<'a>,
}

/// Serves `jobs`: writes [`PROTOCOL`] and the job list (a count, then `flops<TAB>name` per line),
/// then answers each request `INDEX REPS` with the seconds that job took for `REPS`
/// repetitions, until the input ends.
pub fn serve(jobs: &mut [Job<'_>], input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    writeln!(output, "{PROTOCOL} {}", jobs.len())?;
    for job in jobs.iter() {
        writeln!(output, "{}\t{}", job.flops, job.name)?;
    }
    output.flush()?;
    for line in input.lines() {
        let line = line?;
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad request `{line}`"));
        let (index, reps) = line.trim().split_once(' ').ok_or_else(bad)?;
        let index: usize = index.parse().map_err(|_| bad())?;
        let reps: usize = reps.parse().map_err(|_| bad())?;
        let job = jobs.get_mut(index).ok_or_else(bad)?;
        writeln!(output, "{:e}", job.work.seconds(reps.max(1)))?;
        output.flush()?;
    }
    Ok(())
}

/// A running worker and the jobs it offers.
pub struct Worker {
    child: LineChild,
    jobs: Vec<(String, u64)>,
}

impl Worker {
    /// Starts `exe --worker ARGS` and reads its job list. A binary that does not speak
    /// [`PROTOCOL`] (one built from a commit before the gate) is an error saying so.
    pub fn start(what: &str, exe: &Path, args: &[&str]) -> io::Result<Worker> {
        let mut command = Command::new(exe);
        command.arg("--worker").args(args);
        let mut child = LineChild::spawn(what, command)?;
        let header = child.read_line().map_err(|e| {
            child.error(format_args!("does not serve the bench worker protocol (built before the gate?): {e}"))
        })?;
        let count = header
            .strip_prefix(PROTOCOL)
            .and_then(|n| n.trim().parse::<usize>().ok())
            .ok_or_else(|| child.error(format_args!("does not serve `{PROTOCOL}`: said `{header}`")))?;
        let mut jobs = Vec::with_capacity(count);
        for _ in 0..count {
            let line = child.read_line()?;
            let job = line.split_once('\t').and_then(|(f, n)| Some((n.to_owned(), f.parse().ok()?)));
            jobs.push(job.ok_or_else(|| child.error(format_args!("bad job line `{line}`")))?);
        }
        Ok(Worker { child, jobs })
    }

    /// The jobs offered: (figure name, flops).
    pub fn jobs(&self) -> &[(String, u64)] {
        &self.jobs
    }

    /// Seconds that `reps` repetitions of job `index` took.
    pub fn time(&mut self, index: usize, reps: usize) -> io::Result<f64> {
        self.child.ask_seconds(&format!("{index} {reps}"))
    }
}

/// A job both workers offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Figure name.
    pub name: String,
    /// Flops per repetition (this commit's count).
    pub flops: u64,
    /// Index of the job in this commit's worker.
    pub this: usize,
    /// Index of the job in the other commit's worker.
    pub other: usize,
}

/// The jobs both lists hold, in this commit's order, and the names only this commit has.
pub fn pairs(this: &[(String, u64)], other: &[(String, u64)]) -> (Vec<Pair>, Vec<String>) {
    let (mut both, mut only) = (Vec::new(), Vec::new());
    for (i, (name, flops)) in this.iter().enumerate() {
        match other.iter().position(|(n, _)| n == name) {
            Some(j) => both.push(Pair { name: name.clone(), flops: *flops, this: i, other: j }),
            None => only.push(name.clone()),
        }
    }
    (both, only)
}

/// Measures the pairs `which` (indices into `pairs`) in `passes` passes of `budget / passes`
/// each, each pass with a fresh pair of workers from `start` (this commit's, the other's).
/// Returns one measurement per pair (a placeholder for those not in `which`); its ratio is this
/// commit's throughput over the other's. `progress` is told each figure as it starts.
pub fn measure_versus(
    start: &mut dyn FnMut() -> io::Result<(Worker, Worker)>,
    pairs: &[Pair],
    which: &[usize],
    passes: u32,
    budget: Duration,
    progress: &mut dyn FnMut(u32, &str),
) -> io::Result<Vec<Measurement>> {
    let mut per_pass: Vec<Vec<Measurement>> = vec![Vec::new(); pairs.len()];
    for pass in 0..passes {
        let (this, other) = start()?;
        let (this, other) = (Rc::new(RefCell::new(this)), Rc::new(RefCell::new(other)));
        let failure: Rc<RefCell<Option<io::Error>>> = Rc::default();
        for &i in which {
            let p = &pairs[i];
            progress(pass, &p.name);
            let side = |w: &Rc<RefCell<Worker>>, index: usize| {
                let (w, failure) = (w.clone(), failure.clone());
                Workload::Timed(Box::new(move |reps| {
                    w.borrow_mut().time(index, reps).unwrap_or_else(|e| {
                        failure.borrow_mut().get_or_insert(e);
                        f64::NAN
                    })
                }))
            };
            let mut fig = Figure {
                name: p.name.clone(),
                flops: p.flops,
                ours: side(&this, p.this),
                reference: side(&other, p.other),
            };
            let m = measure(&mut fig, budget / passes);
            if let Some(e) = failure.borrow_mut().take() {
                return Err(e);
            }
            per_pass[i].push(m);
        }
    }
    Ok(per_pass.iter().map(|p| if p.is_empty() { Measurement::default() } else { combine(p) }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_lists_its_jobs_and_times_the_one_asked_for() {
        let calls = std::cell::Cell::new(0);
        let mut jobs = vec![
            Job { name: "a".into(), flops: 10, work: Workload::Timed(Box::new(|reps| reps as f64 * 0.5)) },
            Job { name: "b c".into(), flops: 20, work: Workload::Call(Box::new(|| calls.set(calls.get() + 1))) },
        ];
        let mut out = Vec::new();
        serve(&mut jobs, &b"0 4\n1 3\n"[..], &mut out).unwrap();
        drop(jobs);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..3], [format!("{PROTOCOL} 2").as_str(), "10\ta", "20\tb c"]);
        assert_eq!(lines[3].parse::<f64>().unwrap(), 2.0);
        assert!(lines[4].parse::<f64>().unwrap() >= 0.0);
        assert_eq!(calls.get(), 3);
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn a_bad_request_is_an_error_naming_it() {
        let mut jobs = vec![Job { name: "a".into(), flops: 1, work: Workload::Timed(Box::new(|_| 1.0)) }];
        for bad in ["7 1", "x 1", "0", "0 -1"] {
            let e = serve(&mut jobs, format!("{bad}\n").as_bytes(), io::sink()).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn jobs_pair_by_name_and_new_ones_are_listed() {
        let this = [("x".to_owned(), 1), ("y".to_owned(), 2), ("z".to_owned(), 3)];
        let other = [("z".to_owned(), 3), ("x".to_owned(), 1)];
        let (both, only) = pairs(&this, &other);
        assert_eq!(
            both,
            [
                Pair { name: "x".into(), flops: 1, this: 0, other: 1 },
                Pair { name: "z".into(), flops: 3, this: 2, other: 0 }
            ]
        );
        assert_eq!(only, ["y"]);
    }
}
