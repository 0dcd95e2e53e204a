//! The packaging job's parity check: the plan file exactly as it will be published, loaded
//! back and run on this machine's implementation of the target's kernel set, against the
//! float64 reference executor on the same input. When this machine cannot run the target's
//! set, the report records that verification is pending on the device and the command that
//! does it there.

use kernels::KernelSetId;
use model::parity::{OutputParity, F32_BOUND};
use model::plan::Plan;
use model::Prepared;
use serde_json::{json, Value};

use crate::contract::ModelContract;

pub use model::parity::SEED;

/// What the check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParityStatus {
    /// Every output within the bound on this machine.
    Passed,
    /// An output over the bound: nothing is published.
    Failed,
    /// This machine cannot run the target's kernel set: the device's Install step checks it.
    PendingOnDevice,
}

impl ParityStatus {
    /// The name reports and manifests use (`PASSED`, `FAILED`, `PENDING_ON_DEVICE`).
    pub fn name(self) -> &'static str {
        match self {
            ParityStatus::Passed => "PASSED",
            ParityStatus::Failed => "FAILED",
            ParityStatus::PendingOnDevice => "PENDING_ON_DEVICE",
        }
    }
}

/// The outcome of the check.
#[derive(Debug, Clone)]
pub struct ParityOutcome {
    /// The conclusion.
    pub status: ParityStatus,
    /// One line for the job's status message.
    pub summary: String,
    /// The report (`parity.json`).
    pub report: Value,
}

fn output_json(o: &OutputParity) -> Value {
    json!({
        "Name": o.name, "Shape": o.shape, "MaxRelErr": o.max_rel_err, "MeanRelErr": o.mean_rel_err,
        "MaxAbsErr": o.max_abs_err, "Bound": o.bound, "Passed": o.passed(), "Failure": o.failure,
    })
}

/// Why the parity check could not run (a failed comparison is a [`ParityStatus::Failed`]
/// outcome instead).
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    /// The plan just written does not load back.
    #[error("the plan file does not load back: {0}")]
    PlanFile(model::ModelError),
    /// The check could not compare.
    #[error("{0}")]
    Check(#[from] model::parity::CheckError),
}

/// Runs the check of `plan_bytes` (a plan for `set`) against the reference of `prepared`.
pub fn check(
    prepared: &Prepared,
    plan_bytes: &[u8],
    contract: &ModelContract,
    set: KernelSetId,
    threads: usize,
    on_device: &str,
) -> Result<ParityOutcome, ParityError> {
    let base = json!({
        "KernelSet": set.name(),
        "Against": "float64 reference executor",
        "Bound": F32_BOUND,
        "BoundMeaning": "max|y - r| / max|r| per output",
        "Input": { "Shape": contract.input.shape, "Seed": SEED,
                   "Pixels": "uniform 8-bit RGB, resized and normalized by the agent's preprocessing (model::image::to_input)" },
        "OnDevice": on_device,
    });
    let runner = match kernels::kernel_set(set) {
        Ok(runner) => runner,
        Err(why) => {
            let mut report = base;
            report["Status"] = ParityStatus::PendingOnDevice.name().into();
            report["Reason"] = why.to_string().into();
            return Ok(ParityOutcome {
                status: ParityStatus::PendingOnDevice,
                summary: format!("parity pending on the device ({why}); the component's Install step runs it"),
                report,
            });
        }
    };
    let plan = Plan::from_bytes(plan_bytes).map_err(ParityError::PlanFile)?;
    let results = model::parity::check(&prepared.specialized, &plan, runner, threads, contract)?;
    let passed = results.iter().all(OutputParity::passed);
    let worst = results.iter().map(|o| o.max_rel_err).fold(0.0, f64::max);
    let status = if passed { ParityStatus::Passed } else { ParityStatus::Failed };
    let mut report = base;
    report["Status"] = status.name().into();
    report["RanOn"] = format!("{} ({} thread(s))", kernels::host_cpu_name(), threads).into();
    report["Outputs"] = results.iter().map(output_json).collect();
    let summary = match results.iter().find(|o| !o.passed()) {
        None => format!("parity passed on {} (max rel err {worst:.1e}, bound {F32_BOUND:.0e})", set.name()),
        Some(o) => {
            format!("parity FAILED on {}: output '{}': {}", set.name(), o.name, o.failure.clone().unwrap_or_default())
        }
    };
    Ok(ParityOutcome { status, summary, report })
}
