//! Whole-model parity: a plan's outputs against the float64 reference executor and against
//! ONNX Runtime's outputs, per output, with JSON and JUnit reports.

use std::path::Path;

use quick_junit::{Report, TestSuite};
use serde_json::json;

pub use model::parity::{compare, OutputParity, F32_BOUND};

/// One model run compared against one reference.
#[derive(Debug, Clone)]
pub struct ModelParity {
    /// Model file name.
    pub model: String,
    /// Input shape(s).
    pub shapes: Vec<Vec<usize>>,
    /// Kernel set.
    pub kernel_set: String,
    /// Threads.
    pub threads: usize,
    /// What it was compared with (`float64 reference`, `ONNX Runtime 1.32.0`).
    pub against: String,
    /// Per output.
    pub outputs: Vec<OutputParity>,
}

impl ModelParity {
    /// Whether every output passed.
    pub fn passed(&self) -> bool {
        self.outputs.iter().all(OutputParity::passed)
    }
}

/// Writes the JSON report.
pub fn write_json(path: &Path, runs: &[ModelParity]) -> std::io::Result<()> {
    let finite = |v: f64| if v.is_finite() { json!(v) } else { json!(null) };
    let doc = json!({
        "metric": "max_rel_err = max|y - r| / max|r| per output; mean_rel_err = mean|y - r| / mean|r|",
        "runs": runs.iter().map(|r| json!({
            "model": r.model,
            "shapes": r.shapes,
            "kernel_set": r.kernel_set,
            "threads": r.threads,
            "against": r.against,
            "passed": r.passed(),
            "outputs": r.outputs.iter().map(|o| json!({
                "name": o.name,
                "shape": o.shape,
                "max_rel_err": finite(o.max_rel_err),
                "mean_rel_err": finite(o.mean_rel_err),
                "max_abs_err": finite(o.max_abs_err),
                "bound": o.bound,
                "passed": o.passed(),
                "failure": o.failure,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    crate::report::ensure_parent(path)?;
    std::fs::write(path, serde_json::to_string_pretty(&doc).expect("JSON") + "\n")
}

/// Writes the JUnit XML report: a suite per run, a case per output.
pub fn write_junit(path: &Path, runs: &[ModelParity]) -> std::io::Result<()> {
    let mut report = Report::new("edgepack model parity");
    for r in runs {
        let mut suite =
            TestSuite::new(format!("{} on {} ({} threads) vs {}", r.model, r.kernel_set, r.threads, r.against));
        for o in &r.outputs {
            suite.add_test_case(crate::report::junit_case(
                &o.name,
                format!("parity.{}.{}", r.model, r.kernel_set),
                o.failure.as_deref(),
                &[("max_rel_err", format!("{:e}", o.max_rel_err)), ("mean_rel_err", format!("{:e}", o.mean_rel_err))],
            ));
        }
        report.add_test_suite(suite);
    }
    crate::report::ensure_parent(path)?;
    std::fs::write(path, report.to_string().map_err(std::io::Error::other)?)
}
