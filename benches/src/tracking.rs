//! Regression tracking that holds on noisy shared machines.
//!
//! A shared machine's absolute speed drifts by ±10 % from run to run, so absolute GFLOP/s cannot
//! be compared across runs. What can: the ratio of our kernel's throughput to a *frozen
//! reference* measured in the same process, interleaved round by round (ours, reference;
//! reference, ours; …), so that drift hits both alike. Each tracked figure is the median of the
//! per-round ratios `t_reference / t_ours` (our throughput relative to the reference: higher is
//! better). Contention from other tenants (shared L3, memory bandwidth) changes on a scale of
//! seconds and affects the two sides differently, so a figure is measured in several passes
//! spread over the whole run ([`combine`]): its value is the median of the pass medians and its
//! spread the larger of the passes' half-range and the within-pass standard error. A figure
//! regresses when it falls below its baseline by more than `max(5 %, 3 × combined spread)`.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// One side of a figure: a call timed here, or a workload that times itself (a peer in another
/// process reports the time its runs took, so that pipe latency is not counted).
pub enum Workload<'a> {
    /// One repetition per call; [`measure`] times the calls.
    Call(Box<dyn FnMut() + 'a>),
    /// Runs the given number of repetitions and returns the seconds they took.
    Timed(Box<dyn FnMut(usize) -> f64 + 'a>),
}

impl Workload<'_> {
    /// Seconds that `reps` repetitions take.
    pub fn seconds(&mut self, reps: usize) -> f64 {
        match self {
            Workload::Call(f) => {
                let t = Instant::now();
                for _ in 0..reps {
                    f();
                }
                t.elapsed().as_secs_f64()
            }
            Workload::Timed(f) => f(reps),
        }
    }

    /// Seconds per repetition over `reps` repetitions.
    fn seconds_per_call(&mut self, reps: usize) -> f64 {
        self.seconds(reps) / reps as f64
    }
}

/// One tracked comparison: two workloads of the same flop count.
pub struct Figure<'a> {
    /// Stable name, the key in baselines and history.
    pub name: String,
    /// Floating-point operations of one call (for the informational GFLOP/s).
    pub flops: u64,
    /// Our workload.
    pub ours: Workload<'a>,
    /// The frozen reference.
    pub reference: Workload<'a>,
}

/// The outcome of measuring one figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    /// Median of the per-round throughput ratios ours / reference.
    pub ratio: f64,
    /// Spread of that median, relative to it: the standard error within one pass, or after
    /// [`combine`] the larger of that and the half-range of the pass medians.
    pub rel_spread: f64,
    /// Rounds measured.
    pub rounds: usize,
    /// Our median GFLOP/s (informational: drifts with the machine).
    pub gflops: f64,
    /// The reference's median GFLOP/s (informational).
    pub reference_gflops: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median and its standard error (1.2533 · σ / √n, with σ = 1.4826 · MAD) of `samples`.
pub fn median_and_se(samples: &[f64]) -> (f64, f64) {
    let mut v = samples.to_vec();
    let m = median(&mut v);
    let mut dev: Vec<f64> = samples.iter().map(|x| (x - m).abs()).collect();
    let mad = median(&mut dev);
    (m, 1.2533 * 1.4826 * mad / (samples.len() as f64).sqrt())
}

/// Measures a figure for about `budget`: calls are repeated so that each timing lasts at least
/// 2 ms, rounds alternate which side goes first, at least 7 and at most 400 rounds.
pub fn measure(fig: &mut Figure<'_>, budget: Duration) -> Measurement {
    // Warm up both sides and size the repetitions.
    let once = fig.ours.seconds_per_call(1).max(fig.reference.seconds_per_call(1)).max(1e-7);
    let reps = ((2e-3 / once).ceil() as usize).max(1);
    let (mut ratios, mut ours_t, mut ref_t) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    while ratios.len() < 7 || (start.elapsed() < budget && ratios.len() < 400) {
        let (a, b) = if ratios.len() % 2 == 0 {
            let a = fig.ours.seconds_per_call(reps);
            (a, fig.reference.seconds_per_call(reps))
        } else {
            let b = fig.reference.seconds_per_call(reps);
            (fig.ours.seconds_per_call(reps), b)
        };
        ratios.push(b / a);
        ours_t.push(a);
        ref_t.push(b);
    }
    let (ratio, se) = median_and_se(&ratios);
    let gf = |t: &mut Vec<f64>| fig.flops as f64 / median(t) / 1e9;
    Measurement {
        ratio,
        rel_spread: se / ratio,
        rounds: ratios.len(),
        gflops: gf(&mut ours_t),
        reference_gflops: gf(&mut ref_t),
    }
}

