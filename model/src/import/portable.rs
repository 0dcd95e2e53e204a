//! Attributes of the operators [`crate::portable`] evaluates: each becomes an
//! [`Op::Generic`] with its accepted input count and how many outputs it can have.

use kernels::Activation;
use onnx::attr;

use super::Ctx;
use crate::error::Result;
use crate::ir::{CoordinateMode, NearestMode, Op};
use crate::portable::{
    rnn_act, AspectPolicy, Compare, Coordinates, Direction, Generic, Interp, Logic, PadMode, PoolNd, QLinearBinary,
    ReduceKind, Reduction, ResizeAttrs, Rnn, RnnKind, Unary, Variadic,
};
use crate::tensor::{DType, Tensor};

/// A parsed portable operator: the op, (min, max) inputs, the most outputs it has.
type Parsed = (Op, (usize, usize), usize);

impl Ctx<'_> {
    fn ints_attr(&self, name: &str) -> Result<Option<Vec<i64>>> {
        self.wrap(attr::ints(self.node, name))
    }

    fn reduction(&self) -> Result<Reduction> {
        Ok(match self.string("reduction", "none")?.as_str() {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            r => return Err(self.err(format!("reduction `{r}` is not an ONNX value"))),
        })
    }

    fn softmax_axis(&self) -> Result<(i64, bool)> {
        let coerce_2d = self.opset < 13;
        Ok((self.int("axis", if coerce_2d { 1 } else { -1 })?, coerce_2d))
    }

    /// Outputs the node declares, at most `max`.
    fn outputs(&self, max: usize) -> usize {
        self.node.output.len().clamp(1, max)
    }

    /// A pool the native 2-D kernels do not run (another spatial rank, `Indices`,
    /// column-major storage) as a portable op; `None` for the native ones.
    fn pool_nd(&self, max: bool) -> Result<Option<Parsed>> {
        let kernel = self.ints_attr("kernel_shape")?.ok_or_else(|| self.err("attribute `kernel_shape` is required"))?;
        let outputs = self.outputs(if max { 2 } else { 1 });
        let column_major = max && self.int("storage_order", 0)? != 0;
        if kernel.len() == 2 && outputs == 1 && !column_major {
            return Ok(None);
        }
        let r = kernel.len();
        let list = |name: &str, default: usize, len: usize, min: i64| -> Result<Vec<usize>> {
            let v = self.ints_attr(name)?.unwrap_or_else(|| vec![default as i64; len]);
            if v.len() != len || v.iter().any(|&x| x < min || x > 1 << 16) {
                return Err(self.err(format!("attribute `{name}` = {v:?} does not fit a {r}-D window")));
            }
            Ok(v.iter().map(|&x| x as usize).collect())
        };
        let pool = PoolNd {
            kernel: list("kernel_shape", 1, r, 1)?,
            strides: list("strides", 1, r, 1)?,
            dilations: list("dilations", 1, r, 1)?,
            pads: list("pads", 0, 2 * r, 0)?,
            auto_pad: self.auto_pad()?,
            ceil_mode: self.flag("ceil_mode")?,
            average: if max { None } else { Some(self.flag("count_include_pad")?) },
            column_major,
        };
        Ok(Some((Op::Generic(Generic::Pool(pool, outputs)), (1, 1), if max { 2 } else { 1 })))
    }

    /// `Resize` (scales at input 2) or `Upsample` (scales at input 1, asymmetric, floor).
    fn resize_attrs(&self, scales_input: usize) -> Result<ResizeAttrs> {
        let upsample = scales_input == 1;
        let nearest = match self.string("nearest_mode", if upsample { "floor" } else { "round_prefer_floor" })?.as_str()
        {
            "round_prefer_floor" => NearestMode::RoundPreferFloor,
            "round_prefer_ceil" => NearestMode::RoundPreferCeil,
            "floor" => NearestMode::Floor,
            "ceil" => NearestMode::Ceil,
            m => return Err(self.err(format!("nearest_mode `{m}` is not an ONNX value"))),
        };
        let interp = match self.string("mode", "nearest")?.as_str() {
            "nearest" => Interp::Nearest(nearest),
            "linear" | "bilinear" | "trilinear" => Interp::Linear,
            "cubic" | "bicubic" => Interp::Cubic(self.float("cubic_coeff_a", -0.75)?),
            m => return Err(self.err(format!("mode `{m}` is not an ONNX value"))),
        };
        let default_coords = if upsample { "asymmetric" } else { "half_pixel" };
        let coordinates = match self.string("coordinate_transformation_mode", default_coords)?.as_str() {
            "half_pixel" => Coordinates::Native(CoordinateMode::HalfPixel),
            "pytorch_half_pixel" => Coordinates::Native(CoordinateMode::PytorchHalfPixel),
            "align_corners" => Coordinates::Native(CoordinateMode::AlignCorners),
            "asymmetric" => Coordinates::Native(CoordinateMode::Asymmetric),
            "tf_half_pixel_for_nearest" => Coordinates::Native(CoordinateMode::TfHalfPixelForNearest),
            "half_pixel_symmetric" => Coordinates::HalfPixelSymmetric,
            "tf_crop_and_resize" => Coordinates::TfCropAndResize,
            m => return Err(self.err(format!("coordinate_transformation_mode `{m}` is not an ONNX value"))),
        };
        let policy = match self.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
            "stretch" => AspectPolicy::Stretch,
            "not_larger" => AspectPolicy::NotLarger,
            "not_smaller" => AspectPolicy::NotSmaller,
            p => return Err(self.err(format!("keep_aspect_ratio_policy `{p}` is not an ONNX value"))),
        };
        Ok(ResizeAttrs {
            interp,
            coordinates,
            axes: self.ints_attr("axes")?,
            antialias: self.flag("antialias")?,
            exclude_outside: self.flag("exclude_outside")?,
            extrapolation: self.float("extrapolation_value", 0.0)?,
            policy,
            scales_input,
        })
    }

    fn rnn(&self, kind: RnnKind) -> Result<Option<Parsed>> {
        let direction = match self.string("direction", "forward")?.as_str() {
            "forward" => Direction::Forward,
            "reverse" => Direction::Reverse,
            "bidirectional" => Direction::Bidirectional,
            d => return Err(self.err(format!("direction `{d}` is not an ONNX value"))),
        };
        let hidden = match self.wrap(attr::int(self.node, "hidden_size"))? {
            Some(h) if (1..=1 << 16).contains(&h) => h as usize,
            Some(h) => return Err(self.err(format!("hidden_size = {h} is out of range"))),
            None => return Err(self.err("attribute `hidden_size` is required")),
        };
        let dirs = if direction == Direction::Bidirectional { 2 } else { 1 };
        let per = kind.activations();
        let names = self.wrap(attr::strings(self.node, "activations"))?;
        let alphas = self.wrap(attr::floats(self.node, "activation_alpha"))?.unwrap_or_default();
        let betas = self.wrap(attr::floats(self.node, "activation_beta"))?.unwrap_or_default();
        let defaults: &[&str] = if kind == RnnKind::Lstm { &["Sigmoid", "Tanh", "Tanh"] } else { &["Sigmoid", "Tanh"] };
        let names: Vec<String> = match names {
            Some(n) if n.len() == per * dirs => n,
            Some(n) => return Err(self.err(format!("{} activations for {dirs} direction(s)", n.len()))),
            None => (0..dirs).flat_map(|_| defaults.iter().map(|s| s.to_string())).collect(),
        };
        let activations = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                rnn_act(n, alphas.get(i).copied(), betas.get(i).copied())
                    .ok_or_else(|| self.err(format!("activation `{n}` is not supported")))
            })
            .collect::<Result<_>>()?;
        let clip = self.wrap(attr::float(self.node, "clip"))?;
        let (inputs, outs) = if kind == RnnKind::Lstm { ((3, 8), 3) } else { ((3, 6), 2) };
        let rnn = Rnn {
            kind,
            direction,
            hidden,
            activations,
            clip,
            input_forget: self.flag("input_forget")?,
            batch_first: self.int("layout", 0)? == 1,
            outputs: self.outputs(outs),
            quantized: false,
        };
        Ok(Some((Op::Generic(Generic::Rnn(rnn)), inputs, outs)))
    }
}

