//! Test suites written once and instantiated for every kernel set (see `harness/tests`).

pub mod conv;
pub mod expand;
pub mod gate;
pub mod gemm;
pub mod pool;
pub mod rows;
pub mod winograd;
