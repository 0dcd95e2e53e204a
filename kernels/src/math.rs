//! Vectorized transcendental functions, written once over [`SimdF32`] (so every instruction
//! set, the portable one included, computes the same formulas), and [`Unary`], the functions
//! [`crate::KernelSet::unary`] applies to a whole slice.
//!
//! Every function handles the whole float range: ±0, denormals, ±∞ and NaN (NaN in, NaN
//! out), and saturates where the result stops changing. Error bounds (checked against float64
//! over a sweep of every binade by `kernels/tests/math.rs`, on every set this machine or qemu
//! runs), in units in the last place of the correctly rounded result, plus an absolute floor
//! where the result leaves the normal range:
//!
//! | function | bound | measured (AVX-512, AVX2, portable; 1.4 M inputs) |
//! |---|---|---|
//! | `exp` | 2 ulp; below 2^-126 also 2^-149 absolute | 0.98 |
//! | `log` | 2 ulp | 1.74 |
//! | `sigmoid` | 3 ulp + 2^-126 | 2.39 |
//! | `tanh` | 3 ulp | 1.23 |
//! | `erf` | 3 ulp | 2.35 |
//! | `silu` | 4 ulp + 2^-120 (−0 below x = −88, where \|SiLU\| < 2^-120) | 2.31 (AVX2, portable; AVX-512: 2.61 with the multiply by 1/(1 + e^-x)) |
//! | `mish` | 4 ulp + 2^-126 | 3.76 |
//! | `gelu` | 8 ulp + 1e-16 (−0 below x = −8.48, where \|GELU\| < 1e-16) | 5.74 (AVX2), 5.75 (portable) |
//! | `gelu_tanh` | 4 ulp + ¼ ulp of x + 2^-120 (its `y` rounds, and the tail amplifies it; below x ≈ −10, σ(2y) saturates at e^-88) | — |
//!
//! The polynomials were fitted (weighted least squares refined toward minimax, in 40-digit
//! arithmetic) for this file, `exp_neg`'s (the sigmoid family's) by Lawson's reweighted least
//! squares in float64 on 20,000 Chebyshev points with its first two coefficients fixed at 1,
//! `erfc`'s (erf's) the same way on 4,000 points against `erfc(t)·e^{t²}/z`, `upper_tail`'s
//! (GELU's) the same way on 12,000 against `erfc(x/√2)·e^{x²/2}/2z` with its coefficients
//! rounded to float32 one at a time from the highest, the others refitted after each;
//! `exp` and `log` use Cody–Waite range reduction with the classic split of ln 2 into an
//! exactly multipliable head and a tail.

use crate::simd::{SimdF32, ROUND_MAGIC};

/// A function applied to every element of a slice by [`crate::KernelSet::unary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Unary {
    /// `e^x`.
    Exp,
    /// Natural logarithm (−∞ at ±0, NaN below 0).
    Log,
    /// `tanh x`.
    Tanh,
    /// The error function.
    Erf,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
}

impl Unary {
    /// Every function once.
    pub const ALL: [Unary; 5] = [Unary::Exp, Unary::Log, Unary::Tanh, Unary::Erf, Unary::Sigmoid];

    /// The function applied to one vector.
    #[inline(always)]
    pub(crate) unsafe fn apply<V: SimdF32>(self, x: V) -> V {
        // SAFETY: the caller guarantees V's features are available.
        unsafe {
            match self {
                Unary::Exp => exp(x),
                Unary::Log => log(x),
                Unary::Tanh => tanh(x),
                Unary::Erf => erf(x),
                Unary::Sigmoid => sigmoid(x),
            }
        }
    }
}

