//! `start-model-packaging-job --wait`: start, then poll the job until it ends.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::args::{Global, StartArgs};
use super::backend::Backend;
use super::requests::start_request;
use super::{print_as, worker_runner, Failure};

pub(super) fn start(a: StartArgs, g: &Global) -> Result<ExitCode, Failure> {
    let req = start_request(&a)?;
    let svc = Backend::open(g, worker_runner())?;
    let r = svc.start_job(&req)?;
    if !a.wait {
        print_as(r, g, "StartModelPackagingJob")?;
        return Ok(ExitCode::SUCCESS);
    }
    let project = req.project_name.clone().unwrap_or_default();
    let job = r["JobName"].as_str().unwrap_or_default().to_owned();
    let d = wait(&svc, &project, &job)?;
    let failed = d["ModelPackagingDescription"]["Status"] == "FAILED";
    print_as(d, g, "DescribeModelPackagingJob")?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Polls the job until it ends, with a spinner on a terminal and a line per status change
/// otherwise; returns the final `DescribeModelPackagingJob` response.
fn wait(svc: &Backend, project: &str, job: &str) -> Result<Value, Failure> {
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("template"));
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let mut last = String::new();
    loop {
        let d = svc.describe_job(project, job)?;
        let desc = &d["ModelPackagingDescription"];
        let status = desc["Status"].as_str().unwrap_or_default().to_owned();
        let line = format!("{job}: {status}: {}", desc["StatusMessage"].as_str().unwrap_or(""));
        if line != last {
            match &bar {
                Some(b) => b.set_message(line.clone()),
                None => eprintln!("{line}"),
            }
            last = line;
        }
        if status == "SUCCEEDED" || status == "FAILED" {
            if let Some(b) = bar {
                b.finish_with_message(last);
            }
            return Ok(d);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
