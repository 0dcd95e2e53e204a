//! ONNX vision models on edgepack kernels: [`import`] an ONNX file into a typed [`Graph`],
//! [`specialize`] it to fixed input shapes (shape inference, constant folding),
//! [`optimize`] it (folding and epilogue fusion), and [`plan::build`] an executable,
//! serializable [`plan::Plan`] for one kernel set. [`reference`] is an independent float64
//! executor of the same graphs for parity checks.

pub mod contract;
pub mod error;
pub mod image;
pub mod import;
pub mod ir;
pub mod memory;
pub mod optimize;
pub mod parity;
pub mod plan;
pub mod portable;
pub mod reference;
pub mod rng;
pub mod shape;
pub mod specialize;
pub mod tensor;

pub use error::{ModelError, Result};
pub use import::import;
pub use ir::Graph;
pub use optimize::optimize;
pub use specialize::specialize;
pub use tensor::Tensor;

/// A model imported and specialised to fixed input shapes, before and after optimisation.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Specialised (shapes inferred, constants folded), not optimised: what the reference
    /// executor runs.
    pub specialized: Graph,
    /// After [`optimize`]: what plans are built from.
    pub optimized: Graph,
    /// What the optimiser did.
    pub rewrites: optimize::Rewrites,
}

/// Imports ONNX `bytes`, fixes the free inputs' shapes and optimises.
pub fn prepare(bytes: &[u8], shapes: &[Vec<usize>]) -> Result<Prepared> {
    let mut g = import(bytes)?;
    specialize(&mut g, shapes, Default::default())?;
    let mut optimized = g.clone();
    let rewrites = optimize(&mut optimized);
    Ok(Prepared { specialized: g, optimized, rewrites })
}
