//! The deterministic test-data generator lives in the model crate (the packaging job's and the
//! edge agent's parity inputs use it too); re-exported here for the suites.

pub use edgepack_parity::SplitMix;
