//! Comparing a kernel's output with a reference under the tolerance model.

use crate::reference::Reference;
use crate::tolerance::gemm_bound;

/// Summary of one comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parity {
    /// Elements compared.
    pub elements: usize,
    /// Norm-wise relative error `max|y − r| / max|r|` (elements that cancel to nearly zero
    /// do not dominate it, unlike an element-wise ratio).
    pub max_rel_err: f64,
    /// Largest |y − r|.
    pub max_abs_err: f64,
    /// Largest |y − r| / bound: ≤ 1 means within tolerance.
    pub max_bound_ratio: f64,
    /// First element outside the bound: (row, col, got, expected, bound).
    pub first_violation: Option<(usize, usize, f32, f64, f64)>,
}

impl Parity {
    /// Whether every element was within its bound (NaN never is).
    pub fn passed(&self) -> bool {
        self.first_violation.is_none()
    }
}

/// Compares `out(i, j)` with the reference element by element.
pub fn compare(reference: &Reference, out: impl Fn(usize, usize) -> f32) -> Parity {
    let mut p = Parity { elements: reference.m * reference.n, ..Parity::default() };
    let scale = reference.value.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    for i in 0..reference.m {
        for j in 0..reference.n {
            let idx = i * reference.n + j;
            let (y, r) = (out(i, j), reference.value[idx]);
            let bound = gemm_bound(reference.k, reference.abs_sum[idx], reference.pre[idx], r, reference.activation);
            let err = (y as f64 - r).abs();
            let ratio = if err.is_nan() { f64::INFINITY } else { err / bound };
            p.max_abs_err = p.max_abs_err.max(if err.is_nan() { f64::INFINITY } else { err });
            p.max_rel_err = p.max_rel_err.max(if err.is_nan() { f64::INFINITY } else { err / scale });
            p.max_bound_ratio = p.max_bound_ratio.max(ratio);
            if (ratio.is_nan() || ratio > 1.0) && p.first_violation.is_none() {
                p.first_violation = Some((i, j, y, r, bound));
            }
        }
    }
    p
}
