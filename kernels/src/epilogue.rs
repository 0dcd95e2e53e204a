//! Fused epilogues: what a GEMM does to its result while the tile is still in registers.
//!
//! The result is `activation(A·B + bias + residual)`: bias per output row or per output column
//! (per output channel, in a convolution), an optional residual matrix of the output's shape
//! (a skip connection), then one activation. This order covers `Conv → Add → Relu` (ResNet) and
//! linear bottlenecks (no activation); BatchNorm folds into weights and bias before it gets here.

use crate::error::{KernelError, Result};
use crate::mat::MatRef;
use crate::math;
use crate::simd::{load_n, store_n, SimdF32};

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
    /// `x` for `x ≥ 0`, `alpha·x` below.
    LeakyRelu {
        /// Slope below zero (ONNX default 0.01).
        alpha: f32,
    },
    /// `tanh x`.
    Tanh,
    /// SiLU (swish): `x · σ(x)`.
    Silu,
    /// GELU, exact form: `x/2 · (1 + erf(x/√2))`.
    Gelu,
    /// GELU, tanh approximation: `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    GeluTanh,
    /// Mish: `x · tanh(ln(1 + e^x))`.
    Mish,
}

/// `match $act` with one arm per kind that calls `$sweep!(a)` on the activation rebuilt from
/// its parameters (a constant the arm's loop can fold); `Identity` does nothing. Shared by
/// every loop that must dispatch once, outside the loop.
macro_rules! each_kind {
    ($act:expr, $sweep:ident) => {
        match $act {
            Activation::Identity => {}
            Activation::Relu => $sweep!(Activation::Relu),
            Activation::Clip { min, max } => $sweep!(Activation::Clip { min, max }),
            Activation::HardSigmoid { alpha, beta } => $sweep!(Activation::HardSigmoid { alpha, beta }),
            Activation::HardSwish => $sweep!(Activation::HardSwish),
            Activation::Sigmoid => $sweep!(Activation::Sigmoid),
            Activation::LeakyRelu { alpha } => $sweep!(Activation::LeakyRelu { alpha }),
            Activation::Tanh => $sweep!(Activation::Tanh),
            Activation::Silu => $sweep!(Activation::Silu),
            Activation::Gelu => $sweep!(Activation::Gelu),
            Activation::GeluTanh => $sweep!(Activation::GeluTanh),
            Activation::Mish => $sweep!(Activation::Mish),
        }
    };
}

impl Activation {
    /// ReLU6, as MobileNets use it.
    pub const RELU6: Activation = Activation::Clip { min: 0.0, max: 6.0 };

    /// Every kind of activation once, with representative parameters (for tests and reports).
    pub fn all() -> [Activation; 12] {
        [
            Activation::Identity,
            Activation::Relu,
            Activation::RELU6,
            Activation::HardSigmoid { alpha: 0.2, beta: 0.5 },
            Activation::HardSwish,
            Activation::Sigmoid,
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::Tanh,
            Activation::Silu,
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Mish,
        ]
    }