/// Applies `$f` (an expression of the vector `$v`) to each vector of the `&mut [f32]` `$data`
/// in place, the tail through a partial vector. A macro, not a function taking a closure:
/// a closure does not inherit its caller's `#[target_feature]`s, so LLVM keeps it out of line
/// and every intrinsic in it becomes a call (measured: a third of the LSTM cell's time).
/// The caller guarantees `$V`'s instruction set.
macro_rules! map_slice {
    ($V:ty, $data:expr, |$v:ident| $f:expr) => {{
        let data: &mut [f32] = $data;
        let lanes = <$V as $crate::simd::SimdF32>::LANES;
        let mut chunks = data.chunks_exact_mut(lanes);
        for c in &mut chunks {
            // SAFETY: `c` holds LANES values; the caller guarantees the instruction set.
            unsafe {
                let $v = <$V as $crate::simd::SimdF32>::load(c.as_ptr());
                $crate::simd::SimdF32::store($f, c.as_mut_ptr())
            }
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            // SAFETY: `tail` holds fewer than LANES values, read and written partially.
            unsafe {
                let $v = <$V as $crate::simd::SimdF32>::load_partial(tail.as_ptr(), tail.len());
                $crate::simd::SimdF32::store_partial($f, tail.as_mut_ptr(), tail.len())
            }
        }
    }};
}
pub(crate) use map_slice;

/// The polynomial with coefficients `c` (highest degree first) at `x`, by Horner's rule: one
/// multiply-add per coefficient.
#[inline(always)]
unsafe fn horner<V: SimdF32, const N: usize>(x: V, c: [f32; N]) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { c[1..].iter().fold(V::splat(c[0]), |p, &k| p.mul_add(x, V::splat(k))) }
}

/// Head of ln 2 with 9 significant bits: `n · LN2_HI` is exact for |n| < 2^15.
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 − LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;

/// `x` clamped to `[lo, hi]`, NaN kept (the bound goes first: x86's max/min return the
/// second operand when either is NaN, NEON returns NaN, the portable set compares).
#[inline(always)]
pub(crate) unsafe fn clamp<V: SimdF32>(x: V, lo: f32, hi: f32) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { V::splat(hi).min(V::splat(lo).max(x)) }
}

/// Lane-wise `e^x`: Cody–Waite reduction `x = n·ln2 + r`, |r| ≤ ln2/2, a degree-6 polynomial
/// for `e^r`, and `2^n` applied as two exact powers of two so that results overflow to +∞
/// and underflow through the denormals as they should.
#[inline(always)]
pub(crate) unsafe fn exp<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        // e^-104 is below half the least denormal, e^89 above f32::MAX.
        let x = clamp(x, -104.0, 89.0);
        let n = x.mul(V::splat(std::f32::consts::LOG2_E)).round_nearest();
        let r = n.mul_add(V::splat(-LN2_HI), x);
        let r = n.mul_add(V::splat(-LN2_LO), r);
        let p = horner(r, [1.987_569_1e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5]);
        let e = p.mul_add(r.mul(r), r).add(V::splat(1.0));
        // n ∈ [-150, 129].
        e.scale2(n)
    }
}

/// Lane-wise natural logarithm: `x = m·2^e` with `m ∈ [√½, √2)`, then
/// `ln m = 2 atanh s`, `s = (m−1)/(m+1)`, by its odd series to `s^9` (|s| ≤ 0.172).
#[inline(always)]
pub(crate) unsafe fn log<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        let tiny = V::splat(f32::MIN_POSITIVE);
        // Denormals: scale into the normal range first.
        let scaled = x.select_lt(tiny, x.mul(V::splat(8_388_608.0)), x);
        let bias = x.select_lt(tiny, V::splat(-23.0), V::splat(0.0));
        let (m, e) = scaled.frexp();
        let sqrt2 = V::splat(std::f32::consts::SQRT_2);
        let e = sqrt2.select_lt(m, e.add(V::splat(1.0)), e).add(bias);
        let m = sqrt2.select_lt(m, m.mul(V::splat(0.5)), m);
        let s = m.add(V::splat(-1.0)).div(m.add(V::splat(1.0)));
        let s2 = s.mul(s);
        let p = horner(s2, [2.0 / 9.0, 2.0 / 7.0, 2.0 / 5.0, 2.0 / 3.0]);
        let ln_m = p.mul(s2).mul_add(s, s.add(s));
        let r = e.mul_add(V::splat(LN2_HI), e.mul_add(V::splat(LN2_LO), ln_m));
        // NaN and ±∞ give NaN here (x·0); then ±0 and negatives, then +∞.
        let r = r.add(x.mul(V::splat(0.0)));
        let r = x.select_lt(V::splat(f32::from_bits(1)), V::splat(f32::NEG_INFINITY), r);
        let r = x.select_lt(V::splat(0.0), V::splat(f32::NAN), r);
        V::splat(f32::MAX).select_lt(x, V::splat(f32::INFINITY), r)
    }
}

