//! The vector vocabulary the generic microkernel, epilogue and peak probe are written in.
//!
//! Each instruction set implements [`SimdF32`] once (a handful of one-line intrinsics) in its own
//! folder; everything above it — tile loops, fused epilogues, `exp` — is written once here and in
//! `gemm/`. [`Lanes`] is the portable implementation: plain arrays that the compiler vectorises
//! for whatever the build targets. It backs the scalar kernel set and lets the test suite run any
//! instruction set's exact tile geometry on a host that lacks that instruction set.

/// 1.5 · 2^23: a float of magnitude below 2^22 plus this, minus it again, is rounded to an
/// integer (ties to even), as [`SimdF32::round_nearest`] does.
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;

/// An `f32` vector of `LANES` lanes.
///
/// # Safety
/// Every method is `unsafe` because an implementation may use instructions the CPU must
/// support: call them only from code running on a CPU that has the implementation's features
/// (in practice, from inside a `#[target_feature]` function reached after runtime detection).
/// `load`/`store` need `LANES` valid, readable (writable) `f32`s at the pointer; no alignment.
pub(crate) trait SimdF32: Copy {
    /// Number of `f32` lanes.
    const LANES: usize;
    /// Vector registers the instruction set has (kernels size their register tiles by it).
    const REGISTERS: usize = 16;
    /// Whether [`SimdF32::mul_add`] rounds once (a hardware FMA), so that `a·b − round(a·b)`
    /// comes out exact from one multiply-add.
    const FUSED: bool = false;
    /// Whether row kernels compile one copy per activation kind (see
    /// [`Activation::apply_as`](crate::epilogue::Activation::apply_as)), or one that
    /// dispatches at run time: the instruction sets' vectors do; the portable [`Lanes`] (the
    /// scalar set's fallback and the emulated geometries, which tests run and nothing times)
    /// do not, which keeps the crate's compile time down.
    const PER_ACTIVATION: bool = true;
    /// Every lane set to `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Unaligned load of `LANES` values.
    unsafe fn load(p: *const f32) -> Self;
    /// Unaligned store of `LANES` values.
    unsafe fn store(self, p: *mut f32);
    /// Lane-wise `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// Lane-wise `self * o`.
    unsafe fn mul(self, o: Self) -> Self;
    /// Lane-wise `self / o`.
    unsafe fn div(self, o: Self) -> Self;
    /// Lane-wise fused `self * b + c` (one rounding where the hardware has FMA).
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise maximum.
    unsafe fn max(self, o: Self) -> Self;
    /// Lane-wise minimum.
    unsafe fn min(self, o: Self) -> Self;
    /// Lane-wise `2^n` for lanes holding integral values in `[-126, 127]`.
    unsafe fn pow2i(self) -> Self;
    /// Lane-wise `self · 2^n` rounded once, for `n` integral in `[-252, 254]` and `self`
    /// normal within `[½, 2]`: overflows to ±∞ and underflows through the denormals. By
    /// default two exact powers of two (AVX-512 has one instruction for it).
    #[inline(always)]
    unsafe fn scale2(self, n: Self) -> Self {
        // SAFETY: the caller guarantees the features; halves of n are in pow2i's range.
        unsafe {
            let k = n.mul(Self::splat(0.5)).round_nearest();
            self.mul(k.pow2i()).mul(n.add(k.mul(Self::splat(-1.0))).pow2i())
        }
    }
    /// Lane-wise round to nearest integer (ties to even) for |x| < 2^22, by the float
    /// magic-number trick: adding and removing 1.5·2^23 leaves no fraction bits. NaN stays NaN.
    #[inline(always)]
    unsafe fn round_nearest(self) -> Self {
        // SAFETY: the caller guarantees the features.
        unsafe { self.add(Self::splat(ROUND_MAGIC)).add(Self::splat(-ROUND_MAGIC)) }
    }
    /// Lane-wise `2^n` from `self = ROUND_MAGIC + n`, `n` integral in `[-126, 127]`: the low
    /// bits of the significand hold `n` (two's complement), so shifting them into the exponent
    /// field and adding the bias gives the power, two integer operations (converting `n`
    /// first would be a third).
    unsafe fn pow2_of_magic(self) -> Self;
    /// Lane-wise `self · 2^n` for `n` integral in `[-126, 127]` and `self` normal within
    /// `[½, 2]` (the result is finite; below the normal range it is rounded once more), given
    /// `magic = ROUND_MAGIC + n` too (the sum that rounded `n`): by default a multiply by
    /// [`SimdF32::pow2_of_magic`]; AVX-512 has one instruction for it, from `n`.
    #[inline(always)]
    unsafe fn scale2_normal(self, _n: Self, magic: Self) -> Self {
        // SAFETY: the caller guarantees the features; magic holds n in pow2_of_magic's range.
        unsafe { self.mul(magic.pow2_of_magic()) }
    }
    /// Lane-wise `1 / self` for lanes in `[1, 2^127]` (results down into the denormals),
    /// within 0.51 ulp where the result is normal: by default the division (correctly
    /// rounded); AVX-512 refines its 14-bit estimate once, which is cheaper.
    #[inline(always)]
    unsafe fn recip_ge_one(self) -> Self {
        // SAFETY: the caller guarantees the features.
        unsafe { Self::splat(1.0).div(self) }
    }
    /// Lane-wise `self / d` for `d` in `[1, 2^127]`: by default the division (correctly
    /// rounded, one operation fewer than `self · (1/d)`); AVX-512 multiplies by
    /// [`SimdF32::recip_ge_one`], which is cheaper there.
    #[inline(always)]
    unsafe fn div_ge_one(self, d: Self) -> Self {
        // SAFETY: the caller guarantees the features.
        unsafe { self.div(d) }
    }
    /// Lanes where `self < o` take `t`, the others `f` (an unordered comparison, with a NaN
    /// on either side, is false).
    unsafe fn select_lt(self, o: Self, t: Self, f: Self) -> Self;
    /// Lane-wise `|self|` (clears the sign bit; NaN stays NaN).
    unsafe fn abs(self) -> Self;
    /// The magnitude of `self` with the sign bit of `sign`.
    unsafe fn copysign(self, sign: Self) -> Self;
    /// `(m, e)` with `self = m · 2^e`, `m ∈ [1, 2)` and `e` integral, for lanes holding
    /// positive, normal, finite values (other lanes get unspecified values).
    unsafe fn frexp(self) -> (Self, Self);
    /// Loads the first `n` lanes (`0 < n < LANES`) from `p`; the others are zero. Reads only
    /// those `n` values.
    unsafe fn load_partial(p: *const f32, n: usize) -> Self;
    /// Stores the first `n` lanes (`0 < n < LANES`) to `p`; writes only those `n` values.
    unsafe fn store_partial(self, p: *mut f32, n: usize);
    /// Hints that the cache line holding `p` will be read soon; `p` need not be valid.
    #[inline(always)]
    unsafe fn prefetch(_p: *const f32) {}
    /// Hints that the cache line holding `p` will be read after the lines being read now: fetch
    /// it into L2, not L1; `p` need not be valid.
    #[inline(always)]
    unsafe fn prefetch_l2(_p: *const f32) {}
}

