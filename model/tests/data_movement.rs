//! Concatenations and splits of run-time values split across threads: outputs large enough
//! to run in several blocks, whose blocks start in the middle of a pixel's channels, checked
//! against the float64 reference on every host kernel set, one thread against two bit for bit.

mod common;

use common::{check_model, Builder};
use model::plan::Step;
use onnx::build;

#[test]
fn concat_and_split_in_blocks_match_the_reference() {
    // 2 images × 40 × 40 pixels: the 35-channel concatenation is 112,000 values, several
    // blocks of 16,384 (not a multiple of 35), so blocks begin inside a pixel and inside a part.
    let shape = [2, 3, 40, 40];
    let mut b = Builder::new(&shape);
    b.conv("x", 3, 24, 3, 1, "c");
    b.conv("x", 3, 8, 1, 0, "d");
    b.node("Concat", &["c", "d", "x"], "cat", vec![build::int("axis", 1)]);
    let sizes = b.int_constant("sizes", &[2], &[10, 14]);
    b.node_n("Split", &["c", &sizes], &["s1", "s2"], vec![build::int("axis", 1)]);
    // Each part feeds a convolution, so that the split runs as its own steps.
    b.conv("s1", 10, 4, 1, 0, "e1");
    b.conv("s2", 14, 4, 1, 0, "e2");
    for o in ["cat", "e1", "e2"] {
        b.output(o);
    }
    let plan = check_model(&b, &shape, 1e-5);
    let count = |f: fn(&Step) -> bool| plan.steps.iter().filter(|s| f(&s.step)).count();
    assert_eq!(count(|s| matches!(s, Step::Concat { .. })), 1, "the concatenation is one step");
    assert_eq!(count(|s| matches!(s, Step::Crop { .. })), 2, "the split is two crops");
}

#[test]
fn constant_pads_run_as_concatenations_and_other_modes_are_evaluated() {
    // Swin pads its [N, H, W, C] map up to a multiple of the window (here H by 1 + 2 and W by
    // 3 after the map, by a fill of 0.5); an NCHW map padded on every side by −1 feeds a
    // convolution. Reflection and negative pads (a crop) stay `Eval` steps.
    let shape = [2, 3, 40, 40];
    let mut b = Builder::new(&shape);
    b.conv("x", 3, 24, 3, 1, "c");
    let nhwc = b.node("Transpose", &["c"], "t", vec![build::ints("perm", &[0, 2, 3, 1])]);
    let window = b.int_constant("window", &[8], &[0, 1, 0, 0, 0, 2, 3, 0]);
    let half = b.constant("half", &[], &[0.5]);
    b.node("Pad", &[&nhwc, &window, &half], "windows", vec![]);
    let sides = b.int_constant("sides", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]);
    let minus = b.constant("minus", &[], &[-1.0]);
    b.node("Pad", &["c", &sides, &minus], "framed", vec![]);
    b.conv("framed", 24, 8, 3, 0, "e");
    b.node("Pad", &["c", &sides], "mirrored", vec![build::string("mode", "reflect")]);
    let crop = b.int_constant("crop", &[8], &[0, 0, -1, 0, 0, 0, 0, -2]);
    b.node("Pad", &["c", &crop], "cropped", vec![]);
    for o in ["windows", "e", "mirrored", "cropped"] {
        b.output(o);
    }
    let plan = check_model(&b, &shape, 1e-5);
    let pads: Vec<&Step> = plan.steps.iter().filter(|s| s.op == "Pad").map(|s| &s.step).collect();
    let concats = pads.iter().filter(|s| matches!(s, Step::Concat { .. })).count();
    let evals = pads.iter().filter(|s| matches!(s, Step::Eval { .. })).count();
    assert_eq!((concats, evals), (4, 2), "two padded axes each, then reflect and crop: {:?}", common::ops(&plan));
}
