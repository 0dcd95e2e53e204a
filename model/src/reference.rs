//! The float64 reference executor: every supported operator in plain loops over NCHW
//! tensors, independent of the kernels and of the planner. Parity is measured against it;
//! the planner also uses it to fold constant subgraphs at plan time.

use kernels::{Activation, ConvKind, ConvParams};

use crate::error::{shape_error, ModelError, Result};
use crate::ir::{Graph, Node, Op};
use crate::shape;
use crate::tensor::{axis, broadcast_strides, strides, DType, Tensor};

/// One activation on one value, in float64 (the kernels' own reference).
pub fn activate(a: Activation, x: f64) -> f64 {
    a.reference(x)
}

fn err(node: &Node, reason: impl Into<String>) -> ModelError {
    shape_error(&node.name, node.op.name(), reason)
}

fn floats<'t>(node: &Node, t: Option<&'t Tensor<f64>>, i: usize) -> Result<&'t [f64]> {
    t.and_then(Tensor::floats).ok_or_else(|| err(node, format!("input {i} must be a float tensor")))
}

/// Runs a specialised graph (shapes known, see [`crate::specialize`]) on `inputs` given in
/// the order of [`Graph::inputs`]; returns the graph outputs.
pub fn run(g: &Graph, inputs: &[Tensor<f64>]) -> Result<Vec<Tensor<f64>>> {
    if inputs.len() != g.inputs.len() {
        return Err(ModelError::Input(format!("the model has {} inputs, {} given", g.inputs.len(), inputs.len())));
    }
    let mut values: Vec<Option<Tensor<f64>>> = vec![None; g.values.len()];
    for (&id, t) in g.constants.iter() {
        values[id] = Some(t.to_f64());
    }
    for (&id, t) in g.inputs.iter().zip(inputs) {
        if g.shape(id).is_some_and(|s| s != t.shape) {
            return Err(ModelError::Input(format!(
                "input `{}` has shape {:?}, the graph was specialised for {:?}",
                g.values[id].name,
                t.shape,
                g.shape(id)
            )));
        }
        values[id] = Some(t.clone());
    }
    let uses = g.use_counts();
    let mut left = uses.clone();
    for node in &g.nodes {
        let ins: Vec<Option<&Tensor<f64>>> = node.inputs.iter().map(|i| i.and_then(|i| values[i].as_ref())).collect();
        let dynamic = node.inputs.iter().flatten().chain(&node.outputs).any(|&v| g.values[v].shape.is_none());
        let outs = if dynamic { eval_on(node, &ins)? } else { eval(g, node, &ins)? };
        for (&id, t) in node.outputs.iter().zip(outs) {
            values[id] = Some(t);
        }
        for &i in node.inputs.iter().flatten() {
            left[i] -= 1;
            if left[i] == 0 && !g.constants.contains_key(&i) && !g.outputs.contains(&i) {
                values[i] = None;
            }
        }
    }
    // Outputs are moved out (cloned only when named again later): a copy of a large output
    // would double the peak.
    g.outputs
        .iter()
        .enumerate()
        .map(|(k, &o)| {
            let t = if g.outputs[k + 1..].contains(&o) { values[o].clone() } else { values[o].take() };
            t.ok_or_else(|| ModelError::Malformed(format!("output `{}` was not computed", g.values[o].name)))
        })
        .collect()
}

/// Inputs at most this long are handed to [`eval_on`]'s node as constants too (what
/// operators read to shape their output: Resize scales, Reshape targets, Slice bounds).
const SMALL: usize = 1 << 12;

/// Evaluates one node on its actual inputs alone, without the graph: shapes come from the
/// inputs, and integer or small inputs serve as the constants that shape the output. For
/// data-dependent shapes and for plans' `Eval` steps.
pub fn eval_on(node: &Node, ins: &[Option<&Tensor<f64>>]) -> Result<Vec<Tensor<f64>>> {
    let mut g = Graph::default();
    let mut ids = Vec::with_capacity(ins.len());
    for (i, t) in ins.iter().enumerate() {
        ids.push(t.map(|t| {
            g.values.push(crate::ir::Value { name: format!("in{i}"), dtype: t.dtype, shape: Some(t.shape.clone()) });
            let id = g.values.len() - 1;
            if t.dtype.is_int() || t.len() <= SMALL {
                g.constants.insert(id, t.to_f32());
            }
            id
        }));
    }
    let local = Node { name: node.name.clone(), op: node.op.clone(), inputs: ids, outputs: node.outputs.clone() };
    eval(&g, &local, ins)
}

