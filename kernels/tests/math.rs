//! The vectorized transcendental functions and activations of every kernel set this machine
//! runs (NEON under qemu-aarch64) against float64, over the whole float range: a sweep of
//! bit patterns through every binade of both signs (denormals included), a dense sweep of
//! [-24, 24] where the functions bend and saturate, and the special values (±0, the least
//! and greatest denormal and normal, ±MAX, ±∞, NaN). The bounds are the ones the crate's
//! `math` module states.

use kernels::{host_kernel_sets, Activation, KernelSet, KernelSetId, Unary};

/// Bit-pattern stride of the whole-range sweep (a prime, so every binade and mantissa
/// region is visited); wider under emulation.
const STRIDE: u64 = if cfg!(target_arch = "aarch64") { 65_537 } else { 4_099 };
/// Points of the dense sweep of [-24, 24].
const DENSE: usize = if cfg!(target_arch = "aarch64") { 40_000 } else { 400_000 };

fn inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = (0..(1u64 << 32)).step_by(STRIDE as usize).map(|b| f32::from_bits(b as u32)).collect();
    xs.extend((0..DENSE).map(|i| -24.0 + 48.0 * i as f32 / DENSE as f32));
    let tiny = f32::from_bits(1);
    let max_denormal = f32::from_bits(0x007f_ffff);
    for v in [0.0, tiny, max_denormal, f32::MIN_POSITIVE, 1.0, f32::MAX, f32::INFINITY] {
        xs.extend([v, -v]);
    }
    xs.push(f32::NAN);
    // An odd length, so the last values go through the partial-vector tail.
    if xs.len().is_multiple_of(2) {
        xs.push(0.5);
    }
    xs
}

/// One function's bound: ulps of the exact result, plus ulps of the input (for functions that
/// cancel, like HardSwish's `x/6 + 1/2` near −3), plus an absolute floor (where the result
/// is below the normal range or flushed to zero by design).
struct Bound {
    ulps: f64,
    floor: f64,
    input_ulps: f64,
}

impl Bound {
    fn new(ulps: f64, floor: f64) -> Bound {
        Bound { ulps, floor, input_ulps: 0.0 }
    }
}

fn ulp(v: f64) -> f64 {
    let a = v.abs();
    if a < f32::MIN_POSITIVE as f64 {
        return 2f64.powi(-149);
    }
    2f64.powi(a.log2().floor() as i32 - 23)
}

/// The worst error over `xs` in ulps (of the exact result), and the input it was at; panics
/// with the input on a violation.
fn check(what: &str, xs: &[f32], ys: &[f32], reference: impl Fn(f64) -> f64, bound: &Bound) -> (f64, f32) {
    let mut worst = (0.0, 0.0);
    for (&x, &y) in xs.iter().zip(ys) {
        let r = reference(x as f64);
        if r.is_nan() {
            assert!(y.is_nan(), "{what}({x:e}) = {y:e}, expected NaN");
            continue;
        }
        let r32 = r as f32;
        if r32.is_infinite() || y.is_infinite() {
            // Overflow: infinite where the rounded result is, or within the bound of MAX.
            let near_max = (r.abs() - f32::MAX as f64).abs() <= bound.ulps * ulp(f32::MAX as f64);
            assert!(
                y == r32 || (near_max && y.is_infinite() && y.signum() as f64 == r.signum()),
                "{what}({x:e}) = {y:e}, expected {r:e}"
            );
            continue;
        }
        let err = (y as f64 - r).abs();
        let from_input = if bound.input_ulps > 0.0 { bound.input_ulps * ulp(x as f64) } else { 0.0 };
        let allowed = bound.ulps * ulp(r) + from_input + bound.floor;
        assert!(err <= allowed, "{what}({x:e}) = {y:e}, expected {r:e} (error {err:e})");
        if r.abs() >= (f32::MIN_POSITIVE as f64).max(bound.floor * 1e8) && err / ulp(r) > worst.0 {
            worst = (err / ulp(r), x);
        }
    }
    worst
}

