//! The host's figure for a bundle's model: its component's ONNX model planned for this
//! machine's fastest kernel set and run in process, one thread, before any board runs (so the
//! boards' SSH sessions do not share the cores with it). The table sets each board's
//! in-process latency against it.

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Runs after two warm-up runs that this figure leaves out.
const RUNS: usize = 20;

/// `{"kernel_set", "p50_ms", "runs"}` for the component in `component` (its `manifest.json`
/// gives the input shape, `model.onnx` the model); an error naming what is missing or wrong.
pub fn host_figure(component: &Path) -> Result<Value> {
    let read = |name: &str| {
        let path = component.join(name);
        std::fs::read(&path).map_err(|source| Error::Io { path, source })
    };
    let manifest_path = component.join("manifest.json");
    let manifest: Value = serde_json::from_slice(&read("manifest.json")?)
        .map_err(|e| Error::data(&manifest_path, format!("not JSON: {e}")))?;
    let shape: Vec<usize> = manifest["Contract"]["Input"]["Shape"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<_>>()
        .filter(|s: &Vec<usize>| !s.is_empty())
        .ok_or_else(|| Error::data(&manifest_path, "no Contract.Input.Shape"))?;
    let prepared = model::prepare(&read("model.onnx")?, std::slice::from_ref(&shape))?;
    let set = kernels::host_kernel_sets()
        .0
        .into_iter()
        .next()
        .ok_or_else(|| Error::case(component.display().to_string(), "no kernel set runs on this host"))?;
    let name = set.info().name.to_string();
    let plan = model::plan::build(&prepared.optimized, &*set)?;
    let mut session = plan.session(1)?;
    let len = shape.iter().product();
    let x = model::Tensor::float(shape, (0..len).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect());
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS + 2 {
        let t = Instant::now();
        session.run(std::slice::from_ref(&x))?;
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(json!({ "kernel_set": name, "p50_ms": times[RUNS / 2], "runs": RUNS }))
}

#[cfg(test)]
mod tests {
    use super::host_figure;

    #[test]
    fn a_component_without_its_files_is_an_error_naming_them() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(host_figure(tmp.path()).unwrap_err().to_string().contains("manifest.json"));
        std::fs::write(tmp.path().join("manifest.json"), r#"{"Contract": {"Input": {}}}"#).unwrap();
        assert!(host_figure(tmp.path()).unwrap_err().to_string().contains("Contract.Input.Shape"));
        std::fs::write(tmp.path().join("manifest.json"), r#"{"Contract": {"Input": {"Shape": [1, 3, 8, 8]}}}"#)
            .unwrap();
        assert!(host_figure(tmp.path()).unwrap_err().to_string().contains("model.onnx"));
    }
}
