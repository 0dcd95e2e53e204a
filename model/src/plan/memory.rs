//! The static buffer plan: each value gets a slot for its lifetime; slots are reused once
//! their value is dead (best fit by size), and element-wise steps and copies (reshapes) write
//! in place over an input that dies there.

use super::{Operand, Plan, Step};

/// Values a step reads, and whether the step may write over its first input in place.
pub(crate) fn reads(step: &Step) -> (Vec<usize>, bool) {
    let v = |o: &Operand| match o {
        Operand::Value(v) => Some(*v),
        Operand::Const(_) => None,
    };
    match step {
        Step::Conv { input, residual, gate, .. } => {
            (std::iter::once(*input).chain(*residual).chain(*gate).collect(), false)
        }
        Step::ExpandDepthwise { input, residual, .. } => (std::iter::once(*input).chain(*residual).collect(), false),
        Step::Map { input, .. } => (vec![*input], true),
        Step::Binary { a, b, .. } => (v(&a.0).into_iter().chain(v(&b.0)).collect(), v(&a.0).is_some()),
        Step::GlobalAveragePool { input, .. }
        | Step::Pool { input, .. }
        | Step::Resize { input, .. }
        | Step::Relayout { input, .. }
        | Step::DepthToSpace { input, .. }
        | Step::Gemm { a: input, .. }
        | Step::Softmax { input, .. }
        | Step::Transpose { input, .. }
        | Step::Crop { input, .. }
        | Step::Gather { input, .. }
        | Step::LayerNorm { input, .. }
        | Step::GroupNorm { input, .. }
        | Step::Recurrence { xw: input, .. } => (vec![*input], false),
        Step::MatMul { a, b, .. } => (vec![*a, *b], false),
        Step::Concat { inputs, .. } => (inputs.iter().filter_map(v).collect(), false),
        Step::Eval { inputs, .. } => (super::eval::reads(inputs), false),
        // A copy of a value that dies there takes over its slot and copies nothing.
        Step::Copy { input, .. } => (v(input).into_iter().collect(), true),
    }
}

/// The value a step writes.
pub(crate) fn writes(step: &Step) -> usize {
    match step {
        Step::Conv { output, .. }
        | Step::ExpandDepthwise { output, .. }
        | Step::Map { output, .. }
        | Step::GlobalAveragePool { output, .. }
        | Step::Pool { output, .. }
        | Step::Resize { output, .. }
        | Step::Concat { output, .. }
        | Step::Relayout { output, .. }
        | Step::DepthToSpace { output, .. }
        | Step::Copy { output, .. }
        | Step::Gemm { output, .. }
        | Step::Softmax { output, .. }
        | Step::MatMul { output, .. }
        | Step::Transpose { output, .. }
        | Step::Crop { output, .. }
        | Step::Gather { output, .. }
        | Step::LayerNorm { output, .. }
        | Step::GroupNorm { output, .. }
        | Step::Recurrence { output, .. }
        | Step::Eval { output, .. } => *output,
        Step::Binary { output, .. } => output.0,
    }
}

/// Assigns every value a slot and sizes the slots.
pub(crate) fn assign(plan: &mut Plan) {
    let n = plan.values.len();
    let end = plan.steps.len();
    let mut last_use = vec![0usize; n];
    for (s, step) in plan.steps.iter().enumerate() {
        for r in reads(&step.step).0 {
            last_use[r] = s;
        }
    }
    for &o in &plan.outputs {
        last_use[o] = end;
    }
    let mut slots: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut live: Vec<usize> = Vec::new();
    for &i in &plan.inputs {
        let s = slots.len();
        slots.push(plan.values[i].words());
        plan.values[i].slot = s;
        live.push(i);
    }
    // Graph inputs keep their slots: the caller's data is copied in once per run.
    let pinned: Vec<usize> =
        plan.values.iter().enumerate().filter(|(i, _)| plan.inputs.contains(i)).map(|(_, v)| v.slot).collect();
    for s in 0..plan.steps.len() {
        let (inputs, in_place_ok) = reads(&plan.steps[s].step);
        let out = writes(&plan.steps[s].step);
        let len = plan.values[out].words();
        // Free what died before this step.
        live.retain(|&v| {
            if last_use[v] < s {
                let slot = plan.values[v].slot;
                if !pinned.contains(&slot) {
                    free.push(slot);
                }
                false
            } else {
                true
            }
        });
        let first = inputs.first().copied();
        let in_place = in_place_ok
            && first.is_some_and(|i| {
                last_use[i] == s
                    && !plan.inputs.contains(&i)
                    && plan.values[i].words() == len
                    && (plan.values[i].layout == plan.values[out].layout
                        || matches!(plan.steps[s].step, Step::Copy { .. }))
                    && inputs.iter().filter(|&&x| x == i).count() == 1
            });
        let slot = if in_place {
            // The slot passes from the dying input to the output.
            let i = first.expect("checked");
            live.retain(|&v| v != i);
            plan.values[i].slot
        } else {
            match free.iter().enumerate().filter(|(_, &f)| slots[f] >= len).min_by_key(|(_, &f)| slots[f]) {
                Some((k, _)) => free.swap_remove(k),
                None => match free.iter().enumerate().max_by_key(|(_, &f)| slots[f]) {
                    Some((k, &f)) => {
                        slots[f] = len;
                        free.swap_remove(k)
                    }
                    None => {
                        slots.push(len);
                        slots.len() - 1
                    }
                },
            }
        };
        plan.values[out].slot = slot;
        live.push(out);
    }
    plan.slots = slots;
}