/// Evaluates one node on float64 inputs (`None` for omitted optional inputs). The graph
/// supplies constant inputs that shape the output (Reshape targets, Resize scales…).
pub fn eval(g: &Graph, node: &Node, ins: &[Option<&Tensor<f64>>]) -> Result<Vec<Tensor<f64>>> {
    if let Op::Generic(op) = &node.op {
        return crate::portable::eval(node, op, ins);
    }
    let out_shape = shape::infer(g, node)?.remove(0);
    let x = ins.first().copied().flatten().ok_or_else(|| err(node, "input 0 is missing"))?;
    let second = || ins.get(1).copied().flatten().ok_or_else(|| err(node, "input 1 is missing"));
    let floats_out = |v: Vec<f64>| Tensor::float(out_shape.clone(), v);
    let y = match &node.op {
        Op::Conv(c) => floats_out(conv_node(node, c, x, ins)?),
        Op::BatchNorm { epsilon } => floats_out(batch_norm(node, *epsilon as f64, x, ins)?),
        Op::Binary(op) => binary(node, *op, x, second()?, out_shape)?,
        Op::Activation(Activation::Identity) => x.clone(),
        Op::Activation(a) => match x.ints() {
            // Relu and Clip on integer tensors: exact in float64, back to the type.
            Some(v) => {
                Tensor::int(out_shape, x.dtype, v.iter().map(|&q| x.dtype.from_float(activate(*a, q as f64))).collect())
            }
            None => floats_out(floats(node, Some(x), 0)?.iter().map(|&v| activate(*a, v)).collect()),
        },
        Op::GlobalAveragePool => {
            let inner: usize = x.shape[2..].iter().product();
            let xs = floats(node, Some(x), 0)?;
            floats_out(xs.chunks(inner.max(1)).map(|c| c.iter().sum::<f64>() / inner as f64).collect())
        }
        Op::MaxPool(_) if x.dtype.is_int() => {
            let wide = crate::portable::cast(x, crate::tensor::DType::F32);
            let y = eval(g, node, &[Some(&wide)])?.remove(0);
            crate::portable::cast(&y, x.dtype)
        }
        Op::MaxPool(p) => floats_out(pool(node, p, None, x)?),
        Op::AveragePool(p, include_pad) => floats_out(pool(node, p, Some(*include_pad), x)?),
        Op::Concat(a) => concat(node, *a, x, ins, out_shape)?,
        Op::Reshape(_) | Op::Flatten(_) => Tensor { shape: out_shape, ..x.clone() },
        Op::Shape(start, end) => shape_of(x, *start, *end, out_shape),
        Op::Slice => slice(g, node, x, out_shape)?,
        Op::Cast(to) => crate::portable::cast(x, *to),
        Op::Generic(_) => unreachable!("handled above"),
        Op::MatMul => floats_out(matmul(node, x, second()?, &out_shape)?),
        Op::Gemm { alpha, beta, trans_a, trans_b } => {
            let (alpha, beta) = (*alpha as f64, *beta as f64);
            floats_out(gemm(node, (alpha, beta), (*trans_a, *trans_b), x, ins, &out_shape)?)
        }
        Op::Softmax { axis: a, coerce_2d } => floats_out(softmax(node, *a, *coerce_2d, x)?),
    };
    Ok(vec![y])
}

/// `Conv` with its fused bias, residual and activation.
fn conv_node(node: &Node, c: &crate::ir::Conv, x: &Tensor<f64>, ins: &[Option<&Tensor<f64>>]) -> Result<Vec<f64>> {
    let w = floats(node, ins.get(1).copied().flatten(), 1)?;
    let (p, out) = shape::conv_params(node, c, &x.shape, &ins[1].map(|t| t.shape.clone()).unwrap_or_default())?;
    let mut y = conv(&p, floats(node, Some(x), 0)?, &x.shape, w, out);
    let hw = out[2] * out[3];
    if let Some(b) = ins.get(2).copied().flatten() {
        let b = floats(node, Some(b), 2)?;
        for (i, v) in y.iter_mut().enumerate() {
            *v += b[(i / hw) % out[1]];
        }
    }
    if let Some(r) = ins.get(3).copied().flatten() {
        for (v, r) in y.iter_mut().zip(floats(node, Some(r), 3)?) {
            *v += r;
        }
    }
    y.iter_mut().for_each(|v| *v = activate(c.activation, *v));
    Ok(y)
}

