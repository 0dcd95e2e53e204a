//! Whole-model parity: a plan's outputs against the float64 reference executor and against
//! ONNX Runtime's outputs, per output, with JSON and JUnit reports.

use std::path::Path;

use model::Tensor;
use quick_junit::{Report, TestSuite};
use serde_json::json;

/// The bound for float32 plans: norm-wise relative error `max|y − r| / max|r|` ≤ 1e-4.
pub const F32_BOUND: f64 = 1e-4;

/// One output compared with its expected values.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputParity {
    /// Output name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// `max|y − r| / max|r|`.
    pub max_rel_err: f64,
    /// `mean|y − r| / mean|r|`.
    pub mean_rel_err: f64,
    /// `max|y − r|`.
    pub max_abs_err: f64,
    /// The bound on `max_rel_err`.
    pub bound: f64,
    /// Why it failed (shape mismatch, non-finite value, over the bound).
    pub failure: Option<String>,
}

impl OutputParity {
    /// Whether the output is within the bound.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Compares `got` with `expected` (any float width) under `bound`.
pub fn compare(name: &str, got: &Tensor, expected: &[f64], expected_shape: &[usize], bound: f64) -> OutputParity {
    let mut p = OutputParity {
        name: name.into(),
        shape: got.shape.clone(),
        max_rel_err: f64::INFINITY,
        mean_rel_err: f64::INFINITY,
        max_abs_err: f64::INFINITY,
        bound,
        failure: None,
    };
    if got.shape != expected_shape {
        p.failure = Some(format!("shape {:?}, expected {expected_shape:?}", got.shape));
        return p;
    }
    // Integer outputs (indices, classes, NMS selections) must match exactly.
    if let Some(y) = got.ints() {
        let differ = y.iter().zip(expected).filter(|(&a, &b)| a as f64 != b).count();
        (p.max_rel_err, p.mean_rel_err, p.max_abs_err) = (0.0, 0.0, 0.0);
        if differ > 0 {
            (p.max_rel_err, p.mean_rel_err) = (f64::INFINITY, f64::INFINITY);
            p.failure = Some(format!("{differ} of {} integer values differ", y.len()));
        }
        return p;
    }
    let Some(y) = got.floats() else {
        p.failure = Some("neither a float nor an integer tensor".into());
        return p;
    };
    let (mut max_abs, mut sum_abs, mut max_ref, mut sum_ref) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (&y, &r) in y.iter().zip(expected) {
        let e = (y as f64 - r).abs();
        if !e.is_finite() {
            p.failure = Some(format!("non-finite value {y} where {r} is expected"));
            return p;
        }
        max_abs = max_abs.max(e);
        sum_abs += e;
        max_ref = max_ref.max(r.abs());
        sum_ref += r.abs();
    }
    let max_ref = max_ref.max(f64::MIN_POSITIVE);
    p.max_abs_err = max_abs;
    p.max_rel_err = max_abs / max_ref;
    p.mean_rel_err = sum_abs / sum_ref.max(f64::MIN_POSITIVE);
    if p.max_rel_err > bound {
        p.failure = Some(format!("max relative error {:.3e} exceeds {bound:e}", p.max_rel_err));
    }
    p
}

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
