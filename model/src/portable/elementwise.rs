//! Element-wise operators: one-input math and activations, the broadcasting binary and
//! variadic operators beyond `Add`/`Sub`/`Mul`/`Div`, comparisons, logic, `Where`, `CastLike`.

use serde::{Deserialize, Serialize};

use super::{broadcast_offsets, Arg, At, Generic};
use crate::error::Result;
use crate::tensor::{broadcast, DType, Data, Tensor};

/// One-input element-wise operators (float unless noted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Unary {
    /// Integers too.
    Abs,
    /// Integers too.
    Neg,
    /// Integers too.
    Sign,
    Floor,
    Ceil,
    /// Half to even.
    Round,
    Sqrt,
    Reciprocal,
    Exp,
    Log,
    Erf,
    Tanh,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Softplus,
    Softsign,
    Mish,
    LeakyRelu(f32),
    Elu(f32),
    /// alpha, gamma.
    Selu(f32, f32),
    Celu(f32),
    /// `approximate = "tanh"`.
    Gelu(bool),
    ThresholdedRelu(f32),
    /// bias, lambd.
    Shrink(f32, f32),
    /// BOOL.
    Not,
    /// BOOL output.
    IsNaN,
    /// detect_negative, detect_positive; BOOL output.
    IsInf(bool, bool),
    /// Integers: bitwise not.
    BitwiseNot,
}

impl Unary {
    /// The ONNX operator name.
    pub fn name(self) -> &'static str {
        use Unary::*;
        match self {
            Abs => "Abs",
            Neg => "Neg",
            Sign => "Sign",
            Floor => "Floor",
            Ceil => "Ceil",
            Round => "Round",
            Sqrt => "Sqrt",
            Reciprocal => "Reciprocal",
            Exp => "Exp",
            Log => "Log",
            Erf => "Erf",
            Tanh => "Tanh",
            Sin => "Sin",
            Cos => "Cos",
            Tan => "Tan",
            Asin => "Asin",
            Acos => "Acos",
            Atan => "Atan",
            Sinh => "Sinh",
            Cosh => "Cosh",
            Asinh => "Asinh",
            Acosh => "Acosh",
            Atanh => "Atanh",
            Softplus => "Softplus",
            Softsign => "Softsign",
            Mish => "Mish",
            LeakyRelu(_) => "LeakyRelu",
            Elu(_) => "Elu",
            Selu(..) => "Selu",
            Celu(_) => "Celu",
            Gelu(_) => "Gelu",
            ThresholdedRelu(_) => "ThresholdedRelu",
            Shrink(..) => "Shrink",
            Not => "Not",
            IsNaN => "IsNaN",
            IsInf(..) => "IsInf",
            BitwiseNot => "BitwiseNot",
        }
    }

    /// Whether the output is BOOL.
    pub fn is_predicate(self) -> bool {
        matches!(self, Unary::Not | Unary::IsNaN | Unary::IsInf(..))
    }

    /// The float function (the ONNX definition, in float64).
    pub fn apply(self, x: f64) -> f64 {
        use Unary::*;
        let softplus = |x: f64| if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() };
        match self {
            Abs => x.abs(),
            Neg => -x,
            Sign if x.is_nan() => x,
            Sign if x == 0.0 => 0.0,
            Sign => x.signum(),
            Floor => x.floor(),
            Ceil => x.ceil(),
            Round => x.round_ties_even(),
            Sqrt => x.sqrt(),
            Reciprocal => 1.0 / x,
            Exp => x.exp(),
            Log => x.ln(),
            Erf => libm::erf(x),
            Tanh => x.tanh(),
            Sin => x.sin(),
            Cos => x.cos(),
            Tan => x.tan(),
            Asin => x.asin(),
            Acos => x.acos(),
            Atan => x.atan(),
            Sinh => x.sinh(),
            Cosh => x.cosh(),
            Asinh => x.asinh(),
            Acosh => x.acosh(),
            Atanh => x.atanh(),
            Softplus => softplus(x),
            Softsign => x / (1.0 + x.abs()),
            Mish => x * softplus(x).tanh(),
            LeakyRelu(a) => {
                if x < 0.0 {
                    f64::from(a) * x
                } else {
                    x
                }
            }
            Elu(a) => {
                if x < 0.0 {
                    f64::from(a) * x.exp_m1()
                } else {
                    x
                }
            }
            Selu(a, g) => {
                let (a, g) = (f64::from(a), f64::from(g));
                if x <= 0.0 {
                    g * a * x.exp_m1()
                } else {
                    g * x
                }
            }
            Celu(a) => {
                let a = f64::from(a);
                x.max(0.0) + (a * (x / a).exp_m1()).min(0.0)
            }
            Gelu(false) => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            Gelu(true) => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            ThresholdedRelu(a) => {
                if x > f64::from(a) {
                    x
                } else {
                    0.0
                }
            }
            Shrink(bias, lambd) => {
                let (b, l) = (f64::from(bias), f64::from(lambd));
                if x < -l {
                    x + b
                } else if x > l {
                    x - b
                } else {
                    0.0
                }
            }
            Not => f64::from(u8::from(x == 0.0)),
            IsNaN => f64::from(u8::from(x.is_nan())),
            IsInf(neg, pos) => f64::from(u8::from((neg && x == f64::NEG_INFINITY) || (pos && x == f64::INFINITY))),
            BitwiseNot => f64::NAN,
        }
    }

    fn apply_int(self, x: i64, dtype: DType) -> Option<i64> {
        use Unary::*;
        Some(match self {
            Abs => x.wrapping_abs(),
            Neg => x.wrapping_neg(),
            Sign => x.signum(),
            Not => i64::from(x == 0),
            BitwiseNot => dtype.wrap(!x),
            // Rounding an integer is the identity.
            Floor | Ceil | Round => x,
            IsNaN | IsInf(..) => 0,
            _ => return None,
        })
    }
}

