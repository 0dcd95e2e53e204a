//! The device parity check (a model component's Greengrass Install step): the component's plan
//! run on this device's kernels against the float64 reference executor of its ONNX model, on the
//! contract's seeded image fed through the serving path's preprocessing. The report is written
//! beside the component (`{work:path}/device-parity.json`) and quoted by `DescribeModel`.

use std::path::Path;

use serde_json::{json, Value};

use crate::components::Component;
use crate::error::{Error, Result};

/// Runs the check on the component in `dir`; returns the report and whether it passed.
pub fn check(dir: &Path, threads: usize) -> Result<(Value, bool)> {
    let c = Component::load(dir, None)?;
    let onnx = c.read_verified("model.onnx")?;
    let (plan, set) = c.plan()?;
    let prepared = model::prepare(&onnx, std::slice::from_ref(&c.contract.input.shape))
        .map_err(|source| Error::Model { path: c.dir.join("model.onnx"), source })?;
    let outputs = model::parity::check(&prepared.specialized, &plan, set, threads, &c.contract)?;
    let passed = outputs.iter().all(model::parity::OutputParity::passed);
    let report = json!({
        "Component": { "Name": c.name, "Version": c.version },
        "KernelSet": plan.kernel_name,
        "RanOn": format!("{} ({} thread(s))", kernels::host_cpu_name(), threads),
        "Against": "float64 reference executor",
        "Bound": model::parity::F32_BOUND,
        "BoundMeaning": "max|y - r| / max|r| per output",
        "Input": { "Shape": c.contract.input.shape, "Seed": model::parity::SEED,
                   "Pixels": "uniform 8-bit RGB through the agent's preprocessing (model::image::to_input)" },
        "Status": if passed { "PASSED" } else { "FAILED" },
        "Outputs": outputs.iter().map(|o| json!({
            "Name": o.name, "Shape": o.shape, "MaxRelErr": finite(o.max_rel_err), "MeanRelErr": finite(o.mean_rel_err),
            "MaxAbsErr": finite(o.max_abs_err), "Bound": o.bound, "Passed": o.passed(), "Failure": o.failure,
        })).collect::<Vec<_>>(),
    });
    Ok((report, passed))
}

/// The largest `MaxRelErr` of a report's outputs (0 when none is finite).
pub fn worst_error(report: &Value) -> f64 {
    report["Outputs"].as_array().into_iter().flatten().filter_map(|o| o["MaxRelErr"].as_f64()).fold(0.0, f64::max)
}

/// JSON has no infinity: a failed comparison's infinite error is written as null.
fn finite(v: f64) -> Value {
    if v.is_finite() {
        v.into()
    } else {
        Value::Null
    }
}
