//! The reports of a run across boards: one JSON document, one JUnit file (a suite per board,
//! a case per step) and the table printed at the end.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::{json, Value};

use super::board::{BoardReport, StepStatus};

fn status_text(s: &StepStatus) -> String {
    match s {
        StepStatus::Passed => "passed".into(),
        StepStatus::Failed(why) => format!("failed: {why}"),
        StepStatus::Broken(f) => f.to_string(),
    }
}

/// The run as JSON: per board its status, target and steps with their findings.
pub fn to_json(boards: &[BoardReport]) -> Value {
    json!({
        "boards": boards.iter().map(|b| json!({
            "board": b.board,
            "host": b.host,
            "target": b.target,
            "status": b.status(),
            "reports": b.dir.display().to_string(),
            "host_figure": b.host_figure,
            "steps": b.steps.iter().map(|s| json!({
                "step": s.name,
                "status": status_text(&s.status),
                "passed": s.status == StepStatus::Passed,
                "seconds": s.seconds,
                "detail": s.detail,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Writes the JSON document and the JUnit file.
pub fn write_reports(boards: &[BoardReport], json_path: &Path, junit_path: &Path) -> std::io::Result<()> {
    std::fs::write(json_path, serde_json::to_string_pretty(&to_json(boards)).expect("JSON") + "\n")?;
    let mut report = Report::new("edgepack-hil");
    for b in boards {
        let mut suite = TestSuite::new(b.board.as_str());
        for s in &b.steps {
            let mut status = match &s.status {
                StepStatus::Passed => TestCaseStatus::success(),
                StepStatus::Failed(_) => TestCaseStatus::non_success(NonSuccessKind::Failure),
                StepStatus::Broken(_) => TestCaseStatus::non_success(NonSuccessKind::Error),
            };
            if s.status != StepStatus::Passed {
                status.set_message(status_text(&s.status));
            }
            let mut case = TestCase::new(s.name, status);
            case.set_time(std::time::Duration::from_secs_f64(s.seconds));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    let xml = report.to_string().map_err(std::io::Error::other)?;
    std::fs::write(junit_path, xml)
}

/// The table across boards: status, kernel parity, model parity, latency (through the agent,
/// in process, and the host's figure for the same model with the board's in-process latency
/// against it), and the Greengrass deployment (its Install step's device parity and
/// DetectAnomalies through the agent its Run step started).
pub fn table(boards: &[BoardReport]) -> String {
    let mut out = String::from(
        "| board | target | status | kernel parity | model parity | p50 ms (agent) | p50 ms (in process) | host p50 ms | in process / host | greengrass |\n\
         |---|---|---|---|---|---:|---:|---:|---:|---|\n",
    );
    for b in boards {
        let kernels = b.step("kernel-parity").map_or("–".to_owned(), |s| {
            let d = &s.detail;
            match (d["cases"].as_u64(), d["failures"].as_u64(), d["max_rel_err"].as_f64()) {
                (Some(c), Some(f), Some(e)) => format!("{}/{c} pass, max rel err {e:.1e}", c - f.min(c)),
                _ => "no report".into(),
            }
        });
        let model = b.step("model-parity").map_or("–".to_owned(), |s| {
            let d = &s.detail;
            match (d["status"].as_str(), d["max_rel_err"].as_f64()) {
                (Some(st), Some(e)) => format!("{st}, max rel err {e:.1e}"),
                _ => "no report".into(),
            }
        });
        let ms = |key: &str| {
            b.step("agent").and_then(|s| s.detail[key].as_f64()).map_or("–".to_owned(), |v| format!("{v:.2}"))
        };
        let host = b.host_figure["p50_ms"].as_f64();
        let in_process = b.step("agent").and_then(|s| s.detail["in_process_p50_ms"].as_f64());
        let (host_ms, ratio) = match (host, in_process) {
            (Some(h), Some(p)) => {
                (format!("{h:.2} ({})", b.host_figure["kernel_set"].as_str().unwrap_or("?")), format!("{:.2}", p / h))
            }
            (Some(h), None) => (format!("{h:.2}"), "–".to_owned()),
            _ => ("–".to_owned(), "–".to_owned()),
        };
        let greengrass = b.step("greengrass").map_or("–".to_owned(), |s| {
            let d = &s.detail;
            match (d["device_parity"]["status"].as_str(), d["detect_anomalies"]["agent_p50_ms"].as_f64()) {
                (Some(st), Some(ms)) => format!("Install: {st}; DetectAnomalies p50 {ms:.2} ms"),
                (Some(st), None) => format!("Install: {st}; no DetectAnomalies figures"),
                _ => "no device parity report".into(),
            }
        });
        let why = b
            .steps
            .iter()
            .find(|s| s.status != StepStatus::Passed)
            .map(|s| format!(" ({}: {})", s.name, status_text(&s.status)))
            .unwrap_or_default();
        out += &format!(
            "| {} | {} | {}{why} | {kernels} | {model} | {} | {} | {host_ms} | {ratio} | {greengrass} |\n",
            b.board,
            b.target,
            b.status(),
            ms("agent_p50_ms"),
            ms("in_process_p50_ms")
        );
    }
    out
}
