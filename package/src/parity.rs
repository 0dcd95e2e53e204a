//! The packaging job's parity check: the plan file exactly as it will be published, loaded
//! back and run on this machine's implementation of the target's kernel set, against the
//! float64 reference executor on the same input. When this machine cannot run the target's
//! set, the report records that verification is pending on the device and the command that
//! does it there.

use harness::model_parity::{compare, OutputParity, F32_BOUND};
use kernels::KernelSetId;
use model::plan::Plan;
use model::{Prepared, Tensor};
use serde_json::{json, Value};

use crate::contract::ModelContract;

/// Seed of the parity input (fixed: reports are reproducible).
pub const SEED: u64 = 0x5eed_0001;

/// The outcome of the check.
#[derive(Debug, Clone)]
pub struct ParityOutcome {
    /// `PASSED`, `FAILED` or `PENDING_ON_DEVICE`.
    pub status: &'static str,
    /// One line for the job's status message.
    pub summary: String,
    /// The report (`parity.json`).
    pub report: Value,
}

/// The parity input: pseudo-random 8-bit RGB pixels, normalized as the contract says.
pub fn input(contract: &ModelContract) -> Tensor {
    let shape = contract.input.shape.clone();
    let plane = shape[2] * shape[3];
    let mut rng = harness::rng::SplitMix::new(SEED);
    let pixels = rng.vec(shape.iter().product(), 0.0, 256.0);
    let i = &contract.input;
    let values = pixels
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let c = (k / plane) % 3;
            ((p.floor() as f64 * i.scale - i.mean[c]) / i.std[c]) as f32
        })
        .collect();
    Tensor::float(shape, values)
}

/// The command that verifies the package on the device (in the recipe's Install step).
pub fn device_command(contract: &ModelContract, set: KernelSetId, artifacts: &str, out: &str) -> String {
    let s = &contract.input.shape;
    format!(
        "edgepack parity {artifacts}/model.onnx --plan {artifacts}/model.eppl --shape {}x{}x{}x{} --kernel-set {} --json {out}",
        s[0],
        s[1],
        s[2],
        s[3],
        set.name()
    )
}

fn output_json(o: &OutputParity) -> Value {
    json!({
        "Name": o.name, "Shape": o.shape, "MaxRelErr": o.max_rel_err, "MeanRelErr": o.mean_rel_err,
        "MaxAbsErr": o.max_abs_err, "Bound": o.bound, "Passed": o.passed(), "Failure": o.failure,
    })
}

/// Runs the check of `plan_bytes` (a plan for `set`) against the reference of `prepared`.
pub fn check(
    prepared: &Prepared,
    plan_bytes: &[u8],
    contract: &ModelContract,
    set: KernelSetId,
    threads: usize,
) -> Result<ParityOutcome, String> {
    let base = json!({
        "KernelSet": set.name(),
        "Against": "float64 reference executor",
        "Bound": F32_BOUND,
        "BoundMeaning": "max|y - r| / max|r| per output",
        "Input": { "Shape": contract.input.shape, "Seed": SEED,
                   "Pixels": "uniform 8-bit RGB, normalized as the model contract says" },
        "OnDevice": device_command(contract, set, "{artifacts:path}", "{work:path}/device-parity.json"),
    });
    let runner = match kernels::kernel_set(set) {
        Ok(runner) => runner,
        Err(why) => {
            let mut report = base;
            report["Status"] = "PENDING_ON_DEVICE".into();
            report["Reason"] = why.to_string().into();
            return Ok(ParityOutcome {
                status: "PENDING_ON_DEVICE",
                summary: format!("parity pending on the device ({why}); the component's Install step runs it"),
                report,
            });
        }
    };
    let plan = Plan::from_bytes(plan_bytes).map_err(|e| format!("the plan file does not load back: {e}"))?;
    let x = input(contract);
    let mut session = plan.session_on(runner, threads).map_err(|e| e.to_string())?;
    let outs = session.run(std::slice::from_ref(&x)).map_err(|e| format!("running the plan: {e}"))?;
    let reference =
        model::reference::run(&prepared.specialized, &[x.to_f64()]).map_err(|e| format!("reference: {e}"))?;
    let names: Vec<String> = plan.outputs.iter().map(|&v| plan.values[v].name.clone()).collect();
    let results: Vec<OutputParity> = outs
        .iter()
        .zip(&reference)
        .zip(&names)
        .map(|((o, r), n)| compare(n, o, &r.reals(), &r.shape, F32_BOUND))
        .collect();
    let passed = results.iter().all(OutputParity::passed);
    let worst = results.iter().map(|o| o.max_rel_err).fold(0.0, f64::max);
    let status = if passed { "PASSED" } else { "FAILED" };
    let mut report = base;
    report["Status"] = status.into();
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
