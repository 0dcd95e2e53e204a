//! edgepack's parity harness: float64 references, the tolerance model, comparisons, and the
//! kernel test suite that every kernel set is instantiated against.
//!
//! The numeric contract (see `ARCHITECTURE.md`): an f32 kernel's output `y` for a reduction of
//! length `K` may differ from the float64 reference `r` by at most
//! `(K + 2) · ε · Σ|aᵢ·bᵢ|` (ε = `f32::EPSILON`; the `+ 2` covers the bias and residual adds),
//! scaled by the activation's Lipschitz constant, plus a few ulp for the activation's own
//! rounding. Integer-valued inputs small enough to be exact in f32 must match exactly.

pub mod conformance;
pub mod error;
pub mod hil;
pub mod model_parity;
pub mod models;
pub mod node_conformance;
pub mod npy;
pub mod parity;
pub mod reference;
pub mod report;
pub mod rng;
pub mod suite;
pub mod tolerance;
pub mod zoo;

pub use error::{Error, Result};
