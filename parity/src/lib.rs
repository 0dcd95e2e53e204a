//! What the shipped tools (the `edgepack` CLI, the packaging service) need of the parity
//! harness, without its test framework: the per-output comparison against the float64
//! reference and its bound, the seeded input generator, `.npy` files, and whole-model parity
//! reports in JSON and JUnit XML. `edgepack-harness` builds its suites on top of this.

pub mod npy;
pub mod report;

pub use model::parity::{compare, OutputParity, F32_BOUND};
pub use model::rng::SplitMix;
pub use report::ModelParity;