/// Loads `n` values (all lanes when `n ≥ LANES`, zeros when `n == 0`) without reading past them.
#[inline(always)]
pub(crate) unsafe fn load_n<V: SimdF32>(p: *const f32, n: usize) -> V {
    // SAFETY: the caller guarantees min(n, LANES) readable f32s at p and V's features.
    unsafe {
        if n >= V::LANES {
            V::load(p)
        } else if n > 0 {
            V::load_partial(p, n)
        } else {
            V::splat(0.0)
        }
    }
}

/// Stores `n` lanes (all when `n ≥ LANES`, none when `n == 0`) without writing past them.
#[inline(always)]
pub(crate) unsafe fn store_n<V: SimdF32>(v: V, p: *mut f32, n: usize) {
    // SAFETY: the caller guarantees min(n, LANES) writable f32s at p and V's features.
    unsafe {
        if n >= V::LANES {
            v.store(p)
        } else if n > 0 {
            v.store_partial(p, n)
        }
    }
}

/// Portable vector of `N` lanes; the compiler maps it to whatever vector unit the build targets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lanes<const N: usize>(pub(crate) [f32; N]);

impl<const N: usize> Lanes<N> {
    #[inline(always)]
    fn map2(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        Self(std::array::from_fn(|i| f(self.0[i], o.0[i])))
    }
}

impl<const N: usize> SimdF32 for Lanes<N> {
    const LANES: usize = N;
    const PER_ACTIVATION: bool = false;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Self([x; N])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees N readable f32s at p.
        Self(unsafe { p.cast::<[f32; N]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees N writable f32s at p.
        unsafe { p.cast::<[f32; N]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        self.map2(o, |a, b| a + b)
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        self.map2(o, |a, b| a * b)
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        self.map2(o, |a, b| a / b)
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // Separate multiply and add: a portable build may have no FMA unit, and a libm `fma`
        // call per element would be slow. The tolerance model covers either rounding.
        Self(std::array::from_fn(|i| self.0[i] * b.0[i] + c.0[i]))
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        self.map2(o, |a, b| if a > b { a } else { b })
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        self.map2(o, |a, b| if a < b { a } else { b })
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        Self(std::array::from_fn(|i| f32::from_bits(((self.0[i] as i32 + 127) as u32) << 23)))
    }
    #[inline(always)]
    unsafe fn pow2_of_magic(self) -> Self {
        Self(self.0.map(|t| f32::from_bits((t.to_bits() << 23).wrapping_add(127 << 23))))
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, t: Self, f: Self) -> Self {
        Self(std::array::from_fn(|i| if self.0[i] < o.0[i] { t.0[i] } else { f.0[i] }))
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        Self(self.0.map(f32::abs))
    }
    #[inline(always)]
    unsafe fn copysign(self, sign: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i].copysign(sign.0[i])))
    }
    #[inline(always)]
    unsafe fn frexp(self) -> (Self, Self) {
        let bits = self.0.map(f32::to_bits);
        let m = bits.map(|b| f32::from_bits((b & 0x007f_ffff) | 0x3f80_0000));
        let e = bits.map(|b| ((b >> 23) & 0xff) as i32 as f32 - 127.0);
        (Self(m), Self(e))
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        // SAFETY: the caller guarantees n readable f32s at p.
        Self(std::array::from_fn(|i| if i < n { unsafe { *p.add(i) } } else { 0.0 }))
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        for (i, v) in self.0.iter().enumerate().take(n) {
            // SAFETY: the caller guarantees n writable f32s at p.
            unsafe { *p.add(i) = *v };
        }
    }
}