/// `e^-x` for the sigmoid family, with `x` clamped to `[-88, 87]` so that the result is
/// finite and `n` below stays in `[-126, 127]` (one multiply by `2^n` on every set):
/// `−x = n·ln2 + r`, `|r| ≤ ln2/2`, and `e^r` by a degree-6 polynomial (minimax relative
/// error 3.7e-9, 0.74 ulp after float32 Horner) evaluated at `−r` with its odd coefficients
/// negated, so that `x` is never negated. Four operations fewer than `exp(-x)`: the
/// rounding folds into a multiply-add, the polynomial is one Horner chain, and `2^n` needs
/// no overflow or underflow handling. At `x = -88` the result is `e^88`; at `x = 87` it is
/// `e^-87`, a normal number.
#[inline(always)]
unsafe fn exp_neg<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { exp_neg_in_range(clamp(x, -88.0, 87.0)) }
}

/// [`exp_neg`] for `x` the caller keeps in `[-88, 87]` (no clamp).
#[inline(always)]
unsafe fn exp_neg_in_range<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        // round(−x·log2 e), the rounding folded into the multiply-add; `magic` keeps n in its
        // low bits for the power of two.
        let magic = x.mul_add(V::splat(-std::f32::consts::LOG2_E), V::splat(ROUND_MAGIC));
        let n = magic.add(V::splat(-ROUND_MAGIC));
        // −r = x + n·ln2, in two exact-head steps as in `exp`.
        let minus_r = n.mul_add(V::splat(LN2_HI), x);
        let minus_r = n.mul_add(V::splat(LN2_LO), minus_r);
        let p =
            horner(minus_r, [1.387_967_4e-3, -8.368_73e-3, 4.166_722_7e-2, -1.666_652_1e-1, 4.999_999_7e-1, -1.0, 1.0]);
        p.scale2_normal(n, magic)
    }
}

/// Lane-wise logistic sigmoid `1 / (1 + e^-x)`. With `x` clamped to `[-88, 87]` the sum
/// stays finite (at most `1 + e^88`), so one reciprocal finishes it; below `x = -88` the
/// result is `1/(1 + e^88)` where the exact one is smaller still, an absolute error under
/// `e^-88 < 2^-126`.
#[inline(always)]
pub(crate) unsafe fn sigmoid<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { V::splat(1.0).add(exp_neg(x)).recip_ge_one() }
}

/// Lane-wise `tanh x`: `x + x³·P(x²)` below 0.625, `1 − 2/(e^{2|x|} + 1)` above, sign copied.
#[inline(always)]
pub(crate) unsafe fn tanh<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        let a = x.abs();
        let a2 = a.mul(a);
        let p = horner(
            a2,
            [2.292_828_6e-3, -8.344_028e-3, 2.176_894_6e-2, -5.395_926_5e-2, 1.333_330_4e-1, -3.333_333_4e-1],
        );
        let small = p.mul(a2).mul_add(a, a);
        let e = exp(a.add(a));
        let big = V::splat(-2.0).div(e.add(V::splat(1.0))).add(V::splat(1.0));
        a.select_lt(V::splat(0.625), small, big).copysign(x)
    }
}

/// Where `erf` switches from its odd polynomial to `1 − erfc`.
const ERF_SPLIT: f32 = 0.875;