/// A portable operator with its (min, max) input count and output count.
fn generic(op: Generic, min: usize, max: usize, outs: usize) -> Result<Option<Parsed>> {
    Ok(Some((Op::Generic(op), (min, max), outs)))
}

/// The `com.microsoft` operators of ONNX Runtime's quantization tools that the importer
/// knows: their op, their (min, max) input count and their output count.
fn parse_microsoft(ctx: &Ctx) -> Result<Option<Parsed>> {
    match ctx.node.op_type.as_str() {
        "QLinearAdd" => generic(Generic::QLinearBinary(QLinearBinary::Add), 7, 8, 1),
        "QLinearMul" => generic(Generic::QLinearBinary(QLinearBinary::Mul), 7, 8, 1),
        "QLinearSigmoid" => generic(Generic::QLinearSigmoid, 4, 5, 1),
        "QLinearConcat" => generic(Generic::QLinearConcat(ctx.int("axis", 1)?), 5, usize::MAX, 1),
        "QLinearGlobalAveragePool" => {
            generic(Generic::QLinearGlobalAveragePool(ctx.int("channels_last", 0)? != 0), 4, 5, 1)
        }
        "QGemm" => generic(Generic::QGemm(ctx.float("alpha", 1.0)?, ctx.flag("transA")?, ctx.flag("transB")?), 6, 9, 1),
        "DynamicQuantizeMatMul" => generic(Generic::DynamicQuantizeMatMul, 3, 5, 1),
        "DynamicQuantizeLSTM" => {
            let Some((Op::Generic(Generic::Rnn(mut r)), _, outs)) = ctx.rnn(RnnKind::Lstm)? else {
                unreachable!("an LSTM")
            };
            r.quantized = true;
            Ok(Some((Op::Generic(Generic::Rnn(r)), (3, 12), outs)))
        }
        _ => Ok(None),
    }
}