/// Comparisons (BOOL output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Compare {
    /// The ONNX operator name.
    pub fn name(self) -> &'static str {
        match self {
            Compare::Equal => "Equal",
            Compare::Less => "Less",
            Compare::LessOrEqual => "LessOrEqual",
            Compare::Greater => "Greater",
            Compare::GreaterOrEqual => "GreaterOrEqual",
        }
    }

    fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Compare::Equal => a == b,
            Compare::Less => a < b,
            Compare::LessOrEqual => a <= b,
            Compare::Greater => a > b,
            Compare::GreaterOrEqual => a >= b,
        }
    }
}

/// Boolean logic (BOOL in and out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Logic {
    And,
    Or,
    Xor,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
}

impl Logic {
    /// The ONNX operator name.
    pub fn name(self) -> &'static str {
        match self {
            Logic::And => "And",
            Logic::Or => "Or",
            Logic::Xor => "Xor",
            Logic::BitwiseAnd => "BitwiseAnd",
            Logic::BitwiseOr => "BitwiseOr",
            Logic::BitwiseXor => "BitwiseXor",
        }
    }
}

/// Variadic broadcasting reductions over inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Variadic {
    Sum,
    Mean,
    Max,
    Min,
}

impl Variadic {
    /// The ONNX operator name.
    pub fn name(self) -> &'static str {
        match self {
            Variadic::Sum => "Sum",
            Variadic::Mean => "Mean",
            Variadic::Max => "Max",
            Variadic::Min => "Min",
        }
    }
}

/// The shape every present input broadcasts to.
pub(super) fn broadcast_shape(at: &At, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    let mut out: Option<Vec<usize>> = None;
    for a in args.iter().flatten() {
        out = Some(match out {
            None => a.shape.to_vec(),
            Some(o) => broadcast(&o, a.shape)
                .ok_or_else(|| at.err(format!("shapes {o:?} and {:?} do not broadcast", a.shape)))?,
        });
    }
    Ok(vec![out.ok_or_else(|| at.err("no inputs"))?])
}

fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Python's `%` (the sign of the divisor).
fn floor_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }
}

