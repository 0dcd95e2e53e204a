//! The ONNX project's node test cases (`node/test_<op>*`: `model.onnx` plus
//! `test_data_set_0/{input,output}_*.pb`) through the whole model path: import, specialise,
//! optimise, the float64 reference, and plans on kernel sets. Integer inputs (shapes, axes,
//! indices) are bound as constants at plan time, as a caller fixing shapes would.

use std::collections::HashMap;
use std::path::Path;

use kernels::KernelSet;
use model::Tensor;

use crate::error::{read, Error, Result};

/// How one case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every output within the bound on the reference and on every set; the worst
    /// norm-wise relative error.
    Passed(f64),
    /// Refused by the importer or planner with an error naming what is unsupported.
    Refused(String),
    /// Wrong numbers, a wrong shape, or an error that is not a clean refusal.
    Failed(String),
}

/// One rule of `harness/data/onnx-node-exclusions.txt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    /// Case-name pattern (`*` matches any run of characters).
    pub pattern: String,
    /// Text the case's outcome must contain.
    pub text: String,
    /// Why the case does not apply.
    pub reason: String,
}

impl Exclusion {
    /// Whether the rule excludes case `name` with outcome message `outcome`.
    pub fn matches(&self, name: &str, outcome: &str) -> bool {
        glob(&self.pattern, name) && outcome.contains(&self.text)
    }
}

/// `*`-only glob match.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// The exclusion rules shipped with the harness (`harness/data/onnx-node-exclusions.txt`).
pub fn exclusions() -> Result<Vec<Exclusion>> {
    parse_exclusions(include_str!("../data/onnx-node-exclusions.txt"))
}

/// Parses exclusion rules: `pattern | text | reason` a line; `#` comments and blank lines.
pub fn parse_exclusions(text: &str) -> Result<Vec<Exclusion>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            let f: Vec<&str> = l.splitn(3, '|').map(str::trim).collect();
            match f.as_slice() {
                [p, t, r] if !p.is_empty() && !t.is_empty() && !r.is_empty() => {
                    Ok(Exclusion { pattern: p.to_string(), text: t.to_string(), reason: r.to_string() })
                }
                _ => Err(Error::case(format!("exclusions, line {}", i + 1), "expected `pattern | text | reason`")),
            }
        })
        .collect()
}

/// The bound on `max|y − e| / max|e|` for these small cases (float32 arithmetic).
pub const NODE_BOUND: f64 = 1e-5;

fn read_tensor(path: &Path) -> Result<Tensor> {
    let t = onnx::decode_tensor(&read(path)?).map_err(|e| Error::data(path, e))?;
    Tensor::from_onnx(&t).map_err(|e| Error::data(path, e))
}

fn compare(name: &str, got: &Tensor, expected: &Tensor) -> Result<f64> {
    if got.shape != expected.shape {
        return Err(Error::mismatch(name, format!("shape {:?}, expected {:?}", got.shape, expected.shape)));
    }
    match (got.floats(), expected.floats(), got.ints(), expected.ints()) {
        (Some(y), Some(e), _, _) => {
            let scale = e.iter().fold(0.0f64, |m, v| m.max((*v as f64).abs())).max(1e-30);
            let mut worst = 0.0f64;
            for (i, (&a, &b)) in y.iter().zip(e).enumerate() {
                let err = if (a.is_nan() && b.is_nan()) || a == b { 0.0 } else { (a as f64 - b as f64).abs() / scale };
                if err.is_nan() || err > NODE_BOUND {
                    return Err(Error::mismatch(name, format!("[{i}] = {a}, expected {b}")));
                }
                worst = worst.max(err);
            }
            Ok(worst)
        }
        (_, _, Some(y), Some(e)) if y == e => Ok(0.0),
        _ => Err(Error::mismatch(name, "values or types differ")),
    }
}

/// Runs one case directory on the reference and on each of `sets`: first with only integer
/// inputs bound; if that is refused, again with every input but the first bound as a
/// constant (weights, bounds, scales: what a model stores as initializers).
pub fn run(dir: &Path, sets: &[Box<dyn KernelSet>]) -> Outcome {
    run_with(dir, &|g, inputs| {
        let mut outs = Vec::new();
        for set in sets {
            let plan = model::plan::build(g, &**set)?;
            outs.push((set.info().name.to_owned(), plan.session(1)?.run(inputs)?));
        }
        Ok(outs)
    })
}

