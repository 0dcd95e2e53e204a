//! Whole-model parity: a plan's outputs against the float64 reference executor and against
//! ONNX Runtime's outputs, per output, with JSON and JUnit reports (in `edgepack-parity`, which
//! the shipped tools use without the test framework).

pub use edgepack_parity::report::{write_json, write_junit, ModelParity};
pub use edgepack_parity::{compare, OutputParity, F32_BOUND};
