//! A growable `f32` buffer whose data starts on a 64-byte (cache-line) boundary.
//!
//! Packed panels are read with full-width vector loads; on a 16-byte-aligned `Vec<f32>` half of
//! the 32-byte AVX2 loads and every 64-byte AVX-512 load straddle two cache lines. Storage is a
//! `Vec` of 64-byte blocks, so alignment survives growth and cloning.

/// One cache line of `f32`s.
#[derive(Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; LINE]);

const LINE: usize = 16;

/// A cache-line-aligned `f32` buffer of `len` values: for activations and packed operands
/// that kernels read with full-width vector loads (it dereferences to `[f32]`).
#[derive(Clone, Default, PartialEq)]
pub struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        Self { lines: vec![Line([0.0; LINE]); len.div_ceil(LINE)], len }
    }

    /// Resizes to `len` values; new values are zero, existing ones are kept.
    pub fn resize(&mut self, len: usize) {
        self.lines.resize(len.div_ceil(LINE), Line([0.0; LINE]));
        self.len = len;
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` over `[f32; LINE]` with no padding (64 bytes), so the
        // lines are `lines.len() · LINE` contiguous, initialised f32s, and `len` ≤ that.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }

    /// The values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and the borrow of `self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        self.as_mut_slice()
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} values)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_aligned_and_keeps_values() {
        let mut b = AlignedBuf::zeroed(5);
        b.as_mut_slice().copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        b.resize(1000);
        assert_eq!(&b.as_slice()[..5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(b.as_slice()[5..].iter().all(|&v| v == 0.0));
        let c = b.clone();
        for buf in [&b, &c] {
            assert_eq!(buf.as_slice().as_ptr() as usize % 64, 0);
            assert_eq!(buf.as_slice().len(), 1000);
        }
        b.resize(3);
        assert_eq!(b.as_slice(), &[1.0, 2.0, 3.0]);
    }
}
