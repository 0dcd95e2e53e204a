//! x86_64 kernel sets: AVX2+FMA and AVX-512F.

pub(crate) mod avx2;
pub(crate) mod avx512;
