//! AArch64 kernel sets: NEON.

pub(crate) mod neon;