/// `BatchNormalization` in inference form, per channel (axis 1).
fn batch_norm(node: &Node, epsilon: f64, x: &Tensor<f64>, ins: &[Option<&Tensor<f64>>]) -> Result<Vec<f64>> {
    let p: Vec<&[f64]> = (1..5).map(|i| floats(node, ins.get(i).copied().flatten(), i)).collect::<Result<_>>()?;
    let c = x.shape[1];
    let inner: usize = x.shape[2..].iter().product();
    let xs = floats(node, Some(x), 0)?;
    Ok(xs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = (i / inner) % c;
            (v - p[2][k]) / (p[3][k] + epsilon).sqrt() * p[0][k] + p[1][k]
        })
        .collect())
}

/// For every element of `out_shape` in order, its offset in an operand with broadcast strides `s`.
fn broadcast_offsets(out_shape: &[usize], s: &[usize]) -> Vec<usize> {
    let n: usize = out_shape.iter().product();
    (0..n)
        .map(|i| {
            let mut rem = i;
            let mut off = 0;
            for (&len, &st) in out_shape.iter().zip(s).rev() {
                off += (rem % len) * st;
                rem /= len;
            }
            off
        })
        .collect()
}

/// A broadcasting binary operation, on floats or (wrapping) on integers.
fn binary(
    node: &Node,
    op: crate::ir::Binary,
    x: &Tensor<f64>,
    y: &Tensor<f64>,
    out_shape: Vec<usize>,
) -> Result<Tensor<f64>> {
    let oa = broadcast_offsets(&out_shape, &broadcast_strides(&x.shape, &out_shape));
    let ob = broadcast_offsets(&out_shape, &broadcast_strides(&y.shape, &out_shape));
    match (&x.data, &y.data) {
        (crate::tensor::Data::Float(a), crate::tensor::Data::Float(b)) => {
            Ok(Tensor::float(out_shape, oa.iter().zip(&ob).map(|(&i, &j)| op.apply(a[i], b[j])).collect()))
        }
        (crate::tensor::Data::Int(a), crate::tensor::Data::Int(b)) => {
            if op == crate::ir::Binary::Div && ob.iter().any(|&j| b[j] == 0) {
                return Err(err(node, "integer division by zero"));
            }
            let v = oa
                .iter()
                .zip(&ob)
                .map(|(&i, &j)| match op {
                    crate::ir::Binary::Add => a[i].wrapping_add(b[j]),
                    crate::ir::Binary::Sub => a[i].wrapping_sub(b[j]),
                    crate::ir::Binary::Mul => a[i].wrapping_mul(b[j]),
                    crate::ir::Binary::Div => a[i].wrapping_div(b[j]),
                })
                .collect();
            Ok(Tensor::int(out_shape, x.dtype, v))
        }
        _ => Err(err(node, "operands of different types")),
    }
}

/// `MaxPool` (`average` `None`) or `AveragePool` (`Some(count_include_pad)`) of an NCHW float tensor.
fn pool(node: &Node, p: &crate::ir::Pool, average: Option<bool>, x: &Tensor<f64>) -> Result<Vec<f64>> {
    let [n, c, h, w] = shape::rank4(node, &x.shape, "the input")?;
    let (pads, [oh, ow]) = shape::pool_geometry(node, p, [h, w])?;
    let xs = floats(node, Some(x), 0)?;
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for plane in xs.chunks(h * w).take(n * c) {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut best, mut sum, mut count, mut padded) = (f64::NEG_INFINITY, 0.0, 0usize, 0usize);
                for ky in 0..p.kernel[0] {
                    for kx in 0..p.kernel[1] {
                        let iy = (oy * p.strides[0] + ky * p.dilations[0]) as isize - pads[0] as isize;
                        let ix = (ox * p.strides[1] + kx * p.dilations[1]) as isize - pads[1] as isize;
                        let inside_pads = iy < (h + pads[2]) as isize && ix < (w + pads[3]) as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            let v = plane[iy as usize * w + ix as usize];
                            best = best.max(v);
                            sum += v;
                            count += 1;
                        } else if inside_pads {
                            padded += 1;
                        }
                    }
                }
                y.push(match average {
                    Some(true) => sum / (count + padded) as f64,
                    Some(false) => sum / count.max(1) as f64,
                    None => best,
                });
            }
        }
    }
    Ok(y)
}

