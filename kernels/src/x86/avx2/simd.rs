//! [`SimdF32`] on 256-bit AVX registers.

use std::arch::x86_64::*;

use crate::simd::SimdF32;

/// Eight `f32` lanes in a ymm register.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256);

impl SimdF32 for Avx2 {
    const LANES: usize = 8;
    const FUSED: bool = true;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable f32s at p.
        Self(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable f32s at p.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_div_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_min_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe {
            let n = _mm256_add_epi32(_mm256_cvtps_epi32(self.0), _mm256_set1_epi32(127));
            Self(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(n)))
        }
    }
    #[inline(always)]
    unsafe fn pow2_of_magic(self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe {
            let n = _mm256_slli_epi32::<23>(_mm256_castps_si256(self.0));
            Self(_mm256_castsi256_ps(_mm256_add_epi32(n, _mm256_set1_epi32(127 << 23))))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, t: Self, f: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_blendv_ps(f.0, t.0, _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0))) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe { Self(_mm256_and_ps(self.0, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)))) }
    }
    #[inline(always)]
    unsafe fn copysign(self, sign: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe {
            let sign_bit = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
            Self(_mm256_or_ps(_mm256_andnot_ps(sign_bit, self.0), _mm256_and_ps(sign_bit, sign.0)))
        }
    }
    #[inline(always)]
    unsafe fn frexp(self) -> (Self, Self) {
        // SAFETY: the trait's contract guarantees AVX2 and FMA on this CPU.
        unsafe {
            let bits = _mm256_castps_si256(self.0);
            let m =
                _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)), _mm256_set1_epi32(0x3f80_0000));
            let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
            (Self(_mm256_castsi256_ps(m)), Self(_mm256_cvtepi32_ps(e)))
        }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: prefetch is a hint (SSE, baseline on x86_64); it never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: *const f32) {
        // SAFETY: prefetch is a hint (SSE, baseline on x86_64); it never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        // SAFETY: AVX2 per the trait's contract; masked-off lanes are not read (no fault).
        unsafe { Self(_mm256_maskload_ps(p, lane_mask(n))) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        // SAFETY: AVX2 per the trait's contract; masked-off lanes are not written.
        unsafe { _mm256_maskstore_ps(p, lane_mask(n), self.0) }
    }
}

/// A mask whose first `n` 32-bit lanes are all ones.
#[inline(always)]
unsafe fn lane_mask(n: usize) -> __m256i {
    // SAFETY: AVX2 per the callers' contract.
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
}
