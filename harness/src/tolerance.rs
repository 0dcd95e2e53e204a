//! The tolerance model: how far an f32 kernel may be from the float64 reference.

use kernels::Activation;

/// Largest slope of the activation (how much it can amplify an input error).
pub fn lipschitz(act: Activation) -> f64 {
    match act {
        Activation::Identity | Activation::Relu | Activation::Clip { .. } => 1.0,
        Activation::HardSigmoid { alpha, .. } => (alpha as f64).abs(),
        // d/dx x·clip(x/6 + 1/2, 0, 1) = x/3 + 1/2 on [-3, 3]: at most 3/2.
        Activation::HardSwish => 1.5,
        Activation::Sigmoid => 0.25,
    }
}

/// Allowed |kernel − reference| for one element of a length-`k` reduction whose products and
/// addends have absolute sum `abs_sum`, pre-activation value `pre` and final value `value`.
pub fn gemm_bound(k: usize, abs_sum: f64, pre: f64, value: f64, act: Activation) -> f64 {
    let eps = f32::EPSILON as f64;
    let accumulation = (k as f64 + 2.0) * eps * abs_sum;
    let activation_rounding = match act {
        Activation::Identity | Activation::Relu | Activation::Clip { .. } => 0.0,
        // a few ulp for the activation's own arithmetic (exp, the multiply in HardSwish)
        _ => 8.0 * eps * (value.abs() + pre.abs().min(1.0)),
    };
    lipschitz(act) * accumulation + activation_rounding + f64::MIN_POSITIVE
}
