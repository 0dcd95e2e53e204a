//! Fused epilogues: what a GEMM does to its result while the tile is still in registers.
//!
//! The result is `activation(A·B + bias + residual)`: bias per output row or per output column
//! (per output channel, in a convolution), an optional residual matrix of the output's shape
//! (a skip connection), then one activation. This order covers `Conv → Add → Relu` (ResNet) and
//! linear bottlenecks (no activation); BatchNorm folds into weights and bias before it gets here.

use crate::error::{KernelError, Result};
use crate::mat::MatRef;
use crate::simd::{exp, SimdF32};

/// The activation applied last, lane by lane.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`; ReLU6 is `Clip { min: 0, max: 6 }`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// ONNX HardSigmoid: `max(0, min(1, alpha·x + beta))` (ONNX defaults: 0.2, 0.5).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// ONNX HardSwish: `x · max(0, min(1, x/6 + 1/2))`.
    HardSwish,
    /// Logistic sigmoid `1 / (1 + e^-x)`.
    Sigmoid,
}

impl Activation {
    /// ReLU6, as MobileNets use it.
    pub const RELU6: Activation = Activation::Clip { min: 0.0, max: 6.0 };

    /// Every kind of activation once, with representative parameters (for tests and reports).
    pub fn all() -> [Activation; 6] {
        [
            Activation::Identity,
            Activation::Relu,
            Activation::RELU6,
            Activation::HardSigmoid { alpha: 0.2, beta: 0.5 },
            Activation::HardSwish,
            Activation::Sigmoid,
        ]
    }

    fn validate(self) -> Result<()> {
        let bad = match self {
            Activation::Clip { min, max } => min.is_nan() || max.is_nan() || min > max,
            Activation::HardSigmoid { alpha, beta } => !alpha.is_finite() || !beta.is_finite(),
            _ => false,
        };
        if bad {
            return Err(KernelError::Shape(format!("activation {self:?} has invalid parameters")));
        }
        Ok(())
    }

    /// The `KIND` of [`Activation::apply_as`] that dispatches at run time.
    pub(crate) const RUNTIME: u8 = u8::MAX;

    /// The activation's kind as a constant for [`Activation::apply_as`] (`Identity` 0, then in
    /// declaration order).
    pub(crate) fn kind(self) -> u8 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Clip { .. } => 2,
            Activation::HardSigmoid { .. } => 3,
            Activation::HardSwish => 4,
            Activation::Sigmoid => 5,
        }
    }

    /// [`Activation::apply`] for an activation of kind `KIND` (its [`Activation::kind`]): the
    /// dispatch is resolved at compile time, so a loop that calls it holds only that kind's
    /// constants (a runtime `apply` in a loop keeps every kind's constants live). Any other
    /// `KIND` ([`Activation::RUNTIME`]) dispatches at run time, as `apply`.
    #[inline(always)]
    pub(crate) unsafe fn apply_as<V: SimdF32, const KIND: u8>(self, x: V) -> V {
        let act = match (KIND, self) {
            (0, _) => return x,
            (1, _) => Activation::Relu,
            (2, Activation::Clip { min, max }) => Activation::Clip { min, max },
            (3, Activation::HardSigmoid { alpha, beta }) => Activation::HardSigmoid { alpha, beta },
            (4, _) => Activation::HardSwish,
            (5, _) => Activation::Sigmoid,
            _ => self,
        };
        // SAFETY: the caller guarantees V's features are available.
        unsafe { act.apply(x) }
    }

    /// Applies the activation to a whole register tile: one dispatch, then a branch-free sweep.
    #[inline(always)]
    pub(crate) unsafe fn apply_tile<V: SimdF32, const MR: usize, const NV: usize>(self, acc: &mut [[V; NV]; MR]) {
        // One loop per activation, written out (no closures): the loop body must inline
        // into the caller's `#[target_feature]` function, or every intrinsic becomes a call.
        macro_rules! sweep {
            ($act:expr) => {
                for v in acc.iter_mut().flatten() {
                    // SAFETY: the caller runs with `V`'s instruction set enabled.
                    *v = unsafe { $act.apply(*v) };
                }
            };
        }
        match self {
            Activation::Identity => {}
            Activation::Relu => sweep!(Activation::Relu),
            Activation::Clip { min, max } => sweep!(Activation::Clip { min, max }),
            Activation::HardSigmoid { alpha, beta } => sweep!(Activation::HardSigmoid { alpha, beta }),
            Activation::HardSwish => sweep!(Activation::HardSwish),
            Activation::Sigmoid => sweep!(Activation::Sigmoid),
        }
    }

    #[inline(always)]
    pub(crate) unsafe fn apply<V: SimdF32>(self, x: V) -> V {
        // SAFETY: the caller guarantees V's features are available.
        unsafe {
            match self {
                Activation::Identity => x,
                Activation::Relu => x.max(V::splat(0.0)),
                Activation::Clip { min, max } => x.max(V::splat(min)).min(V::splat(max)),
                Activation::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha, beta),
                Activation::HardSwish => x.mul(hard_sigmoid(x, 1.0 / 6.0, 0.5)),
                Activation::Sigmoid => {
                    let one = V::splat(1.0);
                    one.div(one.add(exp(x.mul(V::splat(-1.0)))))
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn hard_sigmoid<V: SimdF32>(x: V, alpha: f32, beta: f32) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { x.mul_add(V::splat(alpha), V::splat(beta)).max(V::splat(0.0)).min(V::splat(1.0)) }
}

/// A bias added to every element of a row or of a column of the output.
#[derive(Debug, Clone, Copy, Default)]
pub enum Bias<'a> {
    /// No bias.
    #[default]
    None,
    /// `bias[i]` added to row `i` (length = rows of C).
    PerRow(&'a [f32]),
    /// `bias[j]` added to column `j` (length = columns of C; per output channel in NHWC).
    PerCol(&'a [f32]),
}

/// Everything fused into the store of a GEMM: `activation(A·B + bias + residual)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Optional bias.
    pub bias: Bias<'a>,
    /// Optional residual, the same shape as the output.
    pub residual: Option<MatRef<'a>>,
    /// Activation applied last.
    pub activation: Activation,
}

impl<'a> Epilogue<'a> {
    /// Plain `C = A·B`.
    pub fn none() -> Self {
        Self::default()
    }

    /// Checks the epilogue against an `m × n` output.
    pub(crate) fn validate(&self, m: usize, n: usize) -> Result<()> {
        match self.bias {
            Bias::PerRow(b) if b.len() != m => {
                return Err(KernelError::Shape(format!("per-row bias has {} values, output has {m} rows", b.len())))
            }
            Bias::PerCol(b) if b.len() != n => {
                return Err(KernelError::Shape(format!(
                    "per-column bias has {} values, output has {n} columns",
                    b.len()
                )))
            }
            _ => {}
        }
        if let Some(r) = self.residual {
            if r.rows() != m || r.cols() != n {
                return Err(KernelError::Shape(format!("residual is {}x{}, output is {m}x{n}", r.rows(), r.cols())));
            }
        }
        self.activation.validate()
    }
}
