//! Whole-model parity: a plan's outputs against the float64 reference executor and against
//! ONNX Runtime's outputs, per output, with JSON and JUnit reports (in `edgepack-parity`, which
//! the shipped tools use without the test framework).

pub use edgepack_parity::report::{write_json, write_junit, ModelParity};
pub use edgepack_parity::{compare, OutputParity, F32_BOUND};

/// Norm-wise bound for whole models with f16 activations and weights (f32 accumulation) on
/// the GPU. The detector is f16-sensitive: rounding every weight and step output to f16 in
/// the f32 CPU executor gives 6.3e-2 from ORT (weights alone 3.6e-2, activations alone 3.6e-2;
/// the classifier 1.4e-3), so this bound separates "f16 precision" from "wrong" (O(1) errors),
/// no finer (docs/performance.md, "CUDA").
pub const F16_MODEL_BOUND: f64 = 1e-1;
