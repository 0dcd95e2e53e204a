//! The packaging API's commands, in the shape of the AWS CLI's `lookoutvision` commands:
//! `create-project`, `start-model-packaging-job`, `describe-model-packaging-job`, … with
//! `--cli-input-json|yaml`, `--generate-cli-skeleton`, `--output`, `--query` and `--wait`:
//! the arguments ([`args`]), the dispatch of a command to the service ([`dispatch`]), the
//! requests built from arguments and files ([`requests`]), waiting on a job ([`wait`]);
//! rendering is `crate::render`. This module holds what they share: opening the service,
//! printing a response, and the failures with the AWS CLI's exit codes.

mod args;
mod backend;
mod dispatch;
mod input;
mod remote;
mod requests;
mod serve;
mod shorthand;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use package::{ApiError, Runner, Service, Settings};
use serde_json::Value;

use crate::render::{iso_timestamps, query, render_titled};

pub use args::{ApiCommand, Global};

/// Exit status of a service error (as the AWS CLI's).
const SERVICE_ERROR: u8 = 254;
/// Exit status of a bad command line or input file.
const USAGE_ERROR: u8 = 252;

/// A command's failure: a service error or a usage error.
pub enum Failure {
    /// From the service, with the operation's name.
    Api(&'static str, ApiError),
    /// Bad arguments or files.
    Usage(String),
    /// From a server (`--endpoint-url`): the operation, the error code, the message.
    Remote(&'static str, String, String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Usage(s)
    }
}

fn api<T: serde::Serialize>(op: &'static str, r: Result<T, ApiError>) -> Result<Value, Failure> {
    r.map(|x| serde_json::to_value(x).expect("serializable")).map_err(|e| Failure::Api(op, e))
}

fn home(g: &Global) -> PathBuf {
    g.home
        .clone()
        .or_else(|| std::env::var_os("EDGEPACK_HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".edgepack"))
}

/// Seconds without a heartbeat after which a RUNNING job's worker counts as gone (default 30;
/// the fault-injection suite shortens it).
const HEARTBEAT_TIMEOUT_ENV: &str = "EDGEPACK_HEARTBEAT_TIMEOUT";

fn open(g: &Global, runner: Runner) -> Result<Service, Failure> {
    let mut settings = Settings { runner, ..Settings::default() };
    if let Some(v) = std::env::var_os(HEARTBEAT_TIMEOUT_ENV) {
        let secs = v.to_str().and_then(|v| v.parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0);
        let secs = secs.ok_or_else(|| format!("{HEARTBEAT_TIMEOUT_ENV}={v:?}: expected a number of seconds"))?;
        settings.stale_after = Duration::from_secs_f64(secs);
    }
    Service::open(&home(g), settings).map_err(|e| Failure::Api("Open", e))
}

fn worker_runner() -> Runner {
    match std::env::current_exe() {
        Ok(exe) => Runner::Process(exe, vec!["run-packaging-job".into()]),
        Err(_) => Runner::Thread,
    }
}

/// Prints a response of `operation` (the title of a table).
fn print_as(v: Value, g: &Global, operation: &str) -> Result<(), Failure> {
    let mut v = v;
    iso_timestamps(&mut v);
    let v = query(v, g.query.as_deref())?;
    print!("{}", render_titled(&v, g.output, operation));
    Ok(())
}

/// Runs a packaging API command.
pub fn run(cmd: ApiCommand, g: &Global) -> ExitCode {
    match dispatch::dispatch(cmd, g) {
        Ok(code) => code,
        Err(Failure::Api(op, e)) => {
            eprintln!("\nAn error occurred ({}) when calling the {op} operation: {}", e.kind.type_name(), e.message);
            ExitCode::from(SERVICE_ERROR)
        }
        Err(Failure::Remote(op, code, message)) => {
            eprintln!("\nAn error occurred ({code}) when calling the {op} operation: {message}");
            ExitCode::from(SERVICE_ERROR)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("edgepack: error: {m}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}
