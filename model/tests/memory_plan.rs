//! The static buffer plan on small graphs built in code: no two values that are live at the
//! same time share a slot (but for an in-place step, where the output takes over the slot of
//! the input that dies there), every value fits its slot, the arena is exactly the sum of the
//! slots, and the step kinds are the ones the planner is meant to choose.

mod common;

use common::{check_plans, input, Builder};
use model::plan::{inputs_of, output_of, Plan, Step};

/// Plans `b` for `shape` on the scalar set (the same plan shape on every host).
fn plan(b: &Builder, shape: &[usize]) -> Plan {
    let p = model::prepare(&b.bytes(13), &[shape.to_vec()]).expect("prepare");
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).expect("scalar set");
    let plan = model::plan::build(&p.optimized, &*set).expect("plan");
    let x = input(shape);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).expect("reference");
    check_plans(&p.optimized, &x, &expected, 1e-5);
    plan
}

/// Each value's first and last step: graph inputs from before the first step, outputs until
/// after the last.
fn lifetimes(plan: &Plan) -> Vec<Option<(usize, usize)>> {
    let end = plan.steps.len();
    let mut life: Vec<Option<(usize, usize)>> = vec![None; plan.values.len()];
    for &i in &plan.inputs {
        life[i] = Some((0, 0));
    }
    for (s, step) in plan.steps.iter().enumerate() {
        let out = output_of(&step.step);
        life[out] = Some((s, life[out].map_or(s, |l| l.1.max(s))));
        for v in inputs_of(&step.step) {
            let (first, last) = life[v].expect("a value is written before it is read");
            life[v] = Some((first, last.max(s)));
        }
    }
    for &o in &plan.outputs {
        if let Some((first, _)) = life[o] {
            life[o] = Some((first, end));
        }
    }
    life
}

/// The memory plan's invariants on `plan`.
fn assert_sound(plan: &Plan) {
    let life = lifetimes(plan);
    let in_place = |a: usize, b: usize| {
        // `b` is written by the step where `a` is read for the last time, over `a`'s slot.
        plan.steps.iter().enumerate().any(|(s, st)| {
            output_of(&st.step) == b && inputs_of(&st.step).contains(&a) && life[a].is_some_and(|l| l.1 == s)
        })
    };
    for (a, la) in life.iter().enumerate() {
        let Some((a0, a1)) = *la else { continue };
        let va = &plan.values[a];
        assert!(va.words() <= plan.slots[va.slot], "`{}` ({} words) overflows slot {}", va.name, va.words(), va.slot);
        for (b, lb) in life.iter().enumerate().skip(a + 1) {
            let Some((b0, b1)) = *lb else { continue };
            let vb = &plan.values[b];
            let overlap = a0 <= b1 && b0 <= a1;
            if overlap && va.slot == vb.slot && va.words() > 0 && vb.words() > 0 {
                assert!(
                    in_place(a, b) || in_place(b, a),
                    "`{}` (steps {a0}..={a1}) and `{}` (steps {b0}..={b1}) share slot {} while both live",
                    va.name,
                    vb.name,
                    va.slot
                );
            }
        }
    }
    assert_eq!(plan.activation_bytes(), plan.slots.iter().sum::<usize>() * 4);
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.steps
        .iter()
        .map(|s| match &s.step {
            Step::Conv { .. } => "Conv",
            Step::Map { .. } => "Map",
            Step::Binary { .. } => "Binary",
            Step::Concat { .. } => "Concat",
            Step::Relayout { .. } => "Relayout",
            Step::Copy { .. } => "Copy",
            Step::GlobalAveragePool { .. } => "GlobalAveragePool",
            Step::Pool { .. } => "Pool",
            Step::Gemm { .. } => "Gemm",
            _ => "other",
        })
        .collect()
}

#[test]
fn a_chain_of_element_wise_steps_runs_in_place_in_one_slot() {
    let shape = [1, 8, 16, 16];
    let mut b = Builder::new(&shape);
    let k = b.weight("k", &[1, 8, 16, 16]);
    let m = b.weight("m", &[1, 8, 16, 16]);
    b.node("Sigmoid", &["x"], "s", vec![]);
    b.node("Mul", &["s", &k], "n", vec![]);
    b.node("Tanh", &["n"], "a", vec![]);
    b.node("Add", &["a", &m], "y", vec![]);
    b.output("y");
    let plan = plan(&b, &shape);
    assert_sound(&plan);
    let words: usize = shape.iter().product();
    // The input keeps its slot (the caller's data is copied in once); every later step writes
    // over the value that dies there: one more slot of the same size, nothing else.
    assert_eq!(plan.slots.len(), 2, "{:?} {:?}", kinds(&plan), plan.slots);
    assert_eq!(plan.activation_bytes(), 2 * words * 4);
}

#[test]
fn a_residual_block_reuses_dead_slots_and_never_overlaps_live_values() {
    let shape = [1, 4, 12, 10];
    let mut b = Builder::new(&shape);
    b.conv("x", 4, 8, 3, 1, "a");
    b.node("Relu", &["a"], "ar", vec![]);
    b.conv("ar", 8, 8, 3, 1, "b");
    b.node("Relu", &["b"], "br", vec![]);
    b.conv("br", 8, 8, 3, 1, "c");
    b.node("Add", &["c", "ar"], "r", vec![]);
    b.node("Relu", &["r"], "rr", vec![]);
    b.node("Concat", &["rr", "ar"], "cat", vec![onnx::build::int("axis", 1)]);
    b.conv("cat", 16, 8, 1, 0, "d");
    b.conv("d", 8, 8, 3, 1, "e");
    b.conv("e", 8, 8, 3, 1, "y");
    b.output("y");
    let plan = plan(&b, &shape);
    assert_sound(&plan);
    let k = kinds(&plan);
    // Activations and the residual add fuse into the convolutions' epilogues: one Conv step
    // per convolution, no separate Map or Binary step.
    assert_eq!(k.iter().filter(|&&s| s == "Conv").count(), 6, "{k:?}");
    assert!(!k.contains(&"Map") && !k.contains(&"Binary"), "{k:?}");
    // The last three convolutions' inputs are dead by the time their successors write: the
    // arena is smaller than one slot per value.
    let values_words: usize = plan.steps.iter().map(|s| plan.values[output_of(&s.step)].words()).sum::<usize>()
        + plan.values[plan.inputs[0]].words();
    assert!(plan.slots.iter().sum::<usize>() < values_words, "no slot was reused: {:?}", plan.slots);
}

#[test]
fn an_element_wise_step_does_not_write_over_an_input_still_needed() {
    let shape = [1, 8, 6, 6];
    let mut b = Builder::new(&shape);
    b.node("Sigmoid", &["x"], "s", vec![]);
    b.node("Tanh", &["s"], "t", vec![]);
    b.node("Mul", &["t", "s"], "y", vec![]);
    b.output("y");
    let plan = plan(&b, &shape);
    assert_sound(&plan);
    // `s` is read again by the Mul: the Tanh needs a slot of its own; the Mul may take over
    // the slot of `t` (it dies there). Input, `s`, `t`: three slots.
    assert_eq!(plan.slots.len(), 3, "{:?} {:?}", kinds(&plan), plan.slots);
}
