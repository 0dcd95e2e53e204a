//! Parity of a plan against the float64 reference executor: the norm-wise comparison of one
//! output, and the whole check on the contract's seeded input (what the packaging job runs
//! before it publishes and what the edge agent runs on the device).

use crate::Tensor;

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

/// Why a parity check could not compare (a comparison that fails is an [`OutputParity`] with
/// its failure, not an error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    /// The contract's input size makes no image.
    #[error("{0}")]
    Image(#[from] crate::image::ImageSizeError),
    /// The plan's session could not start on the kernel set.
    #[error("starting the plan: {0}")]
    Session(crate::ModelError),
    /// The plan failed on the image.
    #[error("running the plan: {0}")]
    Run(crate::ModelError),
    /// The float64 reference failed on the image.
    #[error("reference executor: {0}")]
    Reference(crate::ModelError),
}

/// Seed of the parity image (fixed: reports are reproducible).
pub const SEED: u64 = 0x5eed_0001;

/// Runs `plan` on `set` with `threads` threads and the float64 reference of `specialized` (the
/// graph the plan was built from, before optimisation) on the contract's seeded image, fed
/// through [`crate::image::to_input`]; one comparison per output under [`F32_BOUND`].
pub fn check(
    specialized: &crate::Graph,
    plan: &crate::plan::Plan,
    set: Box<dyn kernels::KernelSet>,
    threads: usize,
    contract: &crate::contract::ModelContract,
) -> Result<Vec<OutputParity>, CheckError> {
    let s = &contract.input.shape;
    let pixels = crate::image::seeded_pixels(contract, SEED);
    let image = crate::image::Rgb8::new(s[3], s[2], &pixels)?;
    let x = crate::image::to_input(image, contract);
    // The session (its arena) is gone before the reference runs: the two peaks do not add up.
    let outs = {
        let mut session = plan.session_on(set, threads).map_err(CheckError::Session)?;
        session.run(std::slice::from_ref(&x)).map_err(CheckError::Run)?
    };
    let reference = crate::reference::run(specialized, &[x.to_f64()]).map_err(CheckError::Reference)?;
    let names = plan.outputs.iter().map(|&v| plan.values[v].name.as_str());
    Ok(outs
        .iter()
        .zip(&reference)
        .zip(names)
        .map(|((o, r), n)| match r.floats() {
            Some(expected) => compare(n, o, expected, &r.shape, F32_BOUND),
            None => compare(n, o, &r.reals(), &r.shape, F32_BOUND),
        })
        .collect())
}
