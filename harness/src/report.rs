//! Parity reports of a device run: which kernel set ran where, each case's errors against the
//! float64 reference, as JSON and as JUnit XML (so CI shows them as test cases).

use std::path::Path;

use edgepack_parity::report::ensure_parent;

use kernels::{Activation, KernelSet};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use crate::suite::conv::ConvCase;
use crate::suite::gemm::{BiasKind, GemmCase, Layout};

/// One parity case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `m×n×k/activation/epilogue`.
    pub name: String,
    /// Norm-wise relative error ‖y − r‖∞ / ‖r‖∞.
    pub max_rel_err: f64,
    /// Largest error as a fraction of its bound (≤ 1 passes).
    pub worst_bound_ratio: f64,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// The parity cases of one kernel set.
#[derive(Debug, Clone)]
pub struct SetParity {
    /// Kernel set name.
    pub set: String,
    /// Its instruction set.
    pub isa: String,
    /// Its tile.
    pub tile: (usize, usize),
    /// Every case.
    pub cases: Vec<CaseResult>,
}

impl SetParity {
    /// Cases that failed.
    pub fn failures(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }

    /// Largest norm-wise relative error over the cases.
    pub fn max_rel_err(&self) -> f64 {
        self.cases.iter().map(|c| c.max_rel_err).fold(0.0, f64::max)
    }

    /// Largest error/bound ratio over the cases.
    pub fn worst_bound_ratio(&self) -> f64 {
        self.cases.iter().map(|c| c.worst_bound_ratio).fold(0.0, f64::max)
    }
}

fn result(name: String, outcome: crate::Result<crate::parity::Parity>) -> CaseResult {
    match outcome {
        Ok(p) => CaseResult { name, max_rel_err: p.max_rel_err, worst_bound_ratio: p.max_bound_ratio, failure: None },
        Err(e) => CaseResult { name, max_rel_err: f64::NAN, worst_bound_ratio: f64::NAN, failure: Some(e.to_string()) },
    }
}

/// The standard parity sweep of a set: GEMM on 4 shapes (tiny; edge tiles on both sides; odd
/// sizes; several M blocks with more than one K pass) × every activation × {plain, bias +
/// residual}, B pre-packed as a package carries it; then every convolution algorithm case of
/// [`crate::suite::conv::algorithm_cases`] × {plain, bias + residual + HardSwish}.
pub fn parity_sweep(set: &dyn KernelSet) -> SetParity {
    let i = set.info();
    let shapes =
        [(1, 1, 1), (i.mr + 1, i.nr - 1, 17), (37, 53, 61), (2 * i.blocking.mc + 3, 3 * i.nr + 1, i.blocking.kc + 9)];
    let mut cases = Vec::new();
    for (m, n, k) in shapes {
        for activation in kernels::epilogue_activations(set.info().id) {
            for (bias, residual, label) in
                [(BiasKind::None, None, "plain"), (BiasKind::PerCol, Some(Layout::RowMajor), "bias+residual")]
            {
                let case = GemmCase { bias, residual, activation, prepacked: true, ..GemmCase::plain(m, n, k) };
                cases.push(result(format!("gemm {m}x{n}x{k}/{activation:?}/{label}"), case.check(set, 1.0)));
            }
        }
    }
    for (label, base) in crate::suite::conv::algorithm_cases() {
        let fused = ConvCase { bias: true, residual: Some(1), activation: Activation::HardSwish, ..base.clone() };
        cases.push(result(format!("conv {label}/plain"), base.check(set)));
        cases.push(result(format!("conv {label}/bias+residual/HardSwish"), fused.check(set)));
    }
    SetParity { set: i.name.to_owned(), isa: i.isa.to_owned(), tile: (i.mr, i.nr), cases }
}

/// Where a report was produced.
#[derive(Debug, Clone)]
pub struct Device {
    /// A label such as `host` or `qemu-aarch64 cortex-a72`.
    pub label: String,
    /// CPU model name as the machine reports it.
    pub cpu: String,
    /// `x86_64` or `aarch64`.
    pub arch: String,
}

impl Device {
    /// This machine, with `label`.
    pub fn this(label: &str) -> Self {
        Device { label: label.to_owned(), cpu: kernels::host_cpu_name(), arch: std::env::consts::ARCH.to_owned() }
    }
}

/// Writes the JSON report.
pub fn write_json(
    path: &Path,
    device: &Device,
    sets: &[SetParity],
    skipped: &[(String, String)],
) -> std::io::Result<()> {
    let finite = |v: f64| if v.is_finite() { json!(v) } else { json!(null) };
    let doc = json!({
        "device": { "label": device.label, "cpu": device.cpu, "arch": device.arch },
        "bound": "|y - r| <= L_act * (K + 2) * eps_f32 * sum|a*b| + activation rounding",
        "sets": sets.iter().map(|s| json!({
            "set": s.set,
            "isa": s.isa,
            "tile": [s.tile.0, s.tile.1],
            "cases": s.cases.len(),
            "failures": s.failures(),
            "max_rel_err": finite(s.max_rel_err()),
            "worst_bound_ratio": finite(s.worst_bound_ratio()),
            "results": s.cases.iter().map(|c| json!({
                "case": c.name,
                "max_rel_err": finite(c.max_rel_err),
                "worst_bound_ratio": finite(c.worst_bound_ratio),
                "passed": c.failure.is_none(),
                "failure": c.failure,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(s, why)| json!({ "set": s, "reason": why })).collect::<Vec<_>>(),
    });
    ensure_parent(path)?;
    std::fs::write(path, serde_json::to_string_pretty(&doc).expect("JSON") + "\n")
}

/// Writes the JUnit XML report: one suite per kernel set, one test case per parity case, and
/// each set this device cannot run as a skipped case carrying the reason.
pub fn write_junit(
    path: &Path,
    device: &Device,
    sets: &[SetParity],
    skipped: &[(String, String)],
) -> std::io::Result<()> {
    let mut report = Report::new(format!("edgepack parity on {}", device.label));
    for s in sets {
        let mut suite = TestSuite::new(format!("{} / {} ({})", device.label, s.set, s.isa));
        for c in &s.cases {
            suite.add_test_case(junit_case(
                &c.name,
                format!("parity.{}", s.set),
                c.failure.as_deref(),
                &[
                    ("max_rel_err", format!("{:e}", c.max_rel_err)),
                    ("worst_bound_ratio", format!("{:.4}", c.worst_bound_ratio)),
                ],
            ));
        }
        report.add_test_suite(suite);
    }
    if !skipped.is_empty() {
        let mut suite = TestSuite::new(format!("{} / unavailable kernel sets", device.label));
        for (set, why) in skipped {
            let mut st = TestCaseStatus::skipped();
            st.set_message(format!("skipped: {why}"));
            suite.add_test_case(TestCase::new(set.clone(), st));
        }
        report.add_test_suite(suite);
    }
    ensure_parent(path)?;
    std::fs::write(path, report.to_string().map_err(std::io::Error::other)?)
}

/// A JUnit test case: passed, or failed with `failure` as its message; `properties` attached.
pub(crate) fn junit_case(
    name: &str,
    classname: String,
    failure: Option<&str>,
    properties: &[(&str, String)],
) -> TestCase {
    let status = match failure {
        None => TestCaseStatus::success(),
        Some(msg) => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(msg.to_string());
            st
        }
    };
    let mut case = TestCase::new(name.to_string(), status);
    case.set_classname(classname);
    for (k, v) in properties {
        case.properties.push(quick_junit::Property::new(*k, v.clone()));
    }
    case
}
