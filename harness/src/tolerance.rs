//! The tolerance model: how far an f32 kernel may be from the float64 reference.

use kernels::Activation;

/// Largest slope of the activation (how much it can amplify an input error).
pub fn lipschitz(act: Activation) -> f64 {
    act.lipschitz()
}

/// Allowed |kernel − reference| for one element of a length-`k` reduction whose products and
/// addends have absolute sum `abs_sum`, pre-activation value `pre` and final value `value`.
pub fn gemm_bound(k: usize, abs_sum: f64, pre: f64, value: f64, act: Activation) -> f64 {
    let eps = f32::EPSILON as f64;
    let accumulation = (k as f64 + 2.0) * eps * abs_sum;
    let activation_rounding = match act {
        a if a.is_linear_pieces() => 0.0,
        // a few ulp for the activation's own arithmetic (exp, the multiply in HardSwish)
        _ => 8.0 * eps * (value.abs() + pre.abs().min(1.0)),
    };
    lipschitz(act) * accumulation + activation_rounding + f64::MIN_POSITIVE
}
