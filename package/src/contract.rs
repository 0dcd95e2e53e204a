//! The model contract lives in the model crate (the edge agent reads it too); re-exported
//! here where the packaging API uses it.

pub use model::contract::*;
