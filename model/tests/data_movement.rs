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