/// The portable operator a node names, or `None` when it is not one (the importer's own
/// table takes it, or refuses it).
pub(super) fn parse(ctx: &Ctx, microsoft: bool) -> Result<Option<Parsed>> {
    if microsoft {
        return parse_microsoft(ctx);
    }
    let op_type = ctx.node.op_type.as_str();
    for family in [elementwise, movement, reductions, others] {
        if let Some(parsed) = family(ctx, op_type)? {
            return Ok(Some(parsed));
        }
    }
    Ok(None)
}

/// Element-wise operators: unary functions, activations, comparisons, logic, variadic ops.
fn elementwise(ctx: &Ctx, op_type: &str) -> Result<Option<Parsed>> {
    let g = generic;
    let unary = |u: Unary| g(Generic::Unary(u), 1, 1, 1);
    // Activations the kernels have: fusable into convolution and GEMM epilogues.
    let act = |a: Activation| Ok(Some((Op::Activation(a), (1, 1), 1)));
    match op_type {
        "Abs" => unary(Unary::Abs),
        "Neg" => unary(Unary::Neg),
        "Sign" => unary(Unary::Sign),
        "Floor" => unary(Unary::Floor),
        "Ceil" => unary(Unary::Ceil),
        "Round" => unary(Unary::Round),
        "Sqrt" => unary(Unary::Sqrt),
        "Reciprocal" => unary(Unary::Reciprocal),
        "Exp" => unary(Unary::Exp),
        "Log" => unary(Unary::Log),
        "Erf" => unary(Unary::Erf),
        "Tanh" => act(Activation::Tanh),
        "Sin" => unary(Unary::Sin),
        "Cos" => unary(Unary::Cos),
        "Tan" => unary(Unary::Tan),
        "Asin" => unary(Unary::Asin),
        "Acos" => unary(Unary::Acos),
        "Atan" => unary(Unary::Atan),
        "Sinh" => unary(Unary::Sinh),
        "Cosh" => unary(Unary::Cosh),
        "Asinh" => unary(Unary::Asinh),
        "Acosh" => unary(Unary::Acosh),
        "Atanh" => unary(Unary::Atanh),
        "Softplus" => unary(Unary::Softplus),
        "Softsign" => unary(Unary::Softsign),
        "Mish" => act(Activation::Mish),
        "Not" => unary(Unary::Not),
        "IsNaN" => unary(Unary::IsNaN),
        "BitwiseNot" => unary(Unary::BitwiseNot),
        "IsInf" => unary(Unary::IsInf(ctx.int("detect_negative", 1)? != 0, ctx.int("detect_positive", 1)? != 0)),
        "LeakyRelu" => act(Activation::LeakyRelu { alpha: ctx.float("alpha", 0.01)? }),
        "Elu" => unary(Unary::Elu(ctx.float("alpha", 1.0)?)),
        "Selu" => unary(Unary::Selu(ctx.float("alpha", 1.673_263_2)?, ctx.float("gamma", 1.050_701)?)),
        "Celu" => unary(Unary::Celu(ctx.float("alpha", 1.0)?)),
        "ThresholdedRelu" => unary(Unary::ThresholdedRelu(ctx.float("alpha", 1.0)?)),
        "Shrink" => unary(Unary::Shrink(ctx.float("bias", 0.0)?, ctx.float("lambd", 0.5)?)),
        "Gelu" => match ctx.string("approximate", "none")?.as_str() {
            "none" => act(Activation::Gelu),
            "tanh" => act(Activation::GeluTanh),
            a => Err(ctx.err(format!("approximate `{a}` is not an ONNX value"))),
        },
        "Pow" => g(Generic::Pow, 2, 2, 1),
        "Mod" => g(Generic::Mod(ctx.flag("fmod")?), 2, 2, 1),
        "PRelu" => g(Generic::PRelu, 2, 2, 1),
        "Equal" => g(Generic::Compare(Compare::Equal), 2, 2, 1),
        "Less" => g(Generic::Compare(Compare::Less), 2, 2, 1),
        "LessOrEqual" => g(Generic::Compare(Compare::LessOrEqual), 2, 2, 1),
        "Greater" => g(Generic::Compare(Compare::Greater), 2, 2, 1),
        "GreaterOrEqual" => g(Generic::Compare(Compare::GreaterOrEqual), 2, 2, 1),
        "And" => g(Generic::Logic(Logic::And), 2, 2, 1),
        "Or" => g(Generic::Logic(Logic::Or), 2, 2, 1),
        "Xor" => g(Generic::Logic(Logic::Xor), 2, 2, 1),
        "BitwiseAnd" => g(Generic::Logic(Logic::BitwiseAnd), 2, 2, 1),
        "BitwiseOr" => g(Generic::Logic(Logic::BitwiseOr), 2, 2, 1),
        "BitwiseXor" => g(Generic::Logic(Logic::BitwiseXor), 2, 2, 1),
        "Sum" => g(Generic::Variadic(Variadic::Sum), 1, usize::MAX, 1),
        "Mean" => g(Generic::Variadic(Variadic::Mean), 1, usize::MAX, 1),
        "Max" => g(Generic::Variadic(Variadic::Max), 1, usize::MAX, 1),
        "Min" => g(Generic::Variadic(Variadic::Min), 1, usize::MAX, 1),
        "Where" => g(Generic::Where, 3, 3, 1),
        "CastLike" => g(Generic::CastLike, 2, 2, 1),
        _ => Ok(None),
    }
}

