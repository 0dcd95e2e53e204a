//! `LSTM` and `GRU` lowered to a GEMM over every time step plus a `Recurrence` step: each
//! form against the float64 reference on every kernel set of this host, and the forms the
//! lowering leaves to `Eval` still computed right.

mod common;

use common::{check_plans, input, Builder};
use model::plan::Step;
use onnx::build;

/// One recurrent layer's configuration.
struct Layer {
    gru: bool,
    /// `forward`, `reverse` or `bidirectional`.
    direction: &'static str,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    batch_first: bool,
    bias: bool,
    initial: bool,
    peepholes: bool,
    clip: Option<f32>,
    input_forget: bool,
    linear_before_reset: bool,
    /// Also use `Y_h` (the lowering then leaves the node to `Eval`).
    use_y_h: bool,
}

const LSTM: Layer = Layer {
    gru: false,
    direction: "forward",
    seq: 7,
    batch: 1,
    input: 19,
    hidden: 24,
    batch_first: false,
    bias: true,
    initial: false,
    peepholes: false,
    clip: None,
    input_forget: false,
    linear_before_reset: true,
    use_y_h: false,
};

/// Builds the layer (input `x`, output `y`, and `y_h` when used), checks its plans against
/// the reference, and says how many `Recurrence` steps the plan of the first host set has.
fn check(l: &Layer) -> usize {
    let dirs = if l.direction == "bidirectional" { 2 } else { 1 };
    let gates = if l.gru { 3 } else { 4 };
    let (h, gh) = (l.hidden, gates * l.hidden);
    let x_shape = if l.batch_first { [l.batch, l.seq, l.input] } else { [l.seq, l.batch, l.input] };
    let state = if l.batch_first { [l.batch, dirs, h] } else { [dirs, l.batch, h] };
    let mut b = Builder::new(&x_shape);
    let w = b.weight("w", &[dirs, gh, l.input]);
    let r = b.weight("r", &[dirs, gh, h]);
    let mut inputs = vec!["x".to_string(), w, r];
    if l.bias || l.initial || l.peepholes {
        inputs.push(if l.bias { b.weight("b", &[dirs, 2 * gh]) } else { String::new() });
    }
    if l.initial || l.peepholes {
        let lens: Vec<i64> = vec![l.seq as i64; l.batch];
        inputs.push(b.int_constant("lens", &[l.batch], &lens));
        inputs.push(if l.initial { b.weight("h0", &state) } else { String::new() });
    }
    if !l.gru && (l.initial || l.peepholes) {
        inputs.push(if l.initial { b.weight("c0", &state) } else { String::new() });
        if l.peepholes {
            inputs.push(b.weight("p", &[dirs, 3 * h]));
        }
    }
    let mut attrs = vec![build::int("hidden_size", h as i64), build::string("direction", l.direction)];
    if l.batch_first {
        attrs.push(build::int("layout", 1));
    }
    if let Some(c) = l.clip {
        attrs.push(build::float("clip", c));
    }
    if l.input_forget {
        attrs.push(build::int("input_forget", 1));
    }
    if l.gru {
        attrs.push(build::int("linear_before_reset", i64::from(l.linear_before_reset)));
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let outputs: &[&str] = if l.use_y_h { &["y", "y_h"] } else { &["y"] };
    b.node_n(if l.gru { "GRU" } else { "LSTM" }, &refs, outputs, attrs);
    for o in outputs {
        b.output(o);
    }
    let p = model::prepare(&b.bytes(14), &[x_shape.to_vec()]).unwrap();
    let x = input(&x_shape);
    let expected = model::reference::run(&p.specialized, &[x.to_f64()]).unwrap();
    check_plans(&p.optimized, &x, &expected, 2e-6);
    let set = kernels::host_kernel_sets().0.remove(0);
    let plan = model::plan::build(&p.optimized, &*set).unwrap();
    plan.steps.iter().filter(|s| matches!(s.step, Step::Recurrence { .. })).count()
}

#[test]
fn lstm_forms_run_as_a_gemm_and_a_recurrence() {
    assert_eq!(check(&LSTM), 1);
    assert_eq!(check(&Layer { direction: "reverse", bias: false, ..LSTM }), 1);
    assert_eq!(check(&Layer { direction: "bidirectional", batch: 3, ..LSTM }), 1);
    assert_eq!(check(&Layer { batch_first: true, batch: 2, direction: "bidirectional", ..LSTM }), 1);
    assert_eq!(check(&Layer { initial: true, peepholes: true, batch: 2, ..LSTM }), 1);
    assert_eq!(check(&Layer { clip: Some(0.3), input_forget: true, hidden: 5, seq: 1, ..LSTM }), 1);
}

#[test]
fn gru_with_linear_before_reset_runs_as_a_recurrence() {
    let gru = Layer { gru: true, ..LSTM };
    assert_eq!(check(&gru), 1);
    assert_eq!(check(&Layer { direction: "bidirectional", batch: 2, initial: true, ..gru }), 1);
    assert_eq!(check(&Layer { batch_first: true, batch: 3, clip: Some(0.5), hidden: 17, ..gru }), 1);
}

#[test]
fn forms_the_lowering_leaves_to_eval_still_compute_right() {
    assert_eq!(check(&Layer { use_y_h: true, ..LSTM }), 0);
    assert_eq!(check(&Layer { gru: true, linear_before_reset: false, ..LSTM }), 0);
}