fn cpu_sets() -> Vec<Box<dyn KernelSet>> {
    let (sets, refused) = host_kernel_sets();
    for e in refused {
        println!("skipped: {e}");
    }
    sets.into_iter().filter(|s| s.info().id != KernelSetId::Cuda).collect()
}

fn unary_reference(f: Unary) -> fn(f64) -> f64 {
    match f {
        Unary::Exp => f64::exp,
        Unary::Log => f64::ln,
        Unary::Tanh => f64::tanh,
        Unary::Erf => libm::erf,
        Unary::Sigmoid => |x| 1.0 / (1.0 + (-x).exp()),
    }
}

fn unary_bound(f: Unary) -> Bound {
    let normal = f32::MIN_POSITIVE as f64;
    match f {
        Unary::Exp => Bound::new(2.0, 2f64.powi(-149)),
        Unary::Log => Bound::new(2.0, 0.0),
        Unary::Tanh | Unary::Erf => Bound::new(3.0, 0.0),
        Unary::Sigmoid => Bound::new(3.0, normal),
    }
}

#[test]
fn transcendental_functions_meet_their_bounds_over_the_whole_range() {
    let xs = inputs();
    for set in cpu_sets() {
        for f in Unary::ALL {
            let mut ys = xs.clone();
            set.unary(f, &mut ys).unwrap();
            let (worst, at) =
                check(&format!("{} {f:?}", set.info().name), &xs, &ys, unary_reference(f), &unary_bound(f));
            println!("{:>8} {f:?}: max {worst:.2} ulp (at {at:e}) over {} inputs", set.info().name, xs.len());
        }
    }
}

fn activation_bound(a: Activation) -> Bound {
    let normal = f32::MIN_POSITIVE as f64;
    match a {
        a if a.is_linear_pieces() => Bound::new(0.5, 0.0),
        // A multiply-add (unfused on the portable set: the product's rounding, a fraction of
        // x's ulp, survives the cancellation of αx + β), then a clamp.
        Activation::HardSigmoid { .. } => Bound { ulps: 1.0, floor: 0.0, input_ulps: 0.5 },
        // x·clip(x/6 + 1/2): the sum cancels near x = −3, so its rounding is one of x's.
        Activation::HardSwish => Bound { ulps: 1.0, floor: 0.0, input_ulps: 2.0 },
        Activation::Sigmoid | Activation::Tanh => Bound::new(3.0, normal),
        // −0 below x = −8.48, where |GELU| < 1e-16.
        Activation::Gelu => Bound::new(8.0, 1e-16),
        // x·σ(2y): the rounding of y (|y| ≈ 0.08·|x|³ in the tail) is amplified by |y|, so the
        // tail's error is a fraction of x's ulp rather than of the (tiny) result's.
        // Below x ≈ −10 its σ(2y) saturates at e^-88, like SiLU's below −88: |result| < 2^-120.
        Activation::GeluTanh => Bound { ulps: 4.0, floor: 2f64.powi(-120), input_ulps: 0.25 },
        Activation::Silu => Bound::new(4.0, 2f64.powi(-120)),
        _ => Bound::new(4.0, normal),
    }
}

#[test]
fn activations_meet_their_bounds_over_the_whole_range() {
    let xs = inputs();
    for set in cpu_sets() {
        for a in Activation::all() {
            let mut ys = xs.clone();
            set.activate(a, &mut ys).unwrap();
            let (worst, at) =
                check(&format!("{} {a:?}", set.info().name), &xs, &ys, |x| a.reference(x), &activation_bound(a));
            println!("{:>8} {a:?}: max {worst:.2} ulp (at {at:e})", set.info().name);
        }
    }
}

#[test]
fn invalid_activation_parameters_are_refused() {
    for set in cpu_sets() {
        let mut data = [1.0f32; 3];
        let bad = Activation::Clip { min: 2.0, max: 1.0 };
        assert!(set.activate(bad, &mut data).is_err(), "{}", set.info().name);
        assert_eq!(data, [1.0; 3], "a refused activation leaves the data alone");
    }
}