/// Data movement and shape operators.
fn movement(ctx: &Ctx, op_type: &str) -> Result<Option<Parsed>> {
    let g = generic;
    match op_type {
        "Transpose" => g(Generic::Transpose(ctx.ints_attr("perm")?), 1, 1, 1),
        "Split" => {
            let outputs = ctx.node.output.len().max(1);
            if let Some(n) = ctx.wrap(attr::int(ctx.node, "num_outputs"))? {
                if n != outputs as i64 {
                    return Err(ctx.err(format!("num_outputs = {n} but the node has {outputs} outputs")));
                }
            }
            g(Generic::Split { axis: ctx.int("axis", 0)?, sizes: ctx.ints_attr("split")?, outputs }, 1, 2, outputs)
        }
        "Gather" => g(Generic::Gather(ctx.int("axis", 0)?), 2, 2, 1),
        "GatherElements" => g(Generic::GatherElements(ctx.int("axis", 0)?), 2, 2, 1),
        "GatherND" => g(Generic::GatherNd(ctx.int("batch_dims", 0)?), 2, 2, 1),
        "ScatterND" => g(Generic::ScatterNd(ctx.reduction()?), 3, 3, 1),
        "ScatterElements" => g(Generic::ScatterElements(ctx.int("axis", 0)?, ctx.reduction()?), 3, 3, 1),
        "Squeeze" => g(Generic::Squeeze(ctx.ints_attr("axes")?), 1, 2, 1),
        "Unsqueeze" => g(Generic::Unsqueeze(ctx.ints_attr("axes")?), 1, 2, 1),
        "Expand" => g(Generic::Expand, 2, 2, 1),
        "Tile" => g(Generic::Tile, 2, 2, 1),
        "Range" => g(Generic::Range, 3, 3, 1),
        "ConstantOfShape" => {
            let value = match ctx.wrap(attr::tensor(ctx.node, "value"))? {
                Some(t) => {
                    let t = Tensor::from_onnx(t).map_err(|e| ctx.err(e.to_string()))?;
                    let v = match (t.floats(), t.ints()) {
                        (Some([f]), _) => f64::from(*f),
                        (_, Some([i])) => *i as f64,
                        _ => return Err(ctx.err("`value` must hold one element")),
                    };
                    Some((t.dtype, v))
                }
                None => None,
            };
            g(Generic::ConstantOfShape(value), 1, 1, 1)
        }
        "Size" => g(Generic::Size, 1, 1, 1),
        "Pad" => {
            let mode = match ctx.string("mode", "constant")?.as_str() {
                "constant" => PadMode::Constant,
                "reflect" => PadMode::Reflect,
                "edge" => PadMode::Edge,
                "wrap" => PadMode::Wrap,
                m => return Err(ctx.err(format!("mode `{m}` is not an ONNX value"))),
            };
            g(Generic::Pad { mode, pads: ctx.ints_attr("pads")?, value: ctx.float("value", 0.0)? }, 1, 4, 1)
        }
        "DepthToSpace" | "SpaceToDepth" => {
            let b = match ctx.wrap(attr::int(ctx.node, "blocksize"))? {
                Some(b) if (1..=1 << 10).contains(&b) => b as usize,
                _ => return Err(ctx.err("attribute `blocksize` must be in 1..=1024")),
            };
            if op_type == "SpaceToDepth" {
                return g(Generic::SpaceToDepth(b), 1, 1, 1);
            }
            let crd = match ctx.string("mode", "DCR")?.as_str() {
                "DCR" => false,
                "CRD" => true,
                m => return Err(ctx.err(format!("mode `{m}` is not an ONNX value"))),
            };
            g(Generic::DepthToSpace(b, crd), 1, 1, 1)
        }
        _ => Ok(None),
    }
}

