//! Output shapes of every operator, and the resolved geometry of convolutions, pools and
//! resizes, shared by the reference executor and the planner so both agree on shapes.

use kernels::{ConvKind, ConvParams};

use crate::error::{shape_error, Result};
use crate::ir::{AutoPad, Conv, Graph, Node, Op, Pool};
use crate::tensor::{axis, broadcast, Tensor};

fn err(node: &Node, reason: impl Into<String>) -> crate::error::ModelError {
    shape_error(&node.name, node.op.name(), reason)
}

/// `auto_pad` resolution for one axis: the (begin, end) pads for output `ceil(in / stride)`.
fn same_pads(input: usize, stride: usize, extent: usize, upper: bool) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + extent).saturating_sub(input);
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}

fn resolve_pads(
    auto: AutoPad,
    pads: [usize; 4],
    input: [usize; 2],
    strides: [usize; 2],
    extent: [usize; 2],
) -> [usize; 4] {
    match auto {
        AutoPad::NotSet => pads,
        AutoPad::Valid => [0; 4],
        AutoPad::SameUpper | AutoPad::SameLower => {
            let upper = auto == AutoPad::SameUpper;
            let (t, b) = same_pads(input[0], strides[0], extent[0], upper);
            let (l, r) = same_pads(input[1], strides[1], extent[1], upper);
            [t, l, b, r]
        }
    }
}

/// Checks that `shape` is rank 4 and returns it as an array.
pub fn rank4(node: &Node, shape: &[usize], what: &str) -> Result<[usize; 4]> {
    shape.try_into().map_err(|_| {
        crate::error::unsupported(
            &node.name,
            node.op.name(),
            format!("{what} has shape {shape:?}; only 4-D (N, C, H, W) tensors are supported"),
        )
    })
}

/// The kernel-level parameters of a `Conv` / `ConvTranspose` node on input `x` (NCHW) with
/// weights of shape `w`, and the output shape (NCHW).
pub fn conv_params(node: &Node, c: &Conv, x: &[usize], w: &[usize]) -> Result<(ConvParams, [usize; 4])> {
    let [n, c_in, h, wd] = rank4(node, x, "the input")?;
    let [w0, w1, kh, kw] = rank4(node, w, "the weight")?;
    if let Some(k) = c.kernel {
        if k != [kh, kw] {
            return Err(err(node, format!("kernel_shape {k:?} does not match the weight shape {w:?}")));
        }
    }
    let g = c.groups;
    let (c_out, c_in_w) = if c.transposed { (w1 * g, w0) } else { (w0, w1 * g) };
    if c_in_w != c_in {
        return Err(err(
            node,
            format!("the input has {c_in} channels, the weight {w:?} with group {g} expects {c_in_w}"),
        ));
    }
    let eff = [(kh - 1) * c.dilations[0] + 1, (kw - 1) * c.dilations[1] + 1];
    let mut p = ConvParams {
        kind: if c.transposed { ConvKind::Transposed { output_padding: c.output_padding } } else { ConvKind::Forward },
        c_in,
        c_out,
        kernel: [kh, kw],
        strides: c.strides,
        dilations: c.dilations,
        pads: c.pads,
        groups: g,
    };
    if c.transposed {
        let full = |i: usize, ax: usize| (i - 1) * c.strides[ax] + c.output_padding[ax] + eff[ax];
        if h == 0 || wd == 0 {
            return Err(err(node, "the input has an empty spatial dimension"));
        }
        let full = [full(h, 0), full(wd, 1)];
        let target = match (c.output_shape, c.auto_pad) {
            (Some(os), _) => Some(os),
            (None, AutoPad::SameUpper | AutoPad::SameLower) => Some([h * c.strides[0], wd * c.strides[1]]),
            _ => None,
        };
        if let Some(os) = target {
            let mut pads = [0; 4];
            for ax in 0..2 {
                // ONNX: the odd unit of padding goes to the end for SAME_UPPER, else to the
                // beginning; a negative end pad lengthens the output (output padding).
                let total = full[ax] as i64 - os[ax] as i64;
                let (b, e) = if c.auto_pad == AutoPad::SameUpper {
                    (total.div_euclid(2), total - total.div_euclid(2))
                } else {
                    (total - total.div_euclid(2), total.div_euclid(2))
                };
                if b < 0 {
                    return Err(err(
                        node,
                        format!("output_shape {os:?} needs negative leading padding (full output {full:?})"),
                    ));
                }
                pads[ax] = b as usize;
                pads[ax + 2] = e.max(0) as usize;
                if let ConvKind::Transposed { output_padding } = &mut p.kind {
                    output_padding[ax] += (-e).max(0) as usize;
                }
            }
            p.pads = pads;
        } else if c.auto_pad == AutoPad::Valid {
            p.pads = [0; 4];
        }
    } else {
        p.pads = resolve_pads(c.auto_pad, c.pads, [h, wd], c.strides, eff);
    }
    p.validate().map_err(|e| err(node, e.to_string()))?;
    let [oh, ow] = p.output_hw(h, wd).map_err(|e| err(node, e.to_string()))?;
    Ok((p, [n, c_out, oh, ow]))
}

