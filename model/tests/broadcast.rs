//! Broadcasting binary steps between two run-time values (a squeeze-excitation gate, a
//! per-image bias on the left, two full maps) against the float64 reference, on maps large
//! enough that the steps run in several blocks whose first rows start inside an image.

mod common;

use common::{check_model, Builder};
use model::plan::Step;

#[test]
fn broadcast_binary_steps_between_run_time_values_match_the_reference() {
    // 2 images × 24 channels × 40 × 40: 38,400 elements per image, so blocks of whole rows
    // (pixels of 24 channels) begin mid-image and the row counters must carry across images.
    let shape = [2, 3, 40, 40];
    let mut b = Builder::new(&shape);
    b.conv("x", 3, 24, 3, 1, "c");
    b.conv("x", 3, 24, 1, 0, "d");
    b.node("GlobalAveragePool", &["c"], "g", vec![]);
    b.node("Sigmoid", &["g"], "s", vec![]);
    // The gate on the right, a per-image, per-channel value on the left, two full maps.
    b.node("Mul", &["c", "s"], "gated", vec![]);
    b.node("Add", &["s", "d"], "shifted", vec![]);
    b.node("Sub", &["c", "d"], "difference", vec![]);
    b.node("Div", &["c", "s"], "scaled", vec![]);
    for o in ["gated", "shifted", "difference", "scaled"] {
        b.output(o);
    }
    let plan = check_model(&b, &shape, 1e-5);
    let binary = plan.steps.iter().filter(|s| matches!(s.step, Step::Binary { .. })).count();
    assert_eq!(binary, 4, "each of the four runs as a broadcasting binary step");
}

#[test]
fn rank_five_broadcasts_run_natively_on_merged_axes_and_the_rest_are_evaluated() {
    // Split attention (ResNeSt): a [N, radix, C/radix, H, W] map times its [N, radix, C/radix,
    // 1, 1] weights; merged, that is [N·radix·C/radix, H·W] times a value per row.
    let shape = [2, 3, 12, 10];
    let mut b = Builder::new(&shape);
    b.conv("x", 3, 16, 3, 1, "c");
    b.node("GlobalAveragePool", &["c"], "g", vec![]);
    b.node("Sigmoid", &["g"], "s", vec![]);
    let five = b.int_constant("five", &[5], &[2, 2, 8, 12, 10]);
    let gate = b.int_constant("gate", &[5], &[2, 2, 8, 1, 1]);
    b.node("Reshape", &["c", &five], "c5", vec![]);
    b.node("Reshape", &["s", &gate], "s5", vec![]);
    b.node("Mul", &["c5", "s5"], "attended", vec![]);
    // The gate on the left, a map broadcast over the radix axis on the right.
    b.conv("x", 3, 8, 1, 0, "d");
    let half = b.int_constant("half", &[5], &[2, 1, 8, 12, 10]);
    b.node("Reshape", &["d", &half], "d5", vec![]);
    b.node("Sub", &["s5", "d5"], "shifted", vec![]);
    // A constant broadcast on every other axis: nothing merges, five axes remain, and the
    // node runs as an `Eval` step.
    let steps: Vec<f32> = (0..24).map(|v| v as f32 * 0.25 - 3.0).collect();
    let k = b.constant("k", &[1, 2, 1, 12, 1], &steps);
    b.node("Add", &["c5", &k], "offset", vec![]);
    for o in ["attended", "shifted", "offset"] {
        b.output(o);
    }
    let plan = check_model(&b, &shape, 1e-5);
    let count = |f: fn(&Step) -> bool| plan.steps.iter().filter(|s| f(&s.step)).count();
    assert_eq!(count(|s| matches!(s, Step::Binary { .. })), 2, "two binary steps: {:?}", common::ops(&plan));
    assert_eq!(count(|s| matches!(s, Step::Eval { .. })), 1, "one evaluated step: {:?}", common::ops(&plan));
}

#[test]
fn sums_over_a_short_axis_run_as_crops_and_adds() {
    // Split attention sums its radix groups: [N, radix, C, H, W] over axis 1 (keepdims 0);
    // a middle axis of 8 (keepdims 1) runs the same way; an axis of 12 stays an Eval step.
    let shape = [2, 3, 12, 10];
    let mut b = Builder::new(&shape);
    b.conv("x", 3, 24, 3, 1, "c");
    let five = b.int_constant("five", &[5], &[2, 3, 8, 12, 10]);
    b.node("Reshape", &["c", &five], "c5", vec![]);
    let (one, two) = (b.int_constant("one", &[1], &[1]), b.int_constant("two", &[1], &[2]));
    b.node("ReduceSum", &["c5", &one], "radix", vec![onnx::build::int("keepdims", 0)]);
    b.node("ReduceSum", &["c5", &two], "rows", vec![]);
    b.node("ReduceSum", &["c", &two], "columns", vec![]);
    for o in ["radix", "rows", "columns"] {
        b.output(o);
    }
    let plan = check_model(&b, &shape, 1e-5);
    let count = |f: fn(&Step) -> bool| plan.steps.iter().filter(|s| f(&s.step)).count();
    // radix: 3 crops, 2 adds; rows: 8 crops, 7 adds; columns (12 terms): an Eval step.
    assert_eq!(count(|s| matches!(s, Step::Crop { .. })), 11, "{:?}", common::ops(&plan));
    assert_eq!(count(|s| matches!(s, Step::Binary { .. })), 9, "{:?}", common::ops(&plan));
    assert_eq!(count(|s| matches!(s, Step::Eval { .. })), 1, "{:?}", common::ops(&plan));
}