/// Reductions, normalizations, `TopK` and `Einsum`.
fn reductions(ctx: &Ctx, op_type: &str) -> Result<Option<Parsed>> {
    let g = generic;
    match op_type {
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
        | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" => {
            let kind = match op_type {
                "ReduceMean" => ReduceKind::Mean,
                "ReduceSum" => ReduceKind::Sum,
                "ReduceMax" => ReduceKind::Max,
                "ReduceMin" => ReduceKind::Min,
                "ReduceProd" => ReduceKind::Prod,
                "ReduceL1" => ReduceKind::L1,
                "ReduceL2" => ReduceKind::L2,
                "ReduceSumSquare" => ReduceKind::SumSquare,
                "ReduceLogSum" => ReduceKind::LogSum,
                _ => ReduceKind::LogSumExp,
            };
            g(
                Generic::Reduce {
                    kind,
                    axes: ctx.ints_attr("axes")?,
                    keepdims: ctx.int("keepdims", 1)? != 0,
                    noop_with_empty_axes: ctx.flag("noop_with_empty_axes")?,
                },
                1,
                2,
                1,
            )
        }
        "ArgMax" | "ArgMin" => g(
            Generic::ArgExtreme {
                max: op_type == "ArgMax",
                axis: ctx.int("axis", 0)?,
                keepdims: ctx.int("keepdims", 1)? != 0,
                select_last_index: ctx.flag("select_last_index")?,
            },
            1,
            1,
            1,
        ),
        "LogSoftmax" => {
            let (axis, coerce_2d) = ctx.softmax_axis()?;
            g(Generic::LogSoftmax { axis, coerce_2d }, 1, 1, 1)
        }
        "Hardmax" => {
            let (axis, coerce_2d) = ctx.softmax_axis()?;
            g(Generic::Hardmax { axis, coerce_2d }, 1, 1, 1)
        }
        "LayerNormalization" => g(
            Generic::LayerNorm {
                axis: ctx.int("axis", -1)?,
                epsilon: ctx.float("epsilon", 1e-5)?,
                outputs: ctx.outputs(3),
            },
            2,
            3,
            3,
        ),
        "InstanceNormalization" => g(Generic::InstanceNorm(ctx.float("epsilon", 1e-5)?), 3, 3, 1),
        "GroupNormalization" => {
            let groups = match ctx.wrap(attr::int(ctx.node, "num_groups"))? {
                Some(n) if (1..=1 << 16).contains(&n) => n as usize,
                _ => return Err(ctx.err("attribute `num_groups` must be in 1..=65536")),
            };
            g(Generic::GroupNorm { groups, epsilon: ctx.float("epsilon", 1e-5)? }, 3, 3, 1)
        }
        "LpNormalization" => match ctx.int("p", 2)? {
            p @ (1 | 2) => g(Generic::LpNorm(ctx.int("axis", -1)?, p as u8), 1, 1, 1),
            p => Err(ctx.err(format!("p = {p} (1 or 2)"))),
        },
        "MeanVarianceNormalization" => {
            g(Generic::MeanVarianceNorm(ctx.ints_attr("axes")?.unwrap_or_else(|| vec![0, 2, 3])), 1, 1, 1)
        }
        "GlobalMaxPool" => g(Generic::GlobalMaxPool, 1, 1, 1),
        // `sorted = 0` leaves the order unspecified: sorted order is one valid answer.
        "CumSum" => g(Generic::CumSum { exclusive: ctx.flag("exclusive")?, reverse: ctx.flag("reverse")? }, 2, 2, 1),
        "TopK" => g(Generic::TopK { axis: ctx.int("axis", -1)?, largest: ctx.int("largest", 1)? != 0 }, 2, 2, 2),
        "Einsum" => match ctx.wrap(attr::string(ctx.node, "equation"))? {
            Some(eq) => g(Generic::Einsum(eq), 1, usize::MAX, 1),
            None => Err(ctx.err("attribute `equation` is required")),
        },
        _ => Ok(None),
    }
}