/// A pool's resolved pads and output spatial size on an input of spatial size `hw`.
pub fn pool_geometry(node: &Node, p: &Pool, hw: [usize; 2]) -> Result<([usize; 4], [usize; 2])> {
    let eff = [(p.kernel[0] - 1) * p.dilations[0] + 1, (p.kernel[1] - 1) * p.dilations[1] + 1];
    let pads = resolve_pads(p.auto_pad, p.pads, hw, p.strides, eff);
    let mut out = [0; 2];
    for ax in 0..2 {
        let span = hw[ax] + pads[ax] + pads[ax + 2];
        if span < eff[ax] {
            return Err(err(node, format!("the window {eff:?} is larger than the padded input")));
        }
        out[ax] = match p.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => hw[ax].div_ceil(p.strides[ax]),
            _ if p.ceil_mode => {
                let o = (span - eff[ax]).div_ceil(p.strides[ax]) + 1;
                // The last window must start inside the input or its left pad.
                if (o - 1) * p.strides[ax] >= hw[ax] + pads[ax] {
                    o - 1
                } else {
                    o
                }
            }
            _ => (span - eff[ax]) / p.strides[ax] + 1,
        };
    }
    Ok((pads, out))
}

/// The output shape and per-axis scales of a `Resize` of `x`, from its constant `scales` or
/// `sizes` input.
pub fn resize_shape(g: &Graph, node: &Node, x: &[usize]) -> Result<(Vec<usize>, Vec<f64>)> {
    let constant = |i: usize| node.input(i).and_then(|id| g.constant(id)).filter(|t| !t.is_empty());
    if node.input(2).is_some_and(|id| g.constant(id).is_none())
        || node.input(3).is_some_and(|id| g.constant(id).is_none())
    {
        return Err(crate::error::data_dependent(&node.name, node.op.name(), "scales or sizes"));
    }
    let (out, scales): (Vec<usize>, Vec<f64>) = if let Some(sizes) = constant(3) {
        let s = sizes.ints().ok_or_else(|| err(node, "sizes must be INT64"))?;
        if s.len() != x.len() || s.iter().any(|&v| !(1..=1 << 24).contains(&v)) {
            return Err(err(node, format!("sizes {s:?} do not fit an input of shape {x:?}")));
        }
        let out: Vec<usize> = s.iter().map(|&v| v as usize).collect();
        let scales = out.iter().zip(x).map(|(&o, &i)| o as f64 / i as f64).collect();
        (out, scales)
    } else if let Some(scales) = constant(2) {
        let s = scales.floats().ok_or_else(|| err(node, "scales must be FLOAT"))?;
        if s.len() != x.len() || s.iter().any(|&v| !(v > 0.0 && v < 1e6)) {
            return Err(err(node, format!("scales {s:?} do not fit an input of shape {x:?}")));
        }
        let out = s.iter().zip(x).map(|(&sc, &i)| (i as f64 * sc as f64).floor() as usize).collect();
        (out, s.iter().map(|&v| v as f64).collect())
    } else {
        return Err(err(node, "Resize needs constant scales or sizes"));
    };
    if x.len() != 4 || out[0] != x[0] || out[1] != x[1] {
        return Err(err(node, format!("only spatial resizes of 4-D tensors are supported ({x:?} to {out:?})")));
    }
    if out.contains(&0) {
        return Err(err(node, format!("the output shape {out:?} is empty")));
    }
    Ok((out, scales))
}

