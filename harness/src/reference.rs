//! Float64 references: plain loops, no blocking, no SIMD, written independently of the kernels.

use kernels::{Activation, Bias, Epilogue, MatRef};

/// A reference result with, per element, what the tolerance model needs.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Final values (after the activation), row-major.
    pub value: Vec<f64>,
    /// Values before the activation, row-major.
    pub pre: Vec<f64>,
    /// `Σ|a·b| + |bias| + |residual|` per element: the scale of rounding error.
    pub abs_sum: Vec<f64>,
    /// The activation applied.
    pub activation: Activation,
}

/// ONNX semantics of each activation, in float64.
pub fn activate(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { min, max } => x.max(min as f64).min(max as f64),
        Activation::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }
}

/// `activation(A·B + bias + residual)` in float64.
pub fn gemm(a: &MatRef<'_>, b: &MatRef<'_>, epi: &Epilogue<'_>) -> Reference {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "reference: inner dimensions differ");
    let mut value = vec![0.0; m * n];
    let mut pre = vec![0.0; m * n];
    let mut abs_sum = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut s_abs) = (0.0f64, 0.0f64);
            for p in 0..k {
                let prod = a.at(i, p) as f64 * b.at(p, j) as f64;
                s += prod;
                s_abs += prod.abs();
            }
            let bias = match epi.bias {
                Bias::None => 0.0,
                Bias::PerRow(v) => v[i] as f64,
                Bias::PerCol(v) => v[j] as f64,
            };
            let res = epi.residual.map_or(0.0, |r| r.at(i, j) as f64);
            s += bias + res;
            s_abs += bias.abs() + res.abs();
            pre[i * n + j] = s;
            abs_sum[i * n + j] = s_abs;
            value[i * n + j] = activate(epi.activation, s);
        }
    }
    Reference { m, n, k, value, pre, abs_sum, activation: epi.activation }
}