pub(super) fn eval(
    at: &At,
    op: &Generic,
    ins: &[Option<&Tensor<f64>>],
    mut shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor<f64>>> {
    let out = shapes.remove(0);
    let x = at.tensor(ins, 0)?;
    let n: usize = out.iter().product();
    let float = |v: Vec<f64>| Ok(vec![Tensor::float(out.clone(), v)]);
    let boolean =
        |v: Vec<bool>| Ok(vec![Tensor::int(out.clone(), DType::Bool, v.into_iter().map(i64::from).collect())]);
    match op {
        Generic::Unary(u) => match &x.data {
            Data::Float(v) if u.is_predicate() => boolean(v.iter().map(|&a| u.apply(a) != 0.0).collect()),
            Data::Float(v) if *u != Unary::BitwiseNot => float(v.iter().map(|&a| u.apply(a)).collect()),
            Data::Int(v) => {
                let r: Option<Vec<i64>> = v.iter().map(|&a| u.apply_int(a, x.dtype)).collect();
                let r = r.ok_or_else(|| at.refuse(format!("input type {} is not supported", x.dtype.onnx_name())))?;
                let dtype = if u.is_predicate() { DType::Bool } else { x.dtype };
                Ok(vec![Tensor::int(out, dtype, r)])
            }
            Data::Float(_) => Err(at.err("BitwiseNot needs an integer input")),
        },
        Generic::CastLike => {
            let like = at.tensor(ins, 1)?;
            Ok(vec![cast(x, like.dtype)])
        }
        Generic::PRelu => {
            let slope = at.tensor(ins, 1)?;
            let so = broadcast_offsets(&slope.shape, &out);
            let (xv, sv) = (at.floats(ins, 0)?, at.floats(ins, 1)?);
            float(xv.iter().zip(&so).map(|(&a, &o)| if a < 0.0 { a * sv[o] } else { a }).collect())
        }
        Generic::Where => {
            let (c, a, b) = (at.tensor(ins, 0)?, at.tensor(ins, 1)?, at.tensor(ins, 2)?);
            let (oc, oa, ob) = (
                broadcast_offsets(&c.shape, &out),
                broadcast_offsets(&a.shape, &out),
                broadcast_offsets(&b.shape, &out),
            );
            let cv = c.ints().ok_or_else(|| at.err("the condition must be BOOL"))?;
            let pick = |i: usize| cv[oc[i]] != 0;
            Ok(vec![match (&a.data, &b.data) {
                (Data::Float(av), Data::Float(bv)) => {
                    Tensor::float(out, (0..n).map(|i| if pick(i) { av[oa[i]] } else { bv[ob[i]] }).collect())
                }
                (Data::Int(av), Data::Int(bv)) => {
                    Tensor::int(out, a.dtype, (0..n).map(|i| if pick(i) { av[oa[i]] } else { bv[ob[i]] }).collect())
                }
                _ => return Err(at.err("X and Y differ in type")),
            }])
        }
        _ => {
            let parts: Vec<&Tensor<f64>> = ins.iter().flatten().copied().collect();
            let offsets: Vec<Vec<usize>> = parts.iter().map(|t| broadcast_offsets(&t.shape, &out)).collect();
            binary_like(at, op, &parts, &offsets, out, n)
        }
    }
}

/// The broadcast operands of a variadic element-wise operator, folded pairwise element by
/// element.
struct Operands<'a> {
    parts: &'a [&'a Tensor<f64>],
    offsets: &'a [Vec<usize>],
    n: usize,
}

impl Operands<'_> {
    fn floats(&self, f: &dyn Fn(f64, f64) -> f64) -> Vec<f64> {
        let vals: Vec<&[f64]> = self.parts.iter().map(|t| t.floats().expect("all float")).collect();
        (0..self.n)
            .map(|i| {
                vals.iter().zip(self.offsets).skip(1).fold(vals[0][self.offsets[0][i]], |acc, (v, o)| f(acc, v[o[i]]))
            })
            .collect()
    }

    fn ints(&self, f: &dyn Fn(i64, i64) -> Result<i64>) -> Result<Vec<i64>> {
        let vals: Vec<&[i64]> = self.parts.iter().map(|t| t.ints().expect("all int")).collect();
        (0..self.n)
            .map(|i| {
                vals.iter()
                    .zip(self.offsets)
                    .skip(1)
                    .try_fold(vals[0][self.offsets[0][i]], |acc, (v, o)| f(acc, v[o[i]]))
            })
            .collect()
    }
}

fn logic(l: Logic, a: i64, b: i64) -> i64 {
    match l {
        Logic::And => i64::from(a != 0 && b != 0),
        Logic::Or => i64::from(a != 0 || b != 0),
        Logic::Xor => i64::from((a != 0) != (b != 0)),
        Logic::BitwiseAnd => a & b,
        Logic::BitwiseOr => a | b,
        Logic::BitwiseXor => a ^ b,
    }
}

