//! `.npy` files (NumPy's array format) for model inputs and outputs: `edgepack-parity`'s.

pub use edgepack_parity::npy::*;