/// The shape `Reshape` produces from `data` and the constant `shape` values.
pub fn reshape_shape(node: &Node, data: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let total: usize = data.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => {
                out.push(*data.get(i).ok_or_else(|| err(node, format!("shape {target:?} copies a missing dimension")))?)
            }
            t if t >= 0 => out.push(t as usize),
            _ => return Err(err(node, format!("shape {target:?} is not a valid Reshape target"))),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(err(node, format!("cannot reshape {data:?} to {target:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(err(node, format!("cannot reshape {data:?} ({total} values) to {target:?}")));
    }
    Ok(out)
}

/// Resolved `Slice`: per axis of the input, (start, step, count).
pub fn slice_ranges(g: &Graph, node: &Node, data: &[usize]) -> Result<Vec<(i64, i64, usize)>> {
    let ints = |i: usize| -> Result<Option<Vec<i64>>> {
        match node.input(i) {
            None => Ok(None),
            Some(id) => {
                let t = g
                    .constant(id)
                    .ok_or_else(|| crate::error::data_dependent(&node.name, node.op.name(), format!("input {i}")))?;
                Ok(Some(t.ints().ok_or_else(|| err(node, format!("input {i} must be integers")))?.to_vec()))
            }
        }
    };
    let starts = ints(1)?.unwrap_or_default();
    let ends = ints(2)?.unwrap_or_default();
    let axes = ints(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(err(node, "starts, ends, axes and steps differ in length"));
    }
    let mut out: Vec<(i64, i64, usize)> = data.iter().map(|&d| (0, 1, d)).collect();
    for k in 0..starts.len() {
        let a = axis(axes[k], data.len()).ok_or_else(|| err(node, format!("axis {} is out of range", axes[k])))?;
        let d = data[a] as i64;
        let step = steps[k];
        if step == 0 {
            return Err(err(node, "a Slice step is 0"));
        }
        let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (s, e) = if step > 0 {
            (clamp(fix(starts[k]), 0, d), clamp(fix(ends[k]), 0, d))
        } else {
            (clamp(fix(starts[k]), -1, d - 1), clamp(fix(ends[k]), -1, d - 1))
        };
        let count = if step > 0 { (e - s).max(0).div_euclid(1) as u64 } else { (s - e).max(0) as u64 };
        let count = count.div_ceil(step.unsigned_abs()) as usize;
        out[a] = (s, step, count);
    }
    Ok(out)
}

/// A `Pad` node's constant amounts as (begin, end) per axis of a rank-`rank` input: the
/// `pads` attribute (opsets before 11) or input 1, over input 3's axes when given (opset 18).
/// A data-dependent error where an input is not a plan-time constant.
pub fn pad_amounts(g: &Graph, node: &Node, rank: usize) -> Result<Vec<(i64, i64)>> {
    let Op::Generic(crate::portable::Generic::Pad { pads: attr, .. }) = &node.op else {
        return Err(err(node, "not a Pad"));
    };
    let ints = |i: usize| -> Result<Option<Vec<i64>>> {
        let Some(id) = node.input(i) else { return Ok(None) };
        let t = g
            .constant(id)
            .ok_or_else(|| crate::error::data_dependent(&node.name, node.op.name(), format!("input {i}")))?;
        Ok(Some(t.ints().ok_or_else(|| err(node, format!("input {i} must be integers")))?.to_vec()))
    };
    let p = match attr {
        Some(p) => p.clone(),
        None => ints(1)?.ok_or_else(|| err(node, "the pads input is missing"))?,
    };
    let axes = match ints(3)? {
        Some(a) => a
            .iter()
            .map(|&a| axis(a, rank).ok_or_else(|| err(node, format!("axis {a} is out of range"))))
            .collect::<Result<Vec<_>>>()?,
        None => (0..rank).collect(),
    };
    crate::portable::pad_pairs(&p, &axes, rank)
        .ok_or_else(|| err(node, format!("pads {p:?} do not fit {} axes", axes.len())))
}

/// A constant-mode `Pad`'s fill value: the `value` attribute (opsets before 11), else input
/// 2's first element, else 0. A data-dependent error where input 2 is not a constant.
pub fn pad_fill(g: &Graph, node: &Node) -> Result<f64> {
    let Op::Generic(crate::portable::Generic::Pad { pads: attr, value, .. }) = &node.op else {
        return Err(err(node, "not a Pad"));
    };
    if attr.is_some() {
        return Ok(f64::from(*value));
    }
    let Some(id) = node.input(2) else { return Ok(0.0) };
    let t = g.constant(id).ok_or_else(|| crate::error::data_dependent(&node.name, node.op.name(), "input 2"))?;
    match (t.floats(), t.ints()) {
        (Some(f), _) => Ok(f.first().map_or(0.0, |&v| f64::from(v))),
        (_, Some(i)) => Ok(i.first().map_or(0.0, |&v| v as f64)),
        _ => Err(err(node, "input 2 must be a number")),
    }
}

fn input_shape<'g>(g: &'g Graph, node: &Node, i: usize) -> Result<&'g [usize]> {
    let id = node.input(i).ok_or_else(|| err(node, format!("input {i} is missing")))?;
    g.shape(id).ok_or_else(|| err(node, format!("the shape of input {i} (`{}`) is unknown", g.values[id].name)))
}

