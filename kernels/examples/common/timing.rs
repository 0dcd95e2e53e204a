//! What the timing examples share: the kernel set named on the command line, and the report —
//! per candidate, the median rate and the median of each round's rate over that round's FMA
//! peak (so that the machine's drifting speed cancels).

use kernels::KernelSetId;

/// The set named by the first argument (`scalar`, `avx512`; anything else: AVX2).
pub fn set_from_arg(arg: Option<&str>) -> KernelSetId {
    match arg {
        Some("scalar") => KernelSetId::Scalar,
        Some("avx512") => KernelSetId::Avx512,
        _ => KernelSetId::Avx2,
    }
}

/// Prints one line per candidate (`labels[i]`, timed `times[i]` seconds per round) for work of
/// `flops`, then the median of the per-round FMA peaks.
pub fn report(labels: &[String], times: &[Vec<f64>], peaks: &[f64], flops: f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let width = labels.iter().map(|l| l.len()).max().unwrap_or(0);
    for (label, t) in labels.iter().zip(times) {
        let ratios: Vec<f64> = t.iter().zip(peaks).map(|(t, p)| flops / t / 1e9 / p).collect();
        let gflops = median(t.iter().map(|t| flops / t / 1e9).collect());
        println!(
            "{label:>width$}: median {gflops:6.1} GFLOP/s, {:5.1}% of the FMA peak measured in the same rounds",
            median(ratios) * 100.0
        );
    }
    println!("{:>width$}  FMA peak median {:6.1} GFLOP/s (one thread)", "", median(peaks.to_vec()));
}