    /// The activation in float64, the reference the kernels are tested against (NaN in,
    /// NaN out, as numpy and ONNX Runtime compute).
    pub fn reference(self, x: f64) -> f64 {
        if x.is_nan() {
            return x;
        }
        let smooth_gate = matches!(self, Activation::Silu | Activation::Gelu | Activation::GeluTanh | Activation::Mish);
        if smooth_gate && x == f64::NEG_INFINITY {
            return -0.0; // the limit of x·gate(x), where the product itself is −∞·0
        }
        let hard_sigmoid = |x: f64, alpha: f64, beta: f64| (alpha * x + beta).clamp(0.0, 1.0);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => x.max(min as f64).min(max as f64),
            Activation::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha as f64, beta as f64),
            Activation::HardSwish => x * hard_sigmoid(x, 1.0 / 6.0, 0.5),
            Activation::Sigmoid => sigmoid(x),
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * x
                }
            }
            Activation::Tanh => x.tanh(),
            Activation::Silu => x * sigmoid(x),
            Activation::Gelu => 0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2),
            Activation::GeluTanh => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                x * sigmoid(2.0 * k * (x + 0.044715 * x * x * x))
            }
            Activation::Mish => x * x.exp().ln_1p().tanh(),
        }
    }

    /// Largest slope of the activation: how much it can amplify an error in its input.
    pub fn lipschitz(self) -> f64 {
        match self {
            Activation::Identity | Activation::Relu | Activation::Clip { .. } | Activation::Tanh => 1.0,
            Activation::HardSigmoid { alpha, .. } => (alpha as f64).abs(),
            // d/dx x·clip(x/6 + 1/2, 0, 1) = x/3 + 1/2 on [-3, 3]: at most 3/2.
            Activation::HardSwish => 1.5,
            Activation::Sigmoid => 0.25,
            Activation::LeakyRelu { alpha } => (alpha as f64).abs().max(1.0),
            // The slopes of x·σ(x), GELU (both forms) and Mish peak near 1.1–1.13.
            Activation::Silu | Activation::Gelu | Activation::GeluTanh | Activation::Mish => 1.2,
        }
    }

    /// Whether the activation is piecewise linear (exact in float32 arithmetic).
    pub fn is_linear_pieces(self) -> bool {
        matches!(self, Activation::Identity | Activation::Relu | Activation::Clip { .. } | Activation::LeakyRelu { .. })
    }

    pub(crate) fn validate(self) -> Result<()> {
        let bad = match self {
            Activation::Clip { min, max } => min.is_nan() || max.is_nan() || min > max,
            Activation::HardSigmoid { alpha, beta } => !alpha.is_finite() || !beta.is_finite(),
            Activation::LeakyRelu { alpha } => !alpha.is_finite(),
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
            Activation::LeakyRelu { .. } => 6,
            Activation::Tanh => 7,
            Activation::Silu => 8,
            Activation::Gelu => 9,
            Activation::GeluTanh => 10,
            Activation::Mish => 11,
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
            (6, Activation::LeakyRelu { alpha }) => Activation::LeakyRelu { alpha },
            (7, _) => Activation::Tanh,
            (8, _) => Activation::Silu,
            (9, _) => Activation::Gelu,
            (10, _) => Activation::GeluTanh,
            (11, _) => Activation::Mish,
            _ => self,
        };
        // SAFETY: the caller guarantees V's features are available.
        unsafe { act.apply(x) }
    }

    /// Whether [`Activation::apply_tile`] applies the activation to the register tile: the
    /// kinds of a few instructions and constants. The others (sigmoid, tanh and the kinds made
    /// of them) hold enough constants and temporaries that, with their arms in the tile's
    /// code, the compiler kept the accumulators on the stack for every tile, whatever the
    /// activation at run time (AVX-512 12×32 on a pointwise 16→96 convolution at 112², 24
    /// stores and 24 loads per 384 FMAs: ReLU 64 → 71–75 % of the FMA peak, SiLU 40 → 45 %
    /// with them out of the tile's code); they run on the stored tile instead, from L1
    /// ([`Activation::apply_rows`]), with the same bits.
    pub(crate) fn in_registers(self) -> bool {
        matches!(
            self,
            Activation::Identity
                | Activation::Relu
                | Activation::Clip { .. }
                | Activation::HardSigmoid { .. }
                | Activation::HardSwish
                | Activation::LeakyRelu { .. }
        )
    }

    /// Applies the activation to a whole register tile when it is applied in registers
    /// ([`Activation::in_registers`]; the others are left to [`Activation::apply_rows`]): one
    /// dispatch, then a branch-free sweep.
    #[inline(always)]
    pub(crate) unsafe fn apply_tile<V: SimdF32, const MR: usize, const NV: usize>(self, acc: &mut [[V; NV]; MR]) {
        // One loop per activation, written out (no closures): the loop body must inline
        // into the caller's `#[target_feature]` function, or every intrinsic becomes a call.
        macro_rules! sweep {
            ($act:expr) => {
                // Nested loops over the constant counts, not `flatten()`: LLVM unrolls these
                // fully, while a flattened iterator stayed a loop over the tile on the stack.
                for row in acc.iter_mut() {
                    for v in row.iter_mut() {
                        // SAFETY: the caller runs with `V`'s instruction set enabled.
                        *v = unsafe { $act.apply(*v) };
                    }
                }
            };
        }
        match self {
            Activation::Relu => sweep!(Activation::Relu),
            Activation::Clip { min, max } => sweep!(Activation::Clip { min, max }),
            Activation::HardSigmoid { alpha, beta } => sweep!(Activation::HardSigmoid { alpha, beta }),
            Activation::HardSwish => sweep!(Activation::HardSwish),
            Activation::LeakyRelu { alpha } => sweep!(Activation::LeakyRelu { alpha }),
            _ => {}
        }
    }

    /// Applies an activation that [`Activation::apply_tile`] leaves (see
    /// [`Activation::in_registers`]) to a stored tile in place: `rows` rows of `cols ≤ NV·LANES`
    /// values at `c`, `ldc` apart. The others are left alone.
    ///
    /// # Safety
    /// `V`'s features are available; the rows are readable and writable.
    #[inline(always)]
    pub(crate) unsafe fn apply_rows<V: SimdF32, const NV: usize>(
        self,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
    ) {
        macro_rules! sweep {
            ($act:expr) => {
                for i in 0..rows {
                    for j in 0..NV {
                        let (p, n) = (c.wrapping_add(i * ldc + j * V::LANES), cols.saturating_sub(j * V::LANES));
                        // SAFETY: `n` values at `p` lie in the tile (the caller's contract);
                        // the caller runs with `V`'s instruction set enabled.
                        unsafe { store_n($act.apply(load_n::<V>(p, n)), p, n) };
                    }
                }
            };
        }
        match self {
            Activation::Sigmoid => sweep!(Activation::Sigmoid),
            Activation::Tanh => sweep!(Activation::Tanh),
            Activation::Silu => sweep!(Activation::Silu),
            Activation::Gelu => sweep!(Activation::Gelu),
            Activation::GeluTanh => sweep!(Activation::GeluTanh),
            Activation::Mish => sweep!(Activation::Mish),
            _ => {}
        }
    }

    /// Applies the activation to every element of `data` in place: one dispatch, then a
    /// vector loop (the same formulas as the epilogue).
    #[inline(always)]
    pub(crate) unsafe fn apply_slice<V: SimdF32>(self, data: &mut [f32]) {
        macro_rules! sweep {
            ($act:expr) => {
                // The caller runs with `V`'s instruction set enabled.
                math::map_slice!(V, data, |v| $act.apply(v))
            };
        }
        each_kind!(self, sweep)
    }

    #[inline(always)]
    pub(crate) unsafe fn apply<V: SimdF32>(self, x: V) -> V {
        // SAFETY: the caller guarantees V's features are available.
        unsafe {
            match self {
                Activation::Identity => x,
                // Bounds first: NaN stays NaN (see `math::clamp`).
                Activation::Relu => V::splat(0.0).max(x),
                Activation::Clip { min, max } => math::clamp(x, min, max),
                Activation::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha, beta),
                Activation::HardSwish => x.mul(hard_sigmoid(x, 1.0 / 6.0, 0.5)),
                Activation::Sigmoid => math::sigmoid(x),
                Activation::LeakyRelu { alpha } => x.select_lt(V::splat(0.0), x.mul(V::splat(alpha)), x),
                Activation::Tanh => math::tanh(x),
                Activation::Silu => math::silu(x),
                Activation::Gelu => math::gelu(x),
                Activation::GeluTanh => math::gelu_tanh(x),
                Activation::Mish => math::mish(x),
            }
        }
    }
}

#[inline(always)]
unsafe fn hard_sigmoid<V: SimdF32>(x: V, alpha: f32, beta: f32) -> V {
    // SAFETY: the caller guarantees V's features are available.
    unsafe { math::clamp(x.mul_add(V::splat(alpha), V::splat(beta)), 0.0, 1.0) }
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