fn const_ints<'g>(g: &'g Graph, node: &Node, i: usize, what: &str) -> Result<&'g [i64]> {
    node.input(i)
        .and_then(|id| g.constant(id))
        .and_then(Tensor::ints)
        .ok_or_else(|| crate::error::data_dependent(&node.name, node.op.name(), format!("{what} (input {i})")))
}

/// Output shapes of `node`, its inputs' shapes (and any constants it needs) known.
pub fn infer(g: &Graph, node: &Node) -> Result<Vec<Vec<usize>>> {
    if let Op::Generic(op) = &node.op {
        let args: Vec<Option<crate::portable::Arg>> = node
            .inputs
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let Some(id) = id else { return Ok(None) };
                let shape = input_shape(g, node, i)?;
                Ok(Some(crate::portable::Arg::at_plan(shape, g.values[*id].dtype, g.constant(*id))))
            })
            .collect::<Result<_>>()?;
        return crate::portable::infer(node, op, &args);
    }
    let x = input_shape(g, node, 0)?;
    let one = |s: Vec<usize>| Ok(vec![s]);
    match &node.op {
        Op::Conv(c) => one(conv_shape(g, node, c, x)?),
        Op::BatchNorm { .. } => {
            let c = *x.get(1).ok_or_else(|| err(node, "the input needs a channel axis"))?;
            for i in 1..5 {
                if input_shape(g, node, i)? != [c] {
                    return Err(err(node, format!("input {i} must have shape [{c}]")));
                }
            }
            one(x.to_vec())
        }
        Op::Binary(_) => {
            let y = input_shape(g, node, 1)?;
            one(broadcast(x, y).ok_or_else(|| err(node, format!("shapes {x:?} and {y:?} do not broadcast")))?)
        }
        Op::Activation(_) | Op::Softmax { .. } => one(x.to_vec()),
        Op::GlobalAveragePool => {
            if x.len() < 3 {
                return Err(err(node, format!("input shape {x:?} has no spatial axes")));
            }
            one(x.iter().enumerate().map(|(i, &d)| if i < 2 { d } else { 1 }).collect())
        }
        Op::MaxPool(p) | Op::AveragePool(p, _) => {
            let [n, c, h, w] = rank4(node, x, "the input")?;
            let (_, [oh, ow]) = pool_geometry(node, p, [h, w])?;
            one(vec![n, c, oh, ow])
        }
        Op::Concat(a) => one(concat_shape(g, node, *a, x)?),
        Op::Reshape(allowzero) => one(reshape_shape(node, x, const_ints(g, node, 1, "the shape")?, *allowzero)?),
        Op::Flatten(a) => {
            let ax = if *a == x.len() as i64 {
                x.len()
            } else {
                axis(*a, x.len()).ok_or_else(|| err(node, format!("axis {a} is out of range")))?
            };
            one(vec![x[..ax].iter().product(), x[ax..].iter().product()])
        }
        Op::Shape(start, end) => {
            let r = x.len() as i64;
            let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (fix(*start), fix(end.unwrap_or(r)));
            one(vec![e.saturating_sub(s)])
        }
        Op::Slice => one(slice_ranges(g, node, x)?.iter().map(|r| r.2).collect()),
        Op::Cast(_) => one(x.to_vec()),
        Op::MatMul => {
            let y = input_shape(g, node, 1)?;
            one(matmul_shape(node, x, y)?)
        }
        Op::Generic(_) => unreachable!("handled above"),
        Op::Gemm { trans_a, trans_b, .. } => one(gemm_shape(g, node, x, *trans_a, *trans_b)?),
    }
}

/// A convolution's output shape, its bias and residual checked against it.
fn conv_shape(g: &Graph, node: &Node, c: &Conv, x: &[usize]) -> Result<Vec<usize>> {
    let (_, out) = conv_params(node, c, x, input_shape(g, node, 1)?)?;
    if let Some(b) = node.input(2) {
        let bs = g.shape(b).unwrap_or(&[]);
        if bs != [out[1]] {
            return Err(err(node, format!("the bias has shape {bs:?}, expected [{}]", out[1])));
        }
    }
    if node.input(3).is_some() && input_shape(g, node, 3)? != out {
        return Err(err(node, "the residual's shape differs from the output's"));
    }
    Ok(out.to_vec())
}

