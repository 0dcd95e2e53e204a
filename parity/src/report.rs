//! Whole-model parity reports: a plan's outputs against the float64 reference executor or
//! ONNX Runtime's outputs, per output, as JSON and as JUnit XML (for CI systems).

use std::path::Path;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde_json::json;

use crate::OutputParity;

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
    ensure_parent(path)?;
    std::fs::write(path, serde_json::to_string_pretty(&doc).expect("JSON") + "\n")
}

/// Writes the JUnit XML report: a suite per run, a case per output (its errors as properties,
/// a failure with the reason when it did not pass).
pub fn write_junit(path: &Path, runs: &[ModelParity]) -> std::io::Result<()> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let count = |r: &ModelParity| (r.outputs.len(), r.outputs.iter().filter(|o| !o.passed()).count());
    let (tests, failures) = runs.iter().map(count).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let root = BytesStart::new("testsuites").with_attributes([
        ("name", "edgepack model parity"),
        ("tests", &tests.to_string()),
        ("failures", &failures.to_string()),
        ("errors", "0"),
    ]);
    w.write_event(Event::Start(root))?;
    for r in runs {
        let (tests, failures) = count(r);
        let name = format!("{} on {} ({} threads) vs {}", r.model, r.kernel_set, r.threads, r.against);
        let suite = BytesStart::new("testsuite").with_attributes([
            ("name", name.as_str()),
            ("tests", &tests.to_string()),
            ("failures", &failures.to_string()),
            ("errors", "0"),
        ]);
        w.write_event(Event::Start(suite))?;
        let classname = format!("parity.{}.{}", r.model, r.kernel_set);
        for o in &r.outputs {
            let case =
                BytesStart::new("testcase").with_attributes([("name", o.name.as_str()), ("classname", &classname)]);
            w.write_event(Event::Start(case))?;
            if let Some(f) = &o.failure {
                w.write_event(Event::Empty(BytesStart::new("failure").with_attributes([("message", f.as_str())])))?;
            }
            w.write_event(Event::Start(BytesStart::new("properties")))?;
            for (k, v) in [("max_rel_err", o.max_rel_err), ("mean_rel_err", o.mean_rel_err)] {
                let value = format!("{v:e}");
                let p = BytesStart::new("property").with_attributes([("name", k), ("value", value.as_str())]);
                w.write_event(Event::Empty(p))?;
            }
            w.write_event(Event::End(BytesEnd::new("properties")))?;
            w.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    w.write_event(Event::Text(BytesText::new("\n")))?;
    ensure_parent(path)?;
    std::fs::write(path, w.into_inner())
}

/// Creates the folder a report goes into.
pub fn ensure_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_names_each_output_and_its_failure() {
        let got = model::Tensor::float(vec![2], vec![1.0, 2.0]);
        let pass = crate::compare("ok", &got, &[1.0, 2.0], &[2], 1e-4);
        let fail = crate::compare("bad", &got, &[1.0, 3.0], &[2], 1e-4);
        assert!(pass.passed() && !fail.passed());
        let run = ModelParity {
            model: "m<&>.onnx".into(),
            shapes: vec![vec![2]],
            kernel_set: "avx2".into(),
            threads: 1,
            against: "float64 reference".into(),
            outputs: vec![pass, fail],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r/parity.xml");
        write_junit(&path, &[run]).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{xml}");
        assert!(
            xml.contains(r#"<testsuites name="edgepack model parity" tests="2" failures="1" errors="0">"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<testcase name="bad" classname="parity.m&lt;&amp;&gt;.onnx.avx2">"#), "{xml}");
        assert!(xml.contains("<failure message=\"max relative error"), "{xml}");
        assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
        assert!(xml.contains(r#"<property name="max_rel_err" value="0e0"/>"#), "{xml}");
    }
}