/// `erf(a)` by its odd polynomial, for `0 ≤ a < ERF_SPLIT`.
#[inline(always)]
unsafe fn erf_small<V: SimdF32>(a: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        let a2 = a.mul(a);
        let p = horner(
            a2,
            [
                8.675_39e-5,
                -8.211_103e-4,
                5.206_747_4e-3,
                -2.686_158_4e-2,
                1.128_373_3e-1,
                -3.761_263_5e-1,
                std::f32::consts::FRAC_2_SQRT_PI,
            ],
        );
        p.mul(a)
    }
}

/// `erfc(t)` for `t ∈ [0, 6]` (callers clamp at 6: erfc 6 ≈ 2e-17 is below every caller's
/// resolution), by one formula over the whole interval: `e^{-t²} · z · Q(z)`,
/// `z = 1/(1 + t/2) ∈ [¼, 1]`, `Q` of degree 9 in `z − 0.625` (relative error 4e-9). The
/// caller passes `t²` as a head and the tail an FMA recovers, so `e^{-t²}` keeps its accuracy.
#[inline(always)]
unsafe fn erfc<V: SimdF32>(t: V, sq_hi: V, sq_lo: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        let z = V::splat(1.0).div(t.mul_add(V::splat(0.5), V::splat(1.0)));
        let q = horner(
            z.add(V::splat(-0.625)),
            [
                0.027_857_02,
                -0.051_995_877,
                -0.019_600_747,
                0.109_773_114,
                -0.021_174_708,
                -0.211_435_54,
                0.047_711_812,
                0.595_836_8,
                0.832_277_83,
                0.605_659_84,
            ],
        );
        gaussian_times(exp_neg(sq_hi), sq_lo, z.mul(q))
    }
}

/// `a·b` as a head and its exact rounding error: one multiply-add where it rounds once, else
/// Dekker's product with Veltkamp's split (the portable set has no fused multiply-add); for
/// |a|, |b| < 2^100.
#[inline(always)]
unsafe fn two_product<V: SimdF32>(a: V, b: V) -> (V, V) {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        let neg = |v: V| v.mul(V::splat(-1.0));
        let hi = a.mul(b);
        if V::FUSED {
            return (hi, a.mul_add(b, neg(hi)));
        }
        let split = |x: V| {
            let c = x.mul(V::splat(4097.0)); // 2^12 + 1: splits the 24-bit significand in halves
            let h = c.add(neg(c.add(neg(x))));
            (h, x.add(neg(h)))
        };
        let ((ah, al), (bh, bl)) = (split(a), split(b));
        let lo = ah.mul(bh).add(neg(hi)).add(ah.mul(bl)).add(al.mul(bh)).add(al.mul(bl));
        (hi, lo)
    }
}

/// Lane-wise error function.
#[inline(always)]
pub(crate) unsafe fn erf<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        let a = x.abs();
        let t = V::splat(6.0).min(a);
        let (hi, lo) = two_product(t, t);
        let big = V::splat(1.0).add(erfc(t, hi, lo).mul(V::splat(-1.0)));
        a.select_lt(V::splat(ERF_SPLIT), erf_small(a), big).copysign(x)
    }
}

/// `-0.0` where `x < lo` (a tail where `x · f(x)` is below every float, and `x` alone may be
/// infinite), else `y`.
#[inline(always)]
unsafe fn negative_tail<V: SimdF32>(x: V, lo: f32, y: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { x.select_lt(V::splat(lo), V::splat(-0.0), y) }
}