/// `Concat`'s output shape: every input of `x`'s rank and shape off the axis.
fn concat_shape(g: &Graph, node: &Node, a: i64, x: &[usize]) -> Result<Vec<usize>> {
    let ax = axis(a, x.len()).ok_or_else(|| err(node, format!("axis {a} is out of range for rank {}", x.len())))?;
    let mut out = x.to_vec();
    for i in 1..node.inputs.len() {
        let s = input_shape(g, node, i)?;
        if s.len() != x.len() || s.iter().zip(x).enumerate().any(|(k, (a, b))| k != ax && a != b) {
            return Err(err(node, format!("input {i} has shape {s:?}, incompatible with {x:?} on axis {ax}")));
        }
        out[ax] += s[ax];
    }
    Ok(out)
}

/// `Gemm`'s `[M, N]` from 2-D inputs (transposed as the attributes say); C must broadcast to it.
fn gemm_shape(g: &Graph, node: &Node, x: &[usize], trans_a: bool, trans_b: bool) -> Result<Vec<usize>> {
    let y = input_shape(g, node, 1)?;
    let ([m, k], [k2, n]) = match (x, y) {
        ([a0, a1], [b0, b1]) => {
            (if trans_a { [*a1, *a0] } else { [*a0, *a1] }, if trans_b { [*b1, *b0] } else { [*b0, *b1] })
        }
        _ => return Err(err(node, "Gemm needs 2-D inputs")),
    };
    if k != k2 {
        return Err(err(node, format!("inner dimensions differ: {x:?} · {y:?}")));
    }
    if node.input(2).is_some() && broadcast(input_shape(g, node, 2)?, &[m, n]).as_deref() != Some(&[m, n][..]) {
        return Err(err(node, "C does not broadcast to the output"));
    }
    Ok(vec![m, n])
}

/// numpy `matmul` shape rules (rank ≥ 1 each).
pub fn matmul_shape(node: &Node, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        return Err(err(node, "MatMul of a scalar"));
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(err(node, format!("inner dimensions differ: {a:?} · {b:?}")));
    }
    let batch = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])
        .ok_or_else(|| err(node, format!("batch dimensions of {a:?} and {b:?} do not broadcast")))?;
    let mut out = batch;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(out)
}

/// `Resize`'s source coordinate of output index `x` on an axis of `len_in` values scaled
/// by `scale`. As ONNX defines it, the resized length in these formulas is `len_in · scale`
/// (not rounded), which differs from the output length when `scales` was given.
pub fn resize_source(mode: crate::ir::CoordinateMode, x: usize, scale: f64, len_in: usize) -> f64 {
    use crate::ir::CoordinateMode::*;
    let x = x as f64;
    let resized = len_in as f64 * scale;
    match mode {
        HalfPixel => (x + 0.5) / scale - 0.5,
        PytorchHalfPixel if resized > 1.0 => (x + 0.5) / scale - 0.5,
        PytorchHalfPixel => 0.0,
        AlignCorners if resized > 1.0 => x * (len_in as f64 - 1.0) / (resized - 1.0),
        AlignCorners => 0.0,
        Asymmetric => x / scale,
        TfHalfPixelForNearest => (x + 0.5) / scale,
    }
}

/// Nearest-neighbour index for source coordinate `c` on an axis of `len` values.
pub fn resize_nearest(mode: crate::ir::NearestMode, c: f64, len: usize) -> usize {
    use crate::ir::NearestMode::*;
    let i = match mode {
        RoundPreferFloor if c.fract() == 0.5 || c.fract() == -0.5 => c.floor(),
        RoundPreferFloor | RoundPreferCeil => c.round(),
        Floor => c.floor(),
        Ceil => c.ceil(),
    };
    i.clamp(0.0, len as f64 - 1.0) as usize
}

/// Linear interpolation taps for source coordinate `c` on an axis of `len` values:
/// `(i0, i1, weight of i1)`, indices clamped to the edge.
pub fn resize_linear(c: f64, len: usize) -> (usize, usize, f64) {
    let f = c.floor();
    let r = c - f;
    let clamp = |v: f64| v.clamp(0.0, len as f64 - 1.0) as usize;
    (clamp(f), clamp(f + 1.0), r)
}
