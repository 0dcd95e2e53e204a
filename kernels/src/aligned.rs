//! A growable `f32` buffer whose data starts on a 64-byte (cache-line) boundary, and on a
//! 2 MiB boundary backed by transparent huge pages when it is that large.
//!
//! Packed panels are read with full-width vector loads; on a 16-byte-aligned `Vec<f32>` half of
//! the 32-byte AVX2 loads and every 64-byte AVX-512 load straddle two cache lines.
//!
//! Activations of a few MiB are streamed through by convolutions that read several rows at
//! once; on 4 KiB pages every page takes a TLB entry and is a boundary that hardware
//! prefetchers do not cross (the likely cause of the gains below, not measured directly).
//! Buffers of [`HUGE_PAGE`] bytes or more are therefore aligned to it and, on Linux, advised
//! `MADV_HUGEPAGE` before their first touch (Linux's default THP mode, `madvise`, backs only
//! such ranges with 2 MiB pages). Streamed depthwise layers and whole models gained from it,
//! compute-bound layers were unchanged (figures: `docs/perf-log/2026-11-28-design-figures.md`).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// Values per cache line.
const LINE: usize = 16;
/// Bytes per cache line (the alignment of every buffer).
const LINE_BYTES: usize = 64;
/// Size and alignment of a transparent huge page on x86_64 and AArch64 (4 KiB granule).
const HUGE_PAGE: usize = 2 << 20;

/// A cache-line-aligned `f32` buffer of `len` values: for activations and packed operands
/// that kernels read with full-width vector loads (it dereferences to `[f32]`). Values past
/// `len` up to the capacity are kept zero.
pub struct AlignedBuf {
    ptr: NonNull<f32>,
    /// Zeroed values allocated with `layout(cap)` (a whole number of lines; 0: none).
    cap: usize,
    len: usize,
}

// SAFETY: the buffer owns its allocation exclusively, like a `Vec<f32>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads, like `&[f32]`.
unsafe impl Sync for AlignedBuf {}

/// The layout of a `cap`-value allocation: line-aligned, or huge-page-aligned (and a whole
/// number of huge pages) from [`HUGE_PAGE`] bytes up.
fn layout(cap: usize) -> Layout {
    let bytes = cap * size_of::<f32>();
    let result = if bytes >= HUGE_PAGE {
        Layout::from_size_align(bytes.next_multiple_of(HUGE_PAGE), HUGE_PAGE)
    } else {
        Layout::from_size_align(bytes, LINE_BYTES)
    };
    result.expect("buffer size overflows the address space")
}

/// Asks the kernel to back `[ptr, ptr + bytes)` with huge pages (a hint; errors are ignored).
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    // SAFETY: madvise only changes how the kernel backs this range, which is our own
    // page-aligned allocation; it neither reads nor writes it.
    unsafe { libc::madvise(ptr.cast(), bytes, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _bytes: usize) {}

impl AlignedBuf {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        let cap = len.div_ceil(LINE) * LINE;
        if cap == 0 {
            return Self { ptr: NonNull::dangling(), cap: 0, len: 0 };
        }
        let layout = layout(cap);
        // SAFETY: the layout's size is non-zero (cap > 0).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else { handle_alloc_error(layout) };
        if layout.align() == HUGE_PAGE {
            // Before the first touch, so that the page faults below take huge pages.
            advise_huge_pages(raw, layout.size());
        }
        // SAFETY: the allocation holds layout.size() ≥ cap·4 writable bytes. (The rest of
        // a huge-page allocation is never touched, so it takes no memory.)
        unsafe { std::ptr::write_bytes(raw.cast::<f32>(), 0, cap) };
        Self { ptr: ptr.cast(), cap, len }
    }

    /// Resizes to `len` values; new values are zero, existing ones are kept.
    pub fn resize(&mut self, len: usize) {
        if len > self.cap {
            let mut grown = Self::zeroed(len);
            grown.as_mut_slice()[..self.len].copy_from_slice(self.as_slice());
            *self = grown;
            return;
        }
        if len < self.len {
            // Keep everything past `len` zero, so that growing again reads zeros.
            self.as_mut_slice()[len..].fill(0.0);
        }
        self.len = len;
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` holds `cap ≥ len` initialised (zeroed, then written) f32s, or is
        // dangling and well aligned with len = 0.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and the borrow of `self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: allocated in `zeroed` with `layout(cap)`, for this same `cap`.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout(self.cap)) };
        }
    }
}

impl Default for AlignedBuf {
    fn default() -> Self {
        Self::zeroed(0)
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed(self.len);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl PartialEq for AlignedBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
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

    #[test]
    fn shrinking_then_growing_reads_zeros() {
        let mut b = AlignedBuf::zeroed(40);
        b.as_mut_slice().fill(7.0);
        b.resize(10);
        b.resize(40);
        assert!(b.as_slice()[..10].iter().all(|&v| v == 7.0));
        assert!(b.as_slice()[10..].iter().all(|&v| v == 0.0), "{:?}", &b.as_slice()[10..]);
    }

    #[test]
    fn large_buffers_start_on_a_huge_page() {
        let values = HUGE_PAGE / 4 + 1;
        let mut b = AlignedBuf::zeroed(values);
        assert_eq!(b.as_slice().as_ptr() as usize % HUGE_PAGE, 0);
        assert!(b.as_slice().iter().all(|&v| v == 0.0));
        b.as_mut_slice()[values - 1] = 1.0;
        // Growing past the capacity moves to a new allocation and keeps the values.
        b.resize(3 * HUGE_PAGE / 4);
        assert_eq!(b.as_slice()[values - 1], 1.0);
        assert_eq!(b.as_slice().as_ptr() as usize % HUGE_PAGE, 0);
        assert!(b.as_slice()[values..].iter().all(|&v| v == 0.0));
        assert_eq!(b.clone(), b);
    }

    #[test]
    fn empty_buffers_do_not_allocate() {
        let mut b = AlignedBuf::default();
        assert!(b.as_slice().is_empty());
        b.resize(0);
        assert_eq!(b, AlignedBuf::zeroed(0));
    }
}