/// Verdict of one figure against its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the allowed band.
    Ok,
    /// Faster than the baseline by more than the band (not a failure; consider `--update`).
    Faster,
    /// Slower than the baseline by more than the band.
    Regressed,
    /// Not in the baseline.
    New,
}

/// One figure from several passes of [`measure`]: the median of the pass medians; spread the
/// larger of the passes' half-range (relative) and their median within-pass spread.
pub fn combine(passes: &[Measurement]) -> Measurement {
    let mut ratios: Vec<f64> = passes.iter().map(|m| m.ratio).collect();
    let ratio = median(&mut ratios);
    let half_range = (ratios[ratios.len() - 1] - ratios[0]) / 2.0 / ratio;
    let within = median(&mut passes.iter().map(|m| m.rel_spread).collect::<Vec<_>>());
    let mid = |f: fn(&Measurement) -> f64| median(&mut passes.iter().map(f).collect::<Vec<_>>());
    Measurement {
        ratio,
        rel_spread: half_range.max(within),
        rounds: passes.iter().map(|m| m.rounds).sum(),
        gflops: mid(|m| m.gflops),
        reference_gflops: mid(|m| m.reference_gflops),
    }
}

/// The smallest relative drop that counts as a regression: max(5 %, 3 × combined spread).
pub fn allowed_drop(base_rel_spread: f64, now_rel_spread: f64) -> f64 {
    (3.0 * (base_rel_spread.powi(2) + now_rel_spread.powi(2)).sqrt()).max(0.05)
}

/// Compares a measurement with a baseline ratio and its relative spread; returns the relative
/// change, the allowed drop and the verdict.
pub fn judge(base_ratio: f64, base_rel_spread: f64, now: &Measurement) -> (f64, f64, Verdict) {
    let change = now.ratio / base_ratio - 1.0;
    let allowed = allowed_drop(base_rel_spread, now.rel_spread);
    let verdict = if change < -allowed {
        Verdict::Regressed
    } else if change > allowed {
        Verdict::Faster
    } else {
        Verdict::Ok
    };
    (change, allowed, verdict)
}

/// A name for this kind of machine: baselines are only comparable within one class.
pub fn machine_class(best_set: &str) -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().replace(' ', "_"))
            .unwrap_or_else(|| "unknown".into())
    };
    format!("{}-{best_set}-{}-f{}-m{}", std::env::consts::ARCH, field("vendor_id"), field("cpu family"), field("model"))
}

/// A measurement as stored in a baseline.
pub fn to_json(m: &Measurement, pct_peak: Option<f64>) -> Value {
    json!({
        "ratio": m.ratio,
        "rel_spread": m.rel_spread,
        "rounds": m.rounds,
        "gflops": m.gflops,
        "reference_gflops": m.reference_gflops,
        "pct_peak": pct_peak,
    })
}

/// `(ratio, rel_spread)` of a figure in a baseline document, if present.
pub fn baseline_figure(doc: &Value, name: &str) -> Option<(f64, f64)> {
    let f = doc.get("figures")?.get(name)?;
    Some((f.get("ratio")?.as_f64()?, f.get("rel_spread")?.as_f64()?))
}