/// `Concat` of float or integer tensors along axis `a`.
fn concat(
    node: &Node,
    a: i64,
    x: &Tensor<f64>,
    ins: &[Option<&Tensor<f64>>],
    out_shape: Vec<usize>,
) -> Result<Tensor<f64>> {
    let ax = axis(a, x.shape.len()).ok_or_else(|| err(node, "axis out of range"))?;
    let outer: usize = x.shape[..ax].iter().product();
    let parts: Vec<&Tensor<f64>> =
        ins.iter().map(|t| t.ok_or_else(|| err(node, "a missing input"))).collect::<Result<_>>()?;
    let chunk = |t: &Tensor<f64>| t.shape[ax..].iter().product::<usize>();
    match &x.data {
        crate::tensor::Data::Float(_) => {
            let mut y = Vec::with_capacity(out_shape.iter().product());
            for o in 0..outer {
                for t in &parts {
                    let k = chunk(t);
                    y.extend_from_slice(&floats(node, Some(t), 0)?[o * k..(o + 1) * k]);
                }
            }
            Ok(Tensor::float(out_shape, y))
        }
        crate::tensor::Data::Int(_) => {
            let mut y = Vec::new();
            for o in 0..outer {
                for t in &parts {
                    let k = chunk(t);
                    y.extend_from_slice(&t.ints().ok_or_else(|| err(node, "mixed types"))?[o * k..(o + 1) * k]);
                }
            }
            Ok(Tensor::int(out_shape, x.dtype, y))
        }
    }
}

/// `Shape` with its `start` and `end` (clamped as ONNX says).
fn shape_of(x: &Tensor<f64>, start: i64, end: Option<i64>, out_shape: Vec<usize>) -> Tensor<f64> {
    let r = x.shape.len() as i64;
    let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (start, end) = (fix(start), fix(end.unwrap_or(r)));
    let dims = x.shape[start..end.max(start)].iter().map(|&d| d as i64).collect();
    Tensor::int(out_shape, DType::I64, dims)
}

/// `Slice`, its bounds read from the graph's constants.
fn slice(g: &Graph, node: &Node, x: &Tensor<f64>, out_shape: Vec<usize>) -> Result<Tensor<f64>> {
    let ranges = shape::slice_ranges(g, node, &x.shape)?;
    let st = strides(&x.shape);
    let n: usize = out_shape.iter().product();
    let offsets: Vec<usize> = (0..n)
        .map(|i| {
            let mut rem = i;
            let mut off = 0i64;
            for (d, &(start, step, count)) in ranges.iter().enumerate().rev() {
                off += (start + (rem % count) as i64 * step) * st[d] as i64;
                rem /= count;
            }
            off as usize
        })
        .collect();
    Ok(match &x.data {
        crate::tensor::Data::Float(v) => Tensor::float(out_shape, offsets.iter().map(|&o| v[o]).collect()),
        crate::tensor::Data::Int(v) => Tensor::int(out_shape, x.dtype, offsets.iter().map(|&o| v[o]).collect()),
    })
}

/// `Gemm`: `alpha·op(A)·op(B) + beta·C`, C broadcast.
fn gemm(
    node: &Node,
    (alpha, beta): (f64, f64),
    (trans_a, trans_b): (bool, bool),
    x: &Tensor<f64>,
    ins: &[Option<&Tensor<f64>>],
    out_shape: &[usize],
) -> Result<Vec<f64>> {
    let (a, b) = (floats(node, Some(x), 0)?, floats(node, ins.get(1).copied().flatten(), 1)?);
    let (m, n) = (out_shape[0], out_shape[1]);
    let k = if trans_a { x.shape[0] } else { x.shape[1] };
    let at = |i: usize, p: usize| if trans_a { a[p * m + i] } else { a[i * k + p] };
    let bt = |p: usize, j: usize| if trans_b { b[j * k + p] } else { b[p * n + j] };
    let c = match ins.get(2).copied().flatten() {
        Some(c) => Some((floats(node, Some(c), 2)?, broadcast_strides(&c.shape, out_shape))),
        None => None,
    };
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let s = (0..k).fold(0.0, |s, p| s + at(i, p) * bt(p, j));
            let bias = c.as_ref().map_or(0.0, |(c, cs)| c[i * cs[0] + j * cs[1]]);
            out[i * n + j] = alpha * s + beta * bias;
        }
    }
    Ok(out)
}