fn binary_like(
    at: &At,
    op: &Generic,
    parts: &[&Tensor<f64>],
    offsets: &[Vec<usize>],
    out: Vec<usize>,
    n: usize,
) -> Result<Vec<Tensor<f64>>> {
    let all_float = parts.iter().all(|t| t.floats().is_some());
    let all_int = parts.iter().all(|t| t.ints().is_some());
    let dtype = parts[0].dtype;
    let ops = Operands { parts, offsets, n };
    let boolean = |v: Vec<i64>| Ok(vec![Tensor::int(out.clone(), DType::Bool, v)]);
    match op {
        Generic::Compare(c) if all_float => {
            boolean(ops.floats(&|a, b| f64::from(u8::from(c.test(a, b)))).iter().map(|&v| v as i64).collect())
        }
        Generic::Compare(c) if all_int => boolean(ops.ints(&|a, b| Ok(i64::from(c.test(a, b))))?),
        Generic::Logic(l) if all_int => {
            let r = ops.ints(&|a, b| Ok(logic(*l, a, b)))?;
            let t = if matches!(l, Logic::And | Logic::Or | Logic::Xor) { DType::Bool } else { dtype };
            Ok(vec![Tensor::int(out, t, r)])
        }
        Generic::Variadic(v) if all_float => {
            let mut r = match v {
                Variadic::Sum | Variadic::Mean => ops.floats(&|a, b| a + b),
                Variadic::Max => ops.floats(&fmax),
                Variadic::Min => ops.floats(&fmin),
            };
            if *v == Variadic::Mean {
                let k = parts.len() as f64;
                r.iter_mut().for_each(|x| *x /= k);
            }
            Ok(vec![Tensor::float(out, r)])
        }
        Generic::Variadic(v) if all_int => {
            let r = match v {
                Variadic::Sum => ops.ints(&|a, b| Ok(a.wrapping_add(b)))?,
                Variadic::Mean => {
                    let s = ops.ints(&|a, b| Ok(a.wrapping_add(b)))?;
                    s.into_iter().map(|x| x / parts.len() as i64).collect()
                }
                Variadic::Max => ops.ints(&|a, b| Ok(a.max(b)))?,
                Variadic::Min => ops.ints(&|a, b| Ok(a.min(b)))?,
            };
            Ok(vec![Tensor::int(out, dtype, r.into_iter().map(|x| dtype.wrap(x)).collect())])
        }
        Generic::Mod(fmod) if all_float => {
            let f: &dyn Fn(f64, f64) -> f64 = if *fmod { &|a: f64, b: f64| a % b } else { &floor_mod };
            Ok(vec![Tensor::float(out, ops.floats(f))])
        }
        Generic::Mod(fmod) if all_int => {
            let r = ops.ints(&|a, b| {
                if b == 0 {
                    return Err(at.err("integer modulo by zero"));
                }
                let r = a.wrapping_rem(b);
                Ok(if !*fmod && r != 0 && (r < 0) != (b < 0) { r + b } else { r })
            })?;
            Ok(vec![Tensor::int(out, dtype, r)])
        }
        Generic::Pow => Ok(vec![pow(&ops, out)]),
        _ => Err(at.err("operands of different or unsupported types")),
    }
}

/// `Pow`: float bases in float64; integer bases with a non-negative integer exponent by
/// wrapping integer powers, otherwise through float64 and back to the base's type.
fn pow(ops: &Operands, out: Vec<usize>) -> Tensor<f64> {
    let (base, exp, o) = (ops.parts[0], ops.parts[1], ops.offsets);
    let e = exp.reals();
    let dtype = base.dtype;
    match &base.data {
        Data::Float(b) => Tensor::float(out, (0..ops.n).map(|i| b[o[0][i]].powf(e[o[1][i]])).collect()),
        Data::Int(b) => {
            let r = (0..ops.n)
                .map(|i| {
                    let (x, y) = (b[o[0][i]], e[o[1][i]]);
                    match exp.ints() {
                        Some(ei) if ei[o[1][i]] >= 0 => x.wrapping_pow(u32::try_from(ei[o[1][i]]).unwrap_or(u32::MAX)),
                        _ => dtype.from_float((x as f64).powf(y)),
                    }
                })
                .map(|v| dtype.wrap(v))
                .collect();
            Tensor::int(out, dtype, r)
        }
    }
}

/// ONNX `Cast` of `t` to `to` (floats truncate toward zero; integers wrap).
pub fn cast(t: &Tensor<f64>, to: DType) -> Tensor<f64> {
    let data = match (&t.data, to.is_int()) {
        (Data::Float(v), true) => Data::Int(v.iter().map(|&f| to.from_float(f)).collect()),
        (Data::Float(v), false) => Data::Float(v.clone()),
        (Data::Int(v), false) => Data::Float(v.iter().map(|&i| i as f64).collect()),
        (Data::Int(v), true) => Data::Int(v.iter().map(|&i| to.wrap(i)).collect()),
    };
    Tensor { shape: t.shape.clone(), dtype: to, data }
}
