//! [`SimdF32`] on 128-bit NEON registers.

use std::arch::aarch64::*;

use crate::simd::SimdF32;

/// Four `f32` lanes in a v-register.
#[derive(Clone, Copy)]
pub(crate) struct Neon(float32x4_t);

impl SimdF32 for Neon {
    const LANES: usize = 4;
    const REGISTERS: usize = 32;
    const FUSED: bool = true;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vdupq_n_f32(x)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable f32s at p.
        Self(unsafe { vld1q_f32(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable f32s at p.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vaddq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vmulq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vdivq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU. vfmaq_f32(c, a, b) = c + a·b.
        unsafe { Self(vfmaq_f32(c.0, self.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vmaxq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vminq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU; lanes hold integers, so the
        // truncating conversion is exact.
        unsafe {
            let n = vaddq_s32(vcvtq_s32_f32(self.0), vdupq_n_s32(127));
            Self(vreinterpretq_f32_s32(vshlq_n_s32::<23>(n)))
        }
    }
    #[inline(always)]
    unsafe fn pow2_of_magic(self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe {
            let n = vshlq_n_s32::<23>(vreinterpretq_s32_f32(self.0));
            Self(vreinterpretq_f32_s32(vaddq_s32(n, vdupq_n_s32(127 << 23))))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, t: Self, f: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vbslq_f32(vcltq_f32(self.0, o.0), t.0, f.0)) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe { Self(vabsq_f32(self.0)) }
    }
    #[inline(always)]
    unsafe fn copysign(self, sign: Self) -> Self {
        // SAFETY: the trait's contract guarantees NEON on this CPU; the select takes the sign
        // bit from `sign` and every other bit from `self`.
        unsafe { Self(vbslq_f32(vdupq_n_u32(0x8000_0000), sign.0, self.0)) }
    }
    #[inline(always)]
    unsafe fn frexp(self) -> (Self, Self) {
        // SAFETY: the trait's contract guarantees NEON on this CPU.
        unsafe {
            let bits = vreinterpretq_u32_f32(self.0);
            let m = vorrq_u32(vandq_u32(bits, vdupq_n_u32(0x007f_ffff)), vdupq_n_u32(0x3f80_0000));
            let e = vsubq_s32(vreinterpretq_s32_u32(vshrq_n_u32::<23>(bits)), vdupq_n_s32(127));
            (Self(vreinterpretq_f32_u32(m)), Self(vcvtq_f32_s32(e)))
        }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        let mut lanes = [0.0f32; 4];
        // SAFETY: the caller guarantees n (< 4) readable f32s at p.
        unsafe { std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), n) };
        // SAFETY: `lanes` holds 4 f32s; NEON per the trait's contract.
        unsafe { Self(vld1q_f32(lanes.as_ptr())) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        let mut lanes = [0.0f32; 4];
        // SAFETY: `lanes` holds 4 f32s; NEON per the trait's contract.
        unsafe { vst1q_f32(lanes.as_mut_ptr(), self.0) };
        // SAFETY: the caller guarantees n (< 4) writable f32s at p.
        unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n) };
    }
}