/// One history line: date, commit and every figure's ratio.
pub fn history_line(date: &str, commit: &str, ratios: &[(String, f64)]) -> String {
    let figures: Map<String, Value> = ratios.iter().map(|(n, r)| (n.clone(), json!(r))).collect();
    json!({ "date": date, "commit": commit, "figures": figures }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_standard_error() {
        let (m, se) = median_and_se(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        assert_eq!(m, 3.0);
        // MAD = 1 → σ ≈ 1.4826, SE = 1.2533 · 1.4826 / √5
        assert!((se - 1.2533 * 1.4826 / 5f64.sqrt()).abs() < 1e-12);
        assert_eq!(median_and_se(&[2.0, 2.0, 2.0]).1, 0.0);
    }

    #[test]
    fn verdicts_use_the_larger_of_five_percent_and_three_standard_errors() {
        let m = |ratio, rel_spread| Measurement { ratio, rel_spread, rounds: 20, gflops: 1.0, reference_gflops: 1.0 };
        assert_eq!(judge(1.0, 0.001, &m(0.96, 0.001)).2, Verdict::Ok); // -4 % < 5 %
        assert_eq!(judge(1.0, 0.001, &m(0.94, 0.001)).2, Verdict::Regressed); // -6 % > 5 %
        assert_eq!(judge(1.0, 0.03, &m(0.90, 0.03)).2, Verdict::Ok); // 3·√2·3 % ≈ 12.7 %
        assert_eq!(judge(1.0, 0.03, &m(0.85, 0.03)).2, Verdict::Regressed);
        assert_eq!(judge(1.0, 0.001, &m(1.2, 0.001)).2, Verdict::Faster);
        assert!((allowed_drop(0.0, 0.0) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn interleaved_measurement_sees_a_slower_workload() {
        let work = |n: usize| {
            move || {
                let mut x = 0u64;
                for i in 0..n as u64 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                }
                std::hint::black_box(x);
            }
        };
        let mut fig = Figure {
            name: "t".into(),
            flops: 1,
            ours: Workload::Call(Box::new(work(400_000))),
            reference: Workload::Call(Box::new(work(100_000))),
        };
        let m = measure(&mut fig, Duration::from_millis(300));
        // ours does four times the work: ratio ≈ 0.25. Only the direction is asserted: a busy
        // machine (CI's 2 cores shared with a build) slowed one side 5× in one run (0.17), so
        // no lower bound; interference would have to favour ours by 2.4× to pass 0.6.
        assert!(m.ratio.is_finite() && m.ratio > 0.0 && m.ratio < 0.6, "{m:?}");
        assert!(m.rounds >= 7);
    }

    #[test]
    fn self_timed_workloads_report_their_own_time() {
        // A peer that reports 2 ms per repetition against one reporting 5 ms: the ratio is
        // exactly their quotient, whatever the calls cost here, and the repetitions are sized
        // from the reported time (one per round: 2 ms already fills a timing).
        let reps_seen = std::cell::RefCell::new(Vec::new());
        let mut fig = Figure {
            name: "t".into(),
            flops: 1_000_000,
            ours: Workload::Timed(Box::new(|reps| {
                reps_seen.borrow_mut().push(reps);
                reps as f64 * 2e-3
            })),
            reference: Workload::Timed(Box::new(|reps| reps as f64 * 5e-3)),
        };
        let m = measure(&mut fig, Duration::ZERO);
        assert_eq!(m.ratio, 2.5);
        assert_eq!(m.rel_spread, 0.0);
        assert_eq!(m.rounds, 7);
        assert!((m.gflops - 0.5).abs() < 1e-9 && (m.reference_gflops - 0.2).abs() < 1e-9, "{m:?}");
        drop(fig);
        assert!(reps_seen.into_inner().iter().all(|&r| r == 1));
    }

    #[test]
    fn passes_combine_into_median_and_half_range() {
        let m = |ratio, rel_spread| Measurement { ratio, rel_spread, rounds: 10, gflops: ratio, reference_gflops: 1.0 };
        let c = combine(&[m(1.0, 0.01), m(1.2, 0.01), m(1.1, 0.02)]);
        assert_eq!(c.ratio, 1.1);
        assert!((c.rel_spread - 0.1 / 1.1).abs() < 1e-12, "{c:?}"); // half-range dominates
        assert_eq!(c.rounds, 30);
        let steady = combine(&[m(1.0, 0.02), m(1.001, 0.02), m(1.0, 0.03)]);
        assert_eq!(steady.rel_spread, 0.02); // within-pass spread dominates
    }

    #[test]
    fn baselines_round_trip() {
        let m = Measurement { ratio: 1.25, rel_spread: 0.01, rounds: 30, gflops: 80.0, reference_gflops: 64.0 };
        let doc = json!({ "figures": { "f": to_json(&m, Some(85.0)) } });
        assert_eq!(baseline_figure(&doc, "f"), Some((1.25, 0.01)));
        assert_eq!(baseline_figure(&doc, "g"), None);
        let line = history_line("2026-11-27", "abc", &[("f".into(), 1.25)]);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["figures"]["f"], 1.25);
    }
}