/// `Softmax` along `axis` (opset < 13: over everything from `axis` on, `coerce_2d`).
fn softmax(node: &Node, a: i64, coerce_2d: bool, x: &Tensor<f64>) -> Result<Vec<f64>> {
    let r = x.shape.len();
    let ax = axis(a, r).ok_or_else(|| err(node, format!("axis {a} is out of range")))?;
    let xs = floats(node, Some(x), 0)?;
    let (len, inner) = if coerce_2d {
        (x.shape[ax..].iter().product::<usize>(), 1)
    } else {
        (x.shape[ax], x.shape[ax + 1..].iter().product())
    };
    let mut y = xs.to_vec();
    for block in y.chunks_mut((len * inner).max(1)) {
        for i in 0..inner {
            let max = (0..len).map(|k| block[k * inner + i]).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..len).map(|k| (block[k * inner + i] - max).exp()).sum();
            for k in 0..len {
                block[k * inner + i] = (block[k * inner + i] - max).exp() / sum;
            }
        }
    }
    Ok(y)
}

/// Direct convolution in NCHW. Both kinds visit the same (grid pixel, tap) pairs: `Conv`
/// iterates its output and reads input `o·s − pad + k·d`; `ConvTranspose` iterates its input
/// and writes output `i·s − pad + k·d`.
pub(crate) fn conv(p: &ConvParams, x: &[f64], xs: &[usize], w: &[f64], out: [usize; 4]) -> Vec<f64> {
    let [n, _, h, wd] = [xs[0], xs[1], xs[2], xs[3]];
    let [_, co, oh, ow] = out;
    let (cig, cog) = (p.c_in / p.groups, p.c_out / p.groups);
    let [kh, kw] = p.kernel;
    let forward = p.kind == ConvKind::Forward;
    // The grid iterated and the grid addressed through the taps.
    let (grid, target) = if forward { ([oh, ow], [h, wd]) } else { ([h, wd], [oh, ow]) };
    let mut y = vec![0.0; n * co * oh * ow];
    for b in 0..n {
        for g in 0..p.groups {
            for gy in 0..grid[0] {
                for gx in 0..grid[1] {
                    for ky in 0..kh {
                        let ty = (gy * p.strides[0] + ky * p.dilations[0]) as isize - p.pads[0] as isize;
                        if ty < 0 || ty as usize >= target[0] {
                            continue;
                        }
                        for kx in 0..kw {
                            let tx = (gx * p.strides[1] + kx * p.dilations[1]) as isize - p.pads[1] as isize;
                            if tx < 0 || tx as usize >= target[1] {
                                continue;
                            }
                            let (t_pix, g_pix) = (ty as usize * target[1] + tx as usize, gy * grid[1] + gx);
                            let (in_pix, out_pix) = if forward { (t_pix, g_pix) } else { (g_pix, t_pix) };
                            for i in 0..cig {
                                let ic = g * cig + i;
                                let v = x[(b * p.c_in + ic) * h * wd + in_pix];
                                for o in 0..cog {
                                    let oc = g * cog + o;
                                    let wi = if forward { (oc * cig + i) * kh * kw } else { (ic * cog + o) * kh * kw };
                                    y[(b * co + oc) * oh * ow + out_pix] += v * w[wi + ky * kw + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// numpy `matmul` in float64.
pub(crate) fn matmul(node: &Node, a: &Tensor<f64>, b: &Tensor<f64>, out: &[usize]) -> Result<Vec<f64>> {
    let (av, bv) = (floats(node, Some(a), 0)?, floats(node, Some(b), 1)?);
    let a2: Vec<usize> = if a.shape.len() == 1 { vec![1, a.shape[0]] } else { a.shape.clone() };
    let b2: Vec<usize> = if b.shape.len() == 1 { vec![b.shape[0], 1] } else { b.shape.clone() };
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let batch = crate::tensor::broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2]).unwrap_or_default();
    let sa = broadcast_strides(&a2[..a2.len() - 2], &batch);
    let sb = broadcast_strides(&b2[..b2.len() - 2], &batch);
    let count: usize = batch.iter().product();
    let mut y = Vec::with_capacity(out.iter().product());
    for bi in 0..count {
        let (mut rem, mut oa, mut ob) = (bi, 0, 0);
        for d in (0..batch.len()).rev() {
            let i = rem % batch[d];
            rem /= batch[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += av[(oa * m + i) * k + p] * bv[(ob * k + p) * n + j];
                }
                y.push(s);
            }
        }
    }
    Ok(y)
}