/// Runs one case like [`run`] on a device session (f32) of set `id` (the GPU's memory for
/// `cuda`, host buffers for a CPU set), its plan built for the device; also says whether every
/// step of the plan ran on the device.
pub fn run_device(dir: &Path, id: kernels::KernelSetId) -> (Outcome, bool) {
    let whole = std::cell::Cell::new(false);
    let outcome = run_with(dir, &|g, inputs| {
        let set = kernels::kernel_set(id)?;
        let plan = model::plan::build_for_device(g, &*set)?;
        let mut session = plan.device_session(kernels::device::Precision::F32)?;
        whole.set(session.whole_on_device());
        Ok(vec![(format!("{} device", set.info().name), session.run(inputs)?)])
    });
    (outcome, whole.get())
}

/// Runs one case with `plans` (which builds and runs plans of the optimised graph on its
/// float inputs, naming each run): first with only integer inputs bound, then if refused
/// with every input but the first bound.
fn run_with(dir: &Path, plans: &Plans<'_>) -> Outcome {
    let outcome = |r: Result<f64>| match r {
        Ok(worst) => Outcome::Passed(worst),
        Err(Error::Model(e)) if e.is_refusal() => Outcome::Refused(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    match outcome(run_inner(dir, plans, false)) {
        Outcome::Refused(first) => match outcome(run_inner(dir, plans, true)) {
            Outcome::Refused(_) => Outcome::Refused(first),
            other => other,
        },
        other => other,
    }
}

/// Builds and runs plans of an optimised case graph on its float inputs: each run's name and
/// outputs.
type Plans<'a> =
    dyn Fn(&model::Graph, &[Tensor]) -> std::result::Result<Vec<(String, Vec<Tensor>)>, model::ModelError> + 'a;

fn run_inner(dir: &Path, plans: &Plans<'_>, bind_all_but_first: bool) -> Result<f64> {
    let bytes = read(&dir.join("model.onnx"))?;
    let mut g = model::import(&bytes)?;
    let data = dir.join("test_data_set_0");
    let mut shapes = Vec::new();
    let mut bound = HashMap::new();
    let mut floats = Vec::new();
    for (i, &id) in g.inputs.clone().iter().enumerate() {
        let t = read_tensor(&data.join(format!("input_{i}.pb")))?;
        if t.dtype.is_int() || (bind_all_but_first && i > 0) {
            bound.insert(g.values[id].name.clone(), t);
        } else {
            shapes.push(t.shape.clone());
            floats.push(t);
        }
    }
    let expected: Vec<Tensor> =
        (0..g.outputs.len()).map(|i| read_tensor(&data.join(format!("output_{i}.pb")))).collect::<Result<_>>()?;
    model::specialize(&mut g, &shapes, bound)?;
    let names: Vec<String> = g.outputs.iter().map(|&o| g.values[o].name.clone()).collect();
    let mut worst = 0.0f64;
    // Integer outputs are computed at plan time (constant folding): compare those directly.
    let all_folded = g.outputs.iter().all(|o| g.constants.contains_key(o));
    if all_folded {
        for ((o, e), n) in g.outputs.iter().zip(&expected).zip(&names) {
            worst = worst.max(compare(n, &g.constants[o], e)?);
        }
        return Ok(worst);
    }
    let wide: Vec<Tensor<f64>> = floats.iter().map(Tensor::to_f64).collect();
    let reference = model::reference::run(&g, &wide)?;
    for ((r, e), n) in reference.iter().zip(&expected).zip(&names) {
        worst = worst.max(compare(&format!("{n} (reference)"), &r.to_f32(), e)?);
    }
    let mut optimized = g.clone();
    model::optimize(&mut optimized);
    for (run, outs) in plans(&optimized, &floats)? {
        for ((y, e), n) in outs.iter().zip(&expected).zip(&names) {
            worst = worst.max(compare(&format!("{n} ({run})"), y, e)?);
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_rules_match_as_documented() {
        assert!(glob("*", "test_x"));
        assert!(glob("test_training_dropout*", "test_training_dropout_mask"));
        assert!(glob("test_qlinearmatmul_*_int8_float32", "test_qlinearmatmul_2D_int8_float32"));
        assert!(!glob("test_qlinearmatmul_*_int8_float32", "test_qlinearmatmul_2D_uint8_float32"));
        assert!(glob("test_a", "test_a"));
        assert!(!glob("test_a", "test_ab"));
        assert!(!glob("a*b*c", "ac"));
        let r = parse_exclusions("# c\n\n* | DOUBLE | float64\n").unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].matches("test_cast", "type DOUBLE: no"));
        assert!(!r[0].matches("test_cast", "type FLOAT16"));
        assert!(parse_exclusions("just text").is_err());
        assert!(exclusions().unwrap().len() >= 10);
    }
}
