//! [`SimdF32`] on 512-bit AVX-512F registers.

use std::arch::x86_64::*;

use crate::simd::SimdF32;

/// Sixteen `f32` lanes in a zmm register.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512);

impl SimdF32 for Avx512 {
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    const FUSED: bool = true;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable f32s at p.
        Self(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 16 writable f32s at p.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_div_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_min_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn scale2(self, n: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU. VSCALEFPS computes
        // self·2^⌊n⌋ with one rounding, through the denormals and to ±∞.
        unsafe { Self(_mm512_scalef_ps(self.0, n.0)) }
    }
    #[inline(always)]
    unsafe fn scale2_normal(self, n: Self, _magic: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU; `scale2`'s one
        // instruction covers this narrower range too.
        unsafe { self.scale2(n) }
    }
    #[inline(always)]
    unsafe fn recip_ge_one(self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU. The 14-bit estimate
        // (relative error < 2^-14, denormal results computed, not flushed, without FTZ)
        // after one Newton step r·(2 − x·r) is within 2^-27 of 1/x.
        unsafe {
            let r = _mm512_rcp14_ps(self.0);
            let e = _mm512_fnmadd_ps(self.0, r, _mm512_set1_ps(1.0));
            Self(_mm512_fmadd_ps(r, e, r))
        }
    }
    #[inline(always)]
    unsafe fn div_ge_one(self, d: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { self.mul(d.recip_ge_one()) }
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe {
            let n = _mm512_add_epi32(_mm512_cvtps_epi32(self.0), _mm512_set1_epi32(127));
            Self(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(n)))
        }
    }
    #[inline(always)]
    unsafe fn pow2_of_magic(self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe {
            let n = _mm512_slli_epi32::<23>(_mm512_castps_si512(self.0));
            Self(_mm512_castsi512_ps(_mm512_add_epi32(n, _mm512_set1_epi32(127 << 23))))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, t: Self, f: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0), f.0, t.0)) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe { Self(_mm512_abs_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn copysign(self, sign: Self) -> Self {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU (integer and/or are F).
        unsafe {
            let magnitude = _mm512_and_si512(_mm512_castps_si512(self.0), _mm512_set1_epi32(0x7fff_ffff));
            let sign = _mm512_and_si512(_mm512_castps_si512(sign.0), _mm512_set1_epi32(i32::MIN));
            Self(_mm512_castsi512_ps(_mm512_or_si512(magnitude, sign)))
        }
    }
    #[inline(always)]
    unsafe fn frexp(self) -> (Self, Self) {
        // SAFETY: the trait's contract guarantees AVX-512F on this CPU.
        unsafe {
            let bits = _mm512_castps_si512(self.0);
            let m =
                _mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)), _mm512_set1_epi32(0x3f80_0000));
            let e = _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(127));
            (Self(_mm512_castsi512_ps(m)), Self(_mm512_cvtepi32_ps(e)))
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
        // SAFETY: AVX-512F per the trait's contract; masked-off lanes are not read (no fault).
        unsafe { Self(_mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p)) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        // SAFETY: AVX-512F per the trait's contract; masked-off lanes are not written.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, self.0) }
    }
}