/// Pooling, `NonMaxSuppression`, `Resize`, the recurrent cells, `Dropout` and quantization.
fn others(ctx: &Ctx, op_type: &str) -> Result<Option<Parsed>> {
    let g = generic;
    match op_type {
        "MaxPool" | "AveragePool" => ctx.pool_nd(op_type == "MaxPool"),
        "NonMaxSuppression" => g(Generic::NonMaxSuppression(ctx.flag("center_point_box")?), 2, 5, 1),
        "Resize" => g(Generic::Resize(ctx.resize_attrs(2)?), 1, 4, 1),
        "Upsample" => g(Generic::Resize(ctx.resize_attrs(1)?), 2, 2, 1),
        "LSTM" => ctx.rnn(RnnKind::Lstm),
        "GRU" => ctx.rnn(RnnKind::Gru(ctx.flag("linear_before_reset")?)),
        "Dropout" => g(Generic::Dropout(ctx.outputs(2)), 1, 3, 2),
        "QuantizeLinear" | "DequantizeLinear" => {
            if ctx.int("block_size", 0)? != 0 {
                return Err(ctx.err("blocked quantization (block_size > 0) is not supported"));
            }
            let axis = ctx.int("axis", 1)?;
            if op_type == "DequantizeLinear" {
                return g(Generic::Dequantize(axis), 2, 3, 1);
            }
            let to = match ctx.int("output_dtype", 0)? {
                0 => DType::U8,
                code => {
                    i32::try_from(code).ok().and_then(DType::from_onnx).filter(|t| t.is_int()).ok_or_else(|| {
                        ctx.err(format!("output_dtype {} is not supported", onnx::tensor::type_name(code as i32)))
                    })?
                }
            };
            g(Generic::Quantize(axis, to), 2, 3, 1)
        }
        "DynamicQuantizeLinear" => g(Generic::DynamicQuantize, 1, 1, 3),
        "QLinearMatMul" => g(Generic::QLinearMatMul, 8, 8, 1),
        "MatMulInteger" => g(Generic::MatMulInteger, 2, 4, 1),
        "QLinearConv" | "ConvInteger" => {
            let Op::Conv(c) = ctx.conv(false)? else { unreachable!("conv") };
            if op_type == "QLinearConv" {
                g(Generic::QLinearConv(c), 8, 9, 1)
            } else {
                g(Generic::ConvInteger(c), 2, 4, 1)
            }
        }
        _ => Ok(None),
    }
}
