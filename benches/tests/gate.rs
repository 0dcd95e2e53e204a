//! The gate's worker protocol end to end: `bench-check --worker` processes of this build timed
//! against each other, and a binary that does not serve workers refused with a message.

use std::path::Path;
use std::time::Duration;

use edgepack_benches::gate::{measure_versus, pairs, Worker};
use edgepack_benches::tracking::{judge, Verdict};

const EXE: &str = env!("CARGO_BIN_EXE_bench-check");

#[test]
fn two_workers_of_one_build_time_the_same_work_alike() {
    let start = || Worker::start("worker", Path::new(EXE), &["--kernels-only"]);
    let jobs = start().unwrap().jobs().to_vec();
    assert!(jobs.iter().any(|(n, f)| n == "gemm 256³ scalar" && *f == 2 * 256 * 256 * 256), "{jobs:?}");
    let (both, only) = pairs(&jobs, &jobs);
    assert_eq!((both.len(), only.len()), (jobs.len(), 0));
    let scalar = both.iter().position(|p| p.name == "gemm 256³ scalar").unwrap();
    let mut starts = 0;
    let mut pair = || {
        starts += 1;
        Ok((start()?, start()?))
    };
    let m = measure_versus(&mut pair, &both, &[scalar], 2, Duration::from_millis(600), &mut |_, _| {}).unwrap();
    assert_eq!(starts, 2, "a fresh pair per pass");
    assert!(m[scalar].ratio > 0.5 && m[scalar].ratio < 2.0, "{:?}", m[scalar]);
    assert!(m[scalar].rounds >= 14 && m[scalar].gflops > 0.0);
    // Not measured: placeholders.
    assert!(m.iter().enumerate().all(|(i, m)| i == scalar || m.rounds == 0));
    assert_ne!(judge(1.0, 0.0, &m[scalar]).2, Verdict::New);
}

#[test]
fn a_binary_that_serves_no_workers_is_refused_by_name() {
    // `echo --worker` answers with its arguments, as a bench-check from before the gate answers
    // with a usage error.
    let e = Worker::start("the parent's worker", Path::new("/bin/echo"), &[]).err().unwrap().to_string();
    assert!(e.contains("the parent's worker") && e.contains("does not serve `edgepack-bench-worker 1`"), "{e}");
    let e = Worker::start("old", Path::new("/bin/false"), &[]).err().unwrap().to_string();
    assert!(e.contains("old") && e.contains("ended"), "{e}");
    let e = Worker::start("missing", Path::new("/nonexistent/bench-check"), &[]).err().unwrap().to_string();
    assert!(e.contains("missing: cannot start"), "{e}");
}
