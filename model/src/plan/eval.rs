//! `Eval` steps: a node with no kernel of its own, run by the same code the float64
//! reference uses ([`crate::reference::eval`] and [`crate::portable`]) on its run-time
//! inputs, so data-dependent work (run-time `Slice` bounds, gathers of computed indices,
//! integer tensors) runs on the device exactly as it folds at plan time. Float inputs are
//! widened to float64 and the result rounded to float32; integers travel through the arena
//! as the bits of `i64`s.

use serde::{Deserialize, Serialize};

use super::{Plan, Step};
use crate::error::{ModelError, Result};
use crate::ir::Node;
use crate::tensor::{DType, Tensor};

/// An input of an `Eval` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EvalInput {
    /// A plan value (plain layout).
    Value(usize),
    /// A float constant of the plan, with its shape.
    Const {
        /// Index into the plan's float constants.
        index: usize,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// An integer constant, inline (shape parameters, axes, indices).
    Ints {
        /// Shape.
        shape: Vec<usize>,
        /// Type.
        dtype: DType,
        /// Values.
        values: Vec<i64>,
    },
}

/// Integers as arena words: each `i64` as its low and high 32 bits.
pub(crate) fn encode_ints(v: &[i64], out: &mut [f32]) {
    for (w, &x) in out.chunks_exact_mut(2).zip(v) {
        let bits = x as u64;
        w[0] = f32::from_bits(bits as u32);
        w[1] = f32::from_bits((bits >> 32) as u32);
    }
}

/// The inverse of [`encode_ints`].
pub(crate) fn decode_ints(words: &[f32]) -> Vec<i64> {
    words.chunks_exact(2).map(|w| (u64::from(w[0].to_bits()) | (u64::from(w[1].to_bits()) << 32)) as i64).collect()
}

/// Runs an `Eval` step: reads its inputs (arena words, or the session's table of
/// data-dependent values), evaluates the node and writes output `index`.
pub(super) fn run<'a>(
    plan: &'a Plan,
    step: &Step,
    val: &dyn Fn(usize) -> &'a [f32],
    out: &mut [f32],
    dynamic: &mut [Option<Tensor>],
) -> Result<()> {
    let Step::Eval { op, inputs, index, output } = step else { unreachable!("eval steps only") };
    let mut ins: Vec<Option<Tensor<f64>>> = Vec::with_capacity(inputs.len());
    for input in inputs {
        ins.push(match input {
            None => None,
            Some(EvalInput::Value(v)) if plan.values[*v].dynamic => Some(
                dynamic
                    .get(*v)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| bad("a data-dependent value is read before it is computed"))?
                    .to_f64(),
            ),
            Some(EvalInput::Value(v)) => Some(plan.read_value(*v, val(*v)).to_f64()),
            Some(EvalInput::Const { index, shape }) => {
                let c = plan.consts.get(*index).ok_or_else(|| bad("a constant index is out of range"))?;
                if shape.iter().product::<usize>() != c.len() {
                    return Err(bad("a constant's shape does not match its values"));
                }
                Some(Tensor::float(shape.clone(), c.clone()).to_f64())
            }
            Some(EvalInput::Ints { shape, dtype, values }) => {
                if shape.iter().product::<usize>() != values.len() {
                    return Err(bad("an integer constant's shape does not match its values"));
                }
                Some(Tensor::int(shape.clone(), *dtype, values.clone()).to_f64())
            }
        });
    }
    let pv = &plan.values[*output];
    let node = Node { name: pv.name.clone(), op: op.clone(), inputs: Vec::new(), outputs: Vec::new() };
    let refs: Vec<Option<&Tensor<f64>>> = ins.iter().map(Option::as_ref).collect();
    let mut outs = crate::reference::eval_on(&node, &refs)?;
    if *index >= outs.len() {
        return Err(bad("the node has fewer outputs than the step names"));
    }
    let y = outs.swap_remove(*index);
    if y.dtype.is_int() != pv.dtype.is_int() {
        return Err(bad("the node computed a type the plan did not expect"));
    }
    if pv.dynamic {
        let slot = dynamic.get_mut(*output).ok_or_else(|| bad("a value index is out of range"))?;
        *slot = Some(y.to_f32());
        return Ok(());
    }
    if y.shape != pv.shape {
        return Err(crate::error::shape_error(
            &node.name,
            op.name(),
            format!("computed shape {:?}, the plan expects {:?}", y.shape, pv.shape),
        ));
    }
    match (y.floats(), y.ints()) {
        (Some(f), _) => out.iter_mut().zip(f).for_each(|(o, &v)| *o = v as f32),
        (_, Some(i)) => encode_ints(i, out),
        _ => unreachable!("float or int"),
    }
    Ok(())
}

fn bad(what: &str) -> ModelError {
    ModelError::PlanFile(format!("eval step: {what}"))
}

/// Values an `Eval` step reads.
pub(super) fn reads(inputs: &[Option<EvalInput>]) -> Vec<usize> {
    inputs
        .iter()
        .filter_map(|i| match i {
            Some(EvalInput::Value(v)) => Some(*v),
            _ => None,
        })
        .collect()
}

/// Checks an `Eval` step's constant indices (for loaded plan files).
pub(super) fn consts_ok(inputs: &[Option<EvalInput>], consts: usize) -> bool {
    inputs.iter().all(|i| !matches!(i, Some(EvalInput::Const { index, .. }) if *index >= consts))
}
