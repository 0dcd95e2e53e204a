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
