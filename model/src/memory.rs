//! Peak memory of checking and running a prepared model, estimated from its shapes before
//! anything large is allocated, so a service can refuse a model over its memory budget
//! instead of being killed while it runs it.
//!
//! The float64 reference executor ([`crate::reference::run`]) holds every constant and every
//! value from the node that computes it to its last reader (graph outputs, and values nobody
//! reads, to the end); the estimate follows the same order on the specialised graph at 8 bytes
//! an element. A plan's float32 execution is estimated the same way on the optimised graph
//! (4 bytes an element, integers 8): an upper bound of its arena, which reuses buffers at
//! least as well. On top: twice the largest single step's inputs and output at 8 bytes an
//! element (operators without a float32 kernel run through the float64 evaluator, which
//! widens what it reads and may copy it again), and a fixed allowance for the process itself.
//! Measured against a packaging job's peak resident memory (parity check included): a
//! 131-byte model resizing 1×3×8×8 to 8000×8000, estimated 5.1 GiB, peak 2.3 GiB; a 342-byte
//! chain of eight Expands to 8×3×1024×1024 summed, estimated 6.0 GiB, peak 4.1 GiB. Values whose shape is known only
//! at run time are counted as unknown.

use crate::ir::Graph;
use crate::Prepared;

/// What the process holds besides the model's tensors (code, libraries, thread stacks).
pub const PROCESS_BYTES: u64 = 64 << 20;

/// Estimated peak bytes of a model at its specialised input shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The float64 reference executor's peak.
    pub reference: u64,
    /// A plan's float32 execution's peak (values and weights).
    pub execution: u64,
    /// Twice the largest step's inputs and outputs widened to float64.
    pub transient: u64,
    /// Values with data-dependent shapes, not counted.
    pub unknown: usize,
}

impl MemoryEstimate {
    /// What a parity check holds at most: the reference and the execution at once, one
    /// widened step, and [`PROCESS_BYTES`].
    pub fn total(&self) -> u64 {
        self.reference.saturating_add(self.execution).saturating_add(self.transient).saturating_add(PROCESS_BYTES)
    }
}

/// The estimate for `p` (see the module's documentation).
pub fn estimate(p: &Prepared) -> MemoryEstimate {
    let (reference, unknown) = live_peak(&p.specialized, |_| 8);
    let (execution, _) = live_peak(&p.optimized, |int| if int { 8 } else { 4 });
    let g = &p.optimized;
    let wide = value_bytes(g, |_| 8);
    let transient = g
        .nodes
        .iter()
        .map(|n| n.inputs.iter().flatten().chain(&n.outputs).fold(0u64, |a, &v| a.saturating_add(wide[v].unwrap_or(0))))
        .max()
        .unwrap_or(0)
        .saturating_mul(2);
    MemoryEstimate { reference, execution, transient, unknown }
}

/// Bytes of each of `g`'s values at `elem(is_int)` bytes an element (`None`: shape known only
/// at run time).
fn value_bytes(g: &Graph, elem: impl Fn(bool) -> u64) -> Vec<Option<u64>> {
    let size = |v: &crate::ir::Value| {
        let shape = v.shape.as_ref()?;
        Some(shape.iter().fold(elem(v.dtype.is_int()), |a, &d| a.saturating_mul(d as u64)))
    };
    g.values.iter().map(size).collect()
}

/// Peak bytes of `g`'s values held in node order (constants and inputs throughout), with
/// `elem(is_int)` bytes an element; and how many values the nodes compute have no known shape
/// (not counted).
pub fn live_peak(g: &Graph, elem: impl Fn(bool) -> u64) -> (u64, usize) {
    let sizes = value_bytes(g, elem);
    let size = |v: usize| sizes[v].unwrap_or(0);
    let unknown = g.nodes.iter().flat_map(|n| &n.outputs).filter(|&&o| sizes[o].is_none()).count();
    let mut live = g.constants.keys().chain(&g.inputs).fold(0u64, |a, &v| a.saturating_add(size(v)));
    let mut left = g.use_counts();
    let mut peak = live;
    for node in &g.nodes {
        for &o in &node.outputs {
            live = live.saturating_add(size(o));
        }
        peak = peak.max(live);
        for &i in node.inputs.iter().flatten() {
            left[i] -= 1;
            if left[i] == 0 && !g.constants.contains_key(&i) && !g.outputs.contains(&i) {
                live = live.saturating_sub(size(i));
            }
        }
    }
    (peak, unknown)
}

/// Bytes as people read them: `1.5 GiB`, `12.0 MiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if unit == "B" {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x [1,1,4,4] → Relu a → Relu b → Add(a, b) y: `x` is dropped after its only reader, `a`
    /// lives until the Add.
    fn graph() -> Prepared {
        use onnx::build::{model, node, value_info};
        use onnx::proto::GraphProto;
        let graph = GraphProto {
            node: vec![
                node("Relu", "r1", &["x"], &["a"], vec![]),
                node("Relu", "r2", &["a"], &["b"], vec![]),
                node("Add", "add", &["a", "b"], &["y"], vec![]),
            ],
            input: vec![value_info("x", &[Some(1), Some(1), Some(4), Some(4)])],
            output: vec![value_info("y", &[Some(1), Some(1), Some(4), Some(4)])],
            ..Default::default()
        };
        crate::prepare(&model(17, graph), &[vec![1, 1, 4, 4]]).unwrap()
    }

    #[test]
    fn peaks_follow_the_reference_executors_lifetimes() {
        let p = graph();
        // x, a, b and y are 16 elements each; at the Add, a, b and y are held.
        let (peak, unknown) = live_peak(&p.specialized, |_| 8);
        assert_eq!((peak, unknown), (3 * 16 * 8, 0));
        let e = estimate(&p);
        assert_eq!(e.reference, 3 * 16 * 8);
        assert!(e.execution > 0 && e.execution <= 3 * 16 * 4, "{e:?}");
        // The Add reads two values and writes one: 3 × 16 elements widened, twice.
        assert_eq!(e.transient, 2 * 3 * 16 * 8);
        assert_eq!(e.total(), e.reference + e.execution + e.transient + PROCESS_BYTES);
    }

    #[test]
    fn values_sized_at_run_time_are_counted_once_each_and_not_in_bytes() {
        use onnx::build::{model, node, value_info};
        use onnx::proto::GraphProto;
        // A Range up to a computed maximum has a length known only at run time; what reads it
        // too.
        use onnx::build::{float_tensor, int};
        let graph = GraphProto {
            node: vec![
                node("ReduceMax", "max", &["x"], &["m"], vec![int("keepdims", 0)]),
                node("Range", "range", &["zero", "m", "one"], &["r"], vec![]),
                node("Identity", "id", &["r"], &["y"], vec![]),
            ],
            input: vec![value_info("x", &[Some(1), Some(1), Some(4), Some(4)])],
            output: vec![value_info("y", &[None])],
            initializer: vec![float_tensor("zero", &[], &[0.0]), float_tensor("one", &[], &[1.0])],
            ..Default::default()
        };
        let p = crate::prepare(&model(17, graph), &[vec![1, 1, 4, 4]]).unwrap();
        let (peak, unknown) = live_peak(&p.specialized, |_| 8);
        assert_eq!(unknown, 2, "r and y, once each");
        // x, the constants and m are sized: x (16) and m (1) at the ReduceMax, plus 2 constants.
        assert_eq!(peak, (16 + 1 + 2) * 8);
    }

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(12 << 20), "12.0 MiB");
    }
}