/// Lane-wise GELU, `x·Φ(x)`, from one evaluation of the upper tail `T(|x|) = 1 − Φ(|x|)`:
/// `Φ = T` for `x < 0` (so the negative tail keeps its relative accuracy) and `1 − T` above
/// (`T ≤ ½`: an absolute error in `T` is a relative one in `Φ ≥ ½`); −0 below `x = −6√2`,
/// where `|GELU| < 1e-16`. GELU is the epilogue of every transformer MLP, so it has its own
/// tail rather than `erfc` at `x/√2`: no rounding of `x/√2`, one operation fewer for `½`,
/// and a polynomial of degree 8 without a shift, for 4 fewer operations in all.
#[inline(always)]
pub(crate) unsafe fn gelu<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        const CUT: f32 = 6.0 * std::f32::consts::SQRT_2;
        let t = upper_tail(V::splat(CUT).min(x.abs()));
        let phi = x.select_lt(V::splat(0.0), t, t.mul_add(V::splat(-1.0), V::splat(1.0)));
        negative_tail(x, -CUT, x.mul(phi))
    }
}

/// `1 − Φ(x) = erfc(x/√2)/2` for `x ∈ [0, 6√2]`: `e^{-x²/2} · z · Q(z)`, `z = 1/(1 + p·x)`,
/// `Q` of degree 8 in `z` (relative error 3.1e-8 with its float32 coefficients, fitted to
/// `p` as rounded), with `x²/2` as a head and the tail an FMA recovers so that `e^{-x²/2}`
/// keeps its accuracy (`x/2` is exact).
#[inline(always)]
unsafe fn upper_tail<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        const P: f32 = 0.282_842_73; // 0.4/√2
        let (hi, lo) = two_product(x.mul(V::splat(0.5)), x);
        let z = V::splat(1.0).div(x.mul_add(V::splat(P), V::splat(1.0)));
        // hi ≤ 36: no clamp.
        gaussian_times(exp_neg_in_range(hi), lo, z.mul(horner(z, UPPER_TAIL_Q)))
    }
}

/// `Q` of [`upper_tail`], highest degree first.
const UPPER_TAIL_Q: [f32; 9] = [
    0.013_786_532,
    -0.035_336_893,
    -0.033_811_554,
    0.135_998_62,
    -0.028_138_107,
    0.128_002_42,
    0.092_192_38,
    0.114_578_88,
    0.112_727_73,
];

/// `e^{-(hi + lo)} · f` from `e = e^{-hi}`: `e · (1 − lo) · f`, for `|lo| ≤ ½ ulp of hi`.
#[inline(always)]
unsafe fn gaussian_times<V: SimdF32>(e: V, lo: V, f: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { e.mul_add(lo.mul(V::splat(-1.0)), e).mul(f) }
}

/// Lane-wise GELU, tanh form: `x/2 · (1 + tanh(√(2/π)·(x + 0.044715x³)))`, computed as
/// `x · σ(2y)`, as `x / (1 + e^-2y)` (no cancellation in the negative tail).
#[inline(always)]
pub(crate) unsafe fn gelu_tanh<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        const K: f32 = 0.797_884_6; // √(2/π)
        let x2 = x.mul(x);
        let y2 = x2.mul_add(V::splat(0.044_715 * 2.0 * K), V::splat(2.0 * K)).mul(x);
        negative_tail(x, -20.0, x.div_ge_one(V::splat(1.0).add(exp_neg(y2))))
    }
}

/// Lane-wise SiLU (swish), `x · σ(x)` as `x / (1 + e^-x)`; −0 below `x = −88`, where `|SiLU| < 88·e^-88 < 2^-120`
/// (above it the result is within the bound down to 2^-126).
#[inline(always)]
pub(crate) unsafe fn silu<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { negative_tail(x, -88.0, x.div_ge_one(V::splat(1.0).add(exp_neg(x)))) }
}

/// Lane-wise Mish, `x · tanh(ln(1 + e^x))`, as `x · n/(n + 2)` with `n = e^x (e^x + 2)`.
#[inline(always)]
pub(crate) unsafe fn mish<V: SimdF32>(x: V) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe {
        let e = exp(V::splat(20.0).min(x));
        let n = e.mul(e.add(V::splat(2.0)));
        negative_tail(x, -100.0, x.mul(n.div(n.add(V::splat(2.0)))))
    }
}
