//! Graph rewrites on a specialised graph, each keeping the outputs equal (tested against the
//! reference): BatchNorm and constant affine ops folded into convolutions, `x·HardSigmoid(x)`
//! and `x·Clip(x+3, 0, 6)/6` recognised as HardSwish, parallel branches of one input summed
//! into one convolution (`reparam.rs`), residual adds and activations fused into convolution
//! epilogues, channel shuffles as one gather, identities bypassed, dead nodes
//! and constants removed.

use kernels::Activation;

use crate::ir::{Binary, Graph, Node, Op, ValueId};
use crate::tensor::Tensor;

mod group_norm;
pub(crate) use group_norm::params as norm_params;
mod reparam;

/// What [`optimize`] did, by rewrite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites {
    /// BatchNormalization folded into the preceding convolution.
    pub batchnorm_folded: usize,
    /// Constant Mul/Add/Sub/Div folded into the preceding convolution, or into the scale
    /// and bias of the preceding group (or instance) normalization.
    pub affine_folded: usize,
    /// Constant scale/shift folded into the following padding-free convolution.
    pub affine_folded_forward: usize,
    /// HardSwish patterns recognised.
    pub hardswish: usize,
    /// `x·Sigmoid(x)` recognised as SiLU, and `x·Tanh(Softplus(x))` as Mish.
    pub gated_activations: usize,
    /// `x/2·(1 + Erf(x/√2))` (in the orders exporters write it) recognised as GELU.
    pub gelu: usize,
    /// `Reshape → InstanceNormalization → Reshape` (PyTorch's export of `nn.GroupNorm`)
    /// recognised as one `GroupNormalization`.
    pub group_norms: usize,
    /// Sums of branches of one input (convolutions, scales and shifts of the input, the input
    /// itself) merged into one convolution: RepVGG, MobileOne and FastViT blocks in their
    /// training form.
    pub branches_merged: usize,
    /// Residual adds fused into convolutions.
    pub residual_fused: usize,
    /// Activations fused into convolutions.
    pub activation_fused: usize,
    /// `x + x·s` (a gate `s` broadcast over `x`) computed as `x·(1 + s)`.
    pub gated_residual: usize,
    /// Identity nodes, and Slices and Pads that keep everything, bypassed.
    pub identity_removed: usize,
    /// Zero `Pad`s of the spatial axes taken into the pads of the convolutions they feed.
    pub pads_folded: usize,
    /// Nodes removed because nothing used their outputs.
    pub dead_removed: usize,
    /// Convolutions that lost kernel taps reading only padding (dilated ones on small maps).
    pub taps_trimmed: usize,
    /// `Reshape → Transpose → Reshape` channel shuffles (ShuffleNet's) as one channel `Gather`.
    pub channel_shuffles: usize,
    /// LayerNormalization written out (`ReduceMean`, `Sub`, `Pow`, `ReduceMean`, `Add`,
    /// `Sqrt`, `Div`, then a scale and a shift) as one `LayerNormalization`.
    pub layer_norms: usize,
}

/// Applies every rewrite until none applies.
pub fn optimize(g: &mut Graph) -> Rewrites {
    let mut r = Rewrites::default();
    loop {
        let before = r.clone();
        r.identity_removed += bypass_identities(g);
        r.pads_folded += repeat(g, fold_pad_into_conv);
        r.taps_trimmed += repeat(g, trim_dead_taps);
        r.channel_shuffles += repeat(g, channel_shuffle);
        r.group_norms += repeat(g, group_norm::group_norm);
        r.batchnorm_folded += repeat(g, fold_batchnorm);
        r.affine_folded += repeat(g, fold_affine_into_conv);
        r.hardswish += repeat(g, hardswish);
        r.gated_activations += repeat(g, self_gated);
        r.gelu += repeat(g, gelu);
        r.layer_norms += repeat(g, layer_norm);
        r.affine_folded_forward += repeat(g, fold_affine_forward);
        r.gated_residual += repeat(g, gated_residual);
        r.branches_merged += repeat(g, reparam::merge_branches);
        r.residual_fused += repeat(g, fuse_residual);
        r.activation_fused += repeat(g, fuse_activation);
        r.dead_removed += remove_dead(g);
        if r == before {
            return r;
        }
    }
}

/// Applies `rewrite` (which rewrites one match and says whether it found one) until it
/// finds none; returns how many it applied.
fn repeat(g: &mut Graph, rewrite: fn(&mut Graph) -> bool) -> usize {
    let mut count = 0;
    while rewrite(g) {
        count += 1;
    }
    count
}

/// Per-node index of the single consumer of each value (None: zero or several, or a graph
/// output).
fn sole_consumer(g: &Graph) -> Vec<Option<usize>> {
    let uses = g.use_counts();
    let mut c = vec![None; g.values.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in n.inputs.iter().flatten() {
            if uses[v] == 1 {
                c[v] = Some(i);
            }
        }
    }
    c
}

/// Replaces every use of `from` by `to`.
fn replace_uses(g: &mut Graph, from: ValueId, to: ValueId) {
    for n in &mut g.nodes {
        for i in n.inputs.iter_mut().flatten() {
            if *i == from {
                *i = to;
            }
        }
    }
}

fn bypass_identities(g: &mut Graph) -> usize {
    let mut count = 0;
    let mut i = 0;
    while i < g.nodes.len() {
        let n = &g.nodes[i];
        if is_identity(g, n) {
            let (src, dst) = (n.inputs[0].expect("an identity has its input"), n.outputs[0]);
            let src_is_io = g.inputs.contains(&src) || g.outputs.contains(&src) || g.constants.contains_key(&src);
            if g.outputs.contains(&dst) {
                if src_is_io {
                    i += 1;
                    continue;
                }
                // Keep the output's name on the value that now is the output.
                g.values[src].name = g.values[dst].name.clone();
                for o in g.outputs.iter_mut().filter(|o| **o == dst) {
                    *o = src;
                }
            }
            replace_uses(g, dst, src);
            g.nodes.remove(i);
            count += 1;
            continue;
        }
        i += 1;
    }
    count
}

/// `Reshape([N, C, H, W] → [N, g, C/g, H, W]) → Transpose(0, 2, 1, 3, 4) → Reshape([N, C, H,
/// W])` (ShuffleNet's channel shuffle, the inner values used only there) as one `Gather` of
/// channels along axis 1: output channel `i·g + j` is input channel `j·C/g + i`. On NHWC
/// activations that is one pass over memory instead of two relayouts and three copies.
fn channel_shuffle(g: &mut Graph) -> bool {
    use crate::portable::Generic;
    let producers = g.producers();
    let consumers = sole_consumer(g);
    let reshape_of = |v: ValueId| producers[v].filter(|&p| matches!(g.nodes[p].op, Op::Reshape(_)));
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if !matches!(n.op, Op::Reshape(_)) {
            continue;
        }
        let Some(t) = producers[n.inputs[0].expect("required")] else { continue };
        let tn = &g.nodes[t];
        if tn.op != Op::Generic(Generic::Transpose(Some(vec![0, 2, 1, 3, 4]))) || consumers[tn.outputs[0]] != Some(i) {
            continue;
        }
        let Some(r) = reshape_of(tn.inputs[0].expect("required")) else { continue };
        if consumers[g.nodes[r].outputs[0]] != Some(t) {
            continue;
        }
        let x = g.nodes[r].inputs[0].expect("required");
        let (Some(xs), Some(split), Some(out)) = (g.shape(x), g.shape(g.nodes[r].outputs[0]), g.shape(n.outputs[0]))
        else {
            continue;
        };
        let [nb, c, h, w] = *xs else { continue };
        let [sn, groups, per, sh, sw] = *split else { continue };
        if out != xs || [sn, sh, sw] != [nb, h, w] || groups * per != c || g.constant(x).is_some() {
            continue;
        }
        let indices: Vec<i64> = (0..c).map(|k| ((k % groups) * per + k / groups) as i64).collect();
        let name = format!("{}.shuffle", g.nodes[i].name);
        let idx = g.add_constant(name, Tensor::int(vec![c], crate::tensor::DType::I64, indices));
        g.nodes[i].op = Op::Generic(Generic::Gather(1));
        g.nodes[i].inputs = vec![Some(x), Some(idx)];
        return true;
    }
    false
}

/// Whether `n` passes its first input through unchanged: an `Identity`, or a `Slice` whose
/// constant bounds keep every element in order (exporters write `x[:, :c]` even when `x`
/// has exactly `c` channels).
fn is_identity(g: &Graph, n: &Node) -> bool {
    match n.op {
        Op::Activation(Activation::Identity) => true,
        Op::Slice => {
            let Some(shape) = n.input(0).and_then(|x| g.shape(x)) else { return false };
            crate::shape::slice_ranges(g, n, shape).is_ok_and(|r| r.iter().zip(shape).all(|(&r, &d)| r == (0, 1, d)))
        }
        // Swin's window padding, computed from the shapes, is nothing on sizes the window divides.
        Op::Generic(crate::portable::Generic::Pad { .. }) => {
            let Some(shape) = n.input(0).and_then(|x| g.shape(x)) else { return false };
            crate::shape::pad_amounts(g, n, shape.len()).is_ok_and(|p| p.iter().all(|&p| p == (0, 0)))
        }
        _ => false,
    }
}

/// A constant-mode `Pad` by zeros of the spatial axes of a 4-D value, non-negative, whose
/// only reader is a convolution's data input (TensorFlow-style "same" padding as exporters
/// write it, timm's `Conv2dSame`): the convolution pads by that much more and reads the
/// unpadded value.
fn fold_pad_into_conv(g: &mut Graph) -> bool {
    use crate::portable::{Generic, PadMode};
    let consumers = sole_consumer(g);
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let Op::Generic(Generic::Pad { mode: PadMode::Constant, .. }) = n.op else { continue };
        let (Some(x), y) = (n.input(0), n.outputs[0]) else { continue };
        let Some(c) = consumers[y] else { continue };
        let Op::Conv(conv) = &g.nodes[c].op else { continue };
        let foldable = !conv.transposed
            && conv.auto_pad == crate::ir::AutoPad::NotSet
            && g.nodes[c].input(0) == Some(y)
            && !g.nodes[c].inputs.iter().skip(1).flatten().any(|&v| v == y);
        let Some(shape) = g.shape(x).filter(|s| s.len() == 4) else { continue };
        let (Ok(p), Ok(fill)) = (crate::shape::pad_amounts(g, n, 4), crate::shape::pad_fill(g, n)) else { continue };
        let spatial = p[..2].iter().all(|&a| a == (0, 0)) && p[2..].iter().all(|&(b, e)| b >= 0 && e >= 0);
        if !foldable || !spatial || fill != 0.0 || shape.contains(&0) {
            continue;
        }
        let [top, left, bottom, right] = [p[2].0, p[3].0, p[2].1, p[3].1].map(|v| v as usize);
        let Op::Conv(conv) = &mut g.nodes[c].op else { unreachable!("checked") };
        let add = [top, left, bottom, right];
        for (k, a) in add.iter().enumerate() {
            conv.pads[k] += a;
        }
        g.nodes[c].inputs[0] = Some(x);
        g.nodes.remove(i);
        return true;
    }
    false
}

/// Drops the kernel taps of a convolution that read only padding at every output pixel:
/// the weights lose those rows and columns of taps and the pads shrink by what they spanned,
/// so every output reads the same inputs and the product skips the zeros. DeepLab's ASPP
/// 3×3 convolutions at dilations 24 and 36 on a 16×16 map become 1×1 convolutions.
fn trim_dead_taps(g: &mut Graph) -> bool {
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let Op::Conv(c) = &n.op else { continue };
        let (Some(x), Some(wid)) = (n.input(0), n.input(1)) else { continue };
        let (Some(xs), Some(w)) = (g.shape(x), g.constant(wid)) else { continue };
        let Some(wf) = w.floats() else { continue };
        if c.transposed || xs.len() != 4 || w.shape.len() != 4 {
            continue;
        }
        let Ok((p, out)) = crate::shape::conv_params(n, c, xs, &w.shape) else { continue };
        // Per spatial axis: the first and last taps some output reads inside the input,
        // and the pads without the taps before and after them.
        let live = |ax: usize| -> Option<(usize, usize, [usize; 2])> {
            let (k, s, d, pb, pe) = (p.kernel[ax], p.strides[ax], p.dilations[ax], p.pads[ax], p.pads[ax + 2]);
            let inside =
                |t: usize| (0..out[2 + ax]).any(|y| (y * s + t * d).checked_sub(pb).is_some_and(|i| i < xs[2 + ax]));
            let first = (0..k).find(|&t| inside(t))?;
            let last = (0..k).rev().find(|&t| inside(t))?;
            Some((first, last, [pb.checked_sub(first * d)?, pe.checked_sub((k - 1 - last) * d)?]))
        };
        let (Some((r0, r1, rp)), Some((c0, c1, cp))) = (live(0), live(1)) else { continue };
        let [kh, kw] = p.kernel;
        if (r0, r1, c0, c1) == (0, kh - 1, 0, kw - 1) {
            continue;
        }
        let (nh, nw) = (r1 - r0 + 1, c1 - c0 + 1);
        let trimmed: Vec<f32> = wf
            .chunks_exact(kh * kw)
            .flat_map(|taps| (r0..=r1).flat_map(move |r| taps[r * kw + c0..=r * kw + c1].iter().copied()))
            .collect();
        let shape = vec![w.shape[0], w.shape[1], nh, nw];
        let mut conv = c.clone();
        conv.kernel = Some([nh, nw]);
        conv.pads = [rp[0], cp[0], rp[1], cp[1]];
        conv.auto_pad = crate::ir::AutoPad::NotSet;
        let name = format!("{}.trimmed_w", n.name);
        let new_w = g.add_constant(name, Tensor::float(shape, trimmed));
        g.nodes[i].op = Op::Conv(conv);
        g.nodes[i].inputs[1] = Some(new_w);
        return true;
    }
    false
}

/// The convolution producing `v` (`producers` and `consumers` from [`Graph::producers`] and
/// [`sole_consumer`]) if it has no fused epilogue yet, `v` has no other use, and its weights
/// (and bias) are constants.
fn plain_conv_producer(
    g: &Graph,
    producers: &[Option<usize>],
    consumers: &[Option<usize>],
    v: ValueId,
) -> Option<usize> {
    let p = producers[v]?;
    let n = &g.nodes[p];
    match &n.op {
        Op::Conv(c) if c.activation == Activation::Identity && !c.residual && consumers[v].is_some() => {
            let consts = g.constant(n.input(1)?).is_some() && n.input(2).is_none_or(|b| g.constant(b).is_some());
            consts.then_some(p)
        }
        _ => None,
    }
}

/// Maps a weight's flat index to its output channel.
type ChannelOf = Box<dyn Fn(usize) -> usize>;

/// Output-channel count and a function giving the output channel of weight index `i`.
fn out_channel_of(g: &Graph, conv: &Node) -> Option<(usize, ChannelOf)> {
    let Op::Conv(c) = &conv.op else { return None };
    let w = g.shape(conv.input(1)?)?.to_vec();
    let [w0, w1, kh, kw] = <[usize; 4]>::try_from(w).ok()?;
    let taps = kh * kw;
    if c.transposed {
        let groups = c.groups;
        let per_group_in = w0 / groups;
        Some((w1 * groups, Box::new(move |i| (i / (w1 * taps)) / per_group_in * w1 + (i / taps) % w1)))
    } else {
        Some((w0, Box::new(move |i| i / (w1 * taps))))
    }
}

/// Scales a convolution's weights per output channel by `scale` and maps its bias
/// `b → b·scale + shift` (creating the bias if needed). Returns false if the convolution
/// does not have that many output channels.
fn rescale_conv(g: &mut Graph, p: usize, scale: &[f32], shift: &[f32]) -> bool {
    let Some((c_out, chan)) = out_channel_of(g, &g.nodes[p]) else { return false };
    let expand = |v: &[f32]| if v.len() == 1 { vec![v[0]; c_out] } else { v.to_vec() };
    let (scale, shift) = (expand(scale), expand(shift));
    if scale.len() != c_out || shift.len() != c_out {
        return false;
    }
    let wid = g.nodes[p].input(1).expect("checked");
    let w = g.constant(wid).and_then(Tensor::floats).expect("checked").to_vec();
    let w: Vec<f32> = w.iter().enumerate().map(|(i, &v)| v * scale[chan(i)]).collect();
    let wshape = g.shape(wid).expect("constant").to_vec();
    let name = format!("{}.folded_w", g.nodes[p].name);
    let new_w = g.add_constant(name, Tensor::float(wshape, w));
    let b: Vec<f32> = match g.nodes[p].input(2) {
        Some(b) => g.constant(b).and_then(Tensor::floats).expect("checked").to_vec(),
        None => vec![0.0; c_out],
    };
    let b: Vec<f32> = b.iter().zip(&scale).zip(&shift).map(|((&b, &s), &t)| b * s + t).collect();
    let name = format!("{}.folded_b", g.nodes[p].name);
    let new_b = g.add_constant(name, Tensor::float(vec![c_out], b));
    let n = &mut g.nodes[p];
    n.inputs.resize(3, None);
    n.inputs[1] = Some(new_w);
    n.inputs[2] = Some(new_b);
    true
}

/// Moves the output of node `from` (a fused-away node) onto the convolution `p`: `p`
/// now produces `from`'s output.
fn absorb(g: &mut Graph, p: usize, from: usize) {
    let out = g.nodes[from].outputs[0];
    g.nodes[p].outputs[0] = out;
    g.nodes.remove(from);
}

/// An inference `BatchNormalization` with constant parameters as `scale·x + shift` per channel.
fn batchnorm_affine(g: &Graph, n: &Node, epsilon: f32) -> Option<(Vec<f32>, Vec<f32>)> {
    let params: Vec<Vec<f32>> = (1..5)
        .map(|k| n.input(k).and_then(|v| g.constant(v)).and_then(Tensor::floats).map(<[f32]>::to_vec))
        .collect::<Option<_>>()?;
    let scale: Vec<f32> = params[0]
        .iter()
        .zip(&params[3])
        .map(|(&s, &v)| (s as f64 / (v as f64 + epsilon as f64).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = params[1].iter().zip(&params[2]).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
    Some((scale, shift))
}

fn fold_batchnorm(g: &mut Graph) -> bool {
    let consumers = sole_consumer(g);
    let producers = g.producers();
    for i in 0..g.nodes.len() {
        let Op::BatchNorm { epsilon } = g.nodes[i].op else { continue };
        let n = &g.nodes[i];
        let (Some((scale, shift)), Some(p)) = (
            batchnorm_affine(g, n, epsilon),
            plain_conv_producer(g, &producers, &consumers, n.inputs[0].expect("required")),
        ) else {
            continue;
        };
        if rescale_conv(g, p, &scale, &shift) {
            absorb(g, p, i);
            return true;
        }
    }
    false
}

/// The constant operand of a binary node and the other operand, if one is a float
/// constant that is one value, or one per channel of the other operand (varying only along
/// its axis 1 once broadcast: `[C, 1, 1]` or `[1, C, 1, 1]` for an NCHW value, `[C, 1]` for
/// an NCL one).
fn const_operand(g: &Graph, n: &Node) -> Option<(ValueId, Vec<f32>, bool)> {
    let (a, b) = (n.input(0)?, n.input(1)?);
    let per_channel = |t: &Tensor, other: ValueId| {
        let (s, rank) = (&t.shape, g.shape(other).map_or(0, <[usize]>::len));
        let along_channels = s.len() <= rank && s.iter().enumerate().all(|(i, &d)| d == 1 || i + rank - s.len() == 1);
        (t.len() == 1 || along_channels).then(|| t.floats().map(<[f32]>::to_vec)).flatten()
    };
    if let Some(c) = g.constant(b).and_then(|t| per_channel(t, a)) {
        return Some((a, c, false));
    }
    g.constant(a).and_then(|t| per_channel(t, b)).map(|c| (b, c, true))
}

/// `op` with the constant `c` (first operand if `const_first`) as `scale·x + shift`.
fn affine_of(op: Binary, c: Vec<f32>, const_first: bool) -> Option<(Vec<f32>, Vec<f32>)> {
    let ones = vec![1.0; c.len()];
    let zeros = vec![0.0; c.len()];
    Some(match (op, const_first) {
        (Binary::Mul, _) => (c, zeros),
        (Binary::Add, _) => (ones, c),
        (Binary::Sub, false) => (ones, c.iter().map(|v| -v).collect()),
        (Binary::Div, false) => (c.iter().map(|v| 1.0 / v).collect(), zeros),
        _ => return None,
    })
}

fn fold_affine_into_conv(g: &mut Graph) -> bool {
    let consumers = sole_consumer(g);
    let producers = g.producers();
    for i in 0..g.nodes.len() {
        let Op::Binary(op) = g.nodes[i].op else { continue };
        let Some((x, c, const_first)) = const_operand(g, &g.nodes[i]) else { continue };
        if g.shape(x) != g.shape(g.nodes[i].outputs[0]) {
            continue;
        }
        let Some((scale, shift)) = affine_of(op, c, const_first) else { continue };
        let folded = match plain_conv_producer(g, &producers, &consumers, x) {
            Some(p) => rescale_conv(g, p, &scale, &shift).then_some(p),
            None => producers[x]
                .filter(|&p| consumers[x] == Some(i) && group_norm::norm_groups(g, p).is_some())
                .filter(|&p| group_norm::rescale_norm(g, p, &scale, &shift)),
        };
        if let Some(p) = folded {
            absorb(g, p, i);
            return true;
        }
    }
    false
}

/// A float scalar constant's value.
fn scalar(g: &Graph, v: Option<ValueId>) -> Option<f32> {
    match g.constant(v?)?.floats()? {
        [x] => Some(*x),
        _ => None,
    }
}

fn hardswish(g: &mut Graph) -> bool {
    let producers = g.producers();
    let consumers = sole_consumer(g);
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        // x * HardSigmoid(x) with alpha 1/6, beta 1/2; or Div(x * Clip(x + 3, 0, 6), 6).
        let (mul, remove) = match n.op {
            Op::Binary(Binary::Div) if scalar(g, n.input(1)) == Some(6.0) => {
                let Some(m) = producers[n.inputs[0].expect("required")] else { continue };
                (m, vec![m])
            }
            Op::Binary(Binary::Mul) => (i, vec![]),
            _ => continue,
        };
        let m = &g.nodes[mul];
        if m.op != Op::Binary(Binary::Mul) || (mul != i && consumers[m.outputs[0]] != Some(i)) {
            continue;
        }
        let (a, b) = (m.inputs[0].expect("required"), m.inputs[1].expect("required"));
        let gate_of = |x: ValueId, gate: ValueId| -> Option<Vec<usize>> {
            let gn = producers[gate]?;
            if consumers[gate] != Some(mul) {
                return None;
            }
            match g.nodes[gn].op {
                Op::Activation(Activation::HardSigmoid { alpha, beta })
                    if mul == i
                        && (alpha - 1.0 / 6.0).abs() < 1e-6
                        && beta == 0.5
                        && g.nodes[gn].inputs[0] == Some(x) =>
                {
                    Some(vec![gn])
                }
                Op::Activation(Activation::Clip { min, max }) if mul != i && min == 0.0 && max == 6.0 => {
                    let add = producers[g.nodes[gn].inputs[0]?]?;
                    let an = &g.nodes[add];
                    let ok = an.op == Op::Binary(Binary::Add)
                        && consumers[an.outputs[0]] == Some(gn)
                        && ((an.inputs[0] == Some(x) && scalar(g, an.input(1)) == Some(3.0))
                            || (an.inputs[1] == Some(x) && scalar(g, an.input(0)) == Some(3.0)));
                    ok.then(|| vec![gn, add])
                }
                _ => None,
            }
        };
        let Some((x, gate_nodes)) = gate_of(a, b).map(|r| (a, r)).or_else(|| gate_of(b, a).map(|r| (b, r))) else {
            continue;
        };
        g.nodes[i].op = Op::Activation(Activation::HardSwish);
        g.nodes[i].inputs = vec![Some(x)];
        let mut dead: Vec<usize> = gate_nodes.into_iter().chain(remove).collect();
        dead.sort_unstable();
        for d in dead.into_iter().rev() {
            g.nodes.remove(d);
        }
        return true;
    }
    false
}

/// `Mul(x, g(x))` where `g` is `Sigmoid` (SiLU) or `Tanh(Softplus(x))` (Mish), the gate's
/// nodes used only there: one activation node on `x` (which then fuses into a convolution
/// or GEMM before it).
fn self_gated(g: &mut Graph) -> bool {
    use crate::portable::{Generic, Unary};
    let producers = g.producers();
    let consumers = sole_consumer(g);
    for i in 0..g.nodes.len() {
        if g.nodes[i].op != Op::Binary(Binary::Mul) {
            continue;
        }
        let (a, b) = (g.nodes[i].inputs[0].expect("required"), g.nodes[i].inputs[1].expect("required"));
        for (x, gate) in [(a, b), (b, a)] {
            let Some(p) = producers[gate] else { continue };
            if consumers[gate] != Some(i) || g.constants.contains_key(&x) {
                continue;
            }
            let found = match &g.nodes[p].op {
                Op::Activation(Activation::Sigmoid) if g.nodes[p].inputs[0] == Some(x) => Some(Activation::Silu),
                Op::Activation(Activation::Tanh) => {
                    let inner = g.nodes[p].inputs[0].expect("required");
                    let sp = producers[inner].filter(|_| consumers[inner] == Some(p));
                    sp.filter(|&q| {
                        g.nodes[q].op == Op::Generic(Generic::Unary(Unary::Softplus)) && g.nodes[q].inputs[0] == Some(x)
                    })
                    .map(|_| Activation::Mish)
                }
                _ => None,
            };
            if let Some(act) = found {
                g.nodes[i].op = Op::Activation(act);
                g.nodes[i].inputs = vec![Some(x)];
                return true; // the gate's nodes are dead now; `remove_dead` drops them
            }
        }
    }
    false
}

/// Whether the float scalar constant `v` is within a few ulp of `want`.
fn near(g: &Graph, v: Option<ValueId>, want: f32) -> bool {
    scalar(g, v).is_some_and(|c| (c - want).abs() <= 4.0 * f32::EPSILON * want.abs())
}

/// The two operands of binary node `n` as (the one satisfying `pick`, the other).
fn split_operands(n: &Node, pick: impl Fn(ValueId) -> bool) -> Option<(ValueId, ValueId)> {
    let (a, b) = (n.input(0)?, n.input(1)?);
    if pick(a) {
        Some((a, b))
    } else if pick(b) {
        Some((b, a))
    } else {
        None
    }
}

/// GELU as exporters write it: `Erf(x/√2)` (a `Div` by √2 or a `Mul` by 1/√2), plus 1, times
/// `x`, times 1/2, with the halving either last (`(x·(1+erf))·0.5`) or on `x` first
/// (`(x·0.5)·(1+erf)`). The last node becomes one GELU on `x`; every intermediate value must
/// have no other use.
fn gelu(g: &mut Graph) -> bool {
    use crate::portable::{Generic, Unary};
    let producers = g.producers();
    let consumers = sole_consumer(g);
    let sqrt2 = std::f32::consts::SQRT_2;
    for e in 0..g.nodes.len() {
        if g.nodes[e].op != Op::Generic(Generic::Unary(Unary::Erf)) {
            continue;
        }
        let scaled = g.nodes[e].inputs[0].expect("required");
        let Some(sn) = producers[scaled].filter(|_| consumers[scaled] == Some(e)) else { continue };
        let s = &g.nodes[sn];
        let x = match s.op {
            Op::Binary(Binary::Div) if near(g, s.input(1), sqrt2) => s.input(0),
            Op::Binary(Binary::Mul) => split_operands(s, |v| near(g, Some(v), 1.0 / sqrt2)).map(|(_, x)| x),
            _ => None,
        };
        let Some(x) = x else { continue };
        // 1 + erf
        let erf_out = g.nodes[e].outputs[0];
        let Some(add) = consumers[erf_out] else { continue };
        let an = &g.nodes[add];
        if an.op != Op::Binary(Binary::Add) || split_operands(an, |v| near(g, Some(v), 1.0)).is_none() {
            continue;
        }
        let one_plus = an.outputs[0];
        let Some(m1) = consumers[one_plus] else { continue };
        if g.nodes[m1].op != Op::Binary(Binary::Mul) {
            continue;
        }
        let Some((_, other)) = split_operands(&g.nodes[m1], |v| v == one_plus) else { continue };
        let last = if other == x {
            // (x·(1+erf))·0.5
            let out = g.nodes[m1].outputs[0];
            match consumers[out] {
                Some(h)
                    if g.nodes[h].op == Op::Binary(Binary::Mul)
                        && split_operands(&g.nodes[h], |v| near(g, Some(v), 0.5)).is_some() =>
                {
                    h
                }
                _ => continue,
            }
        } else {
            // (x·0.5)·(1+erf)
            let Some(h) = producers[other].filter(|_| consumers[other] == Some(m1)) else { continue };
            let hn = &g.nodes[h];
            let halves_x = hn.op == Op::Binary(Binary::Mul)
                && split_operands(hn, |v| near(g, Some(v), 0.5)).is_some_and(|(_, y)| y == x);
            if !halves_x {
                continue;
            }
            m1
        };
        g.nodes[last].op = Op::Activation(Activation::Gelu);
        g.nodes[last].inputs = vec![Some(x)];
        return true;
    }
    false
}

/// The trailing axes a `ReduceMean` with kept axes averages over, as the first of them: the
/// `axis` of the equivalent LayerNormalization.
fn trailing_mean_axis(g: &Graph, n: &Node) -> Option<usize> {
    use crate::portable::{Generic, ReduceKind};
    if !matches!(n.op, Op::Generic(Generic::Reduce { kind: ReduceKind::Mean, keepdims: true, .. })) {
        return None;
    }
    let (axes, rank) = (g.reduce_axes(n)?, g.shape(n.input(0)?)?.len());
    let first = *axes.first()?;
    (axes == (first..rank).collect::<Vec<_>>()).then_some(first)
}

/// A float constant that broadcasts along the trailing `dims` only (its shape `dims` with
/// leading ones), as its values.
fn trailing_constant(g: &Graph, v: ValueId, dims: &[usize]) -> Option<Vec<f32>> {
    let t = g.constant(v)?;
    let lead = t.shape.len().checked_sub(dims.len())?;
    (t.shape[lead..] == *dims && t.shape[..lead].iter().all(|&d| d == 1)).then(|| t.floats().map(<[f32]>::to_vec))?
}

/// LayerNormalization as exporters without the operator write it (Paddle's and older
/// PyTorch's): `m = ReduceMean(x)`, `d = x − m`, `v = ReduceMean(d²)` (`Pow(d, 2)` or `d·d`),
/// `y = d / Sqrt(v + ε)`, then optionally `y·γ` and `+ β` with constants over the normalised
/// axes. Both means over the same trailing axes with kept axes, and every intermediate value
/// used only inside the pattern (`d` by the square and the division). The last node becomes
/// one `LayerNormalization(x, γ, β)` (γ of ones when there is no scale).
fn layer_norm(g: &mut Graph) -> bool {
    use crate::portable::{Generic, Unary};
    let consumers = sole_consumer(g);
    let uses = g.use_counts();
    let only = |v: ValueId, op: Op| consumers[v].filter(|&c| g.nodes[c].op == op);
    for r1 in 0..g.nodes.len() {
        let Some(axis) = trailing_mean_axis(g, &g.nodes[r1]) else { continue };
        let x = g.nodes[r1].inputs[0].expect("required");
        if g.values[x].dtype != crate::tensor::DType::F32 {
            continue;
        }
        let Some(sub) = only(g.nodes[r1].outputs[0], Op::Binary(Binary::Sub)) else { continue };
        if g.nodes[sub].inputs != [Some(x), Some(g.nodes[r1].outputs[0])] {
            continue;
        }
        // d² and the division, the two readers of d (and nothing else: not an output).
        let d = g.nodes[sub].outputs[0];
        let reads = |i: usize| g.nodes[i].inputs.iter().flatten().filter(|&&v| v == d).count();
        let readers: Vec<usize> = (0..g.nodes.len()).filter(|&i| reads(i) > 0).collect();
        let &[a, b] = readers.as_slice() else { continue };
        if uses[d] != reads(a) + reads(b) {
            continue;
        }
        let squares = |i: usize| {
            let n = &g.nodes[i];
            match n.op {
                Op::Generic(Generic::Pow) => n.input(0) == Some(d) && scalar(g, n.input(1)) == Some(2.0),
                Op::Binary(Binary::Mul) => n.inputs == [Some(d), Some(d)],
                _ => false,
            }
        };
        let (sq, div) = if squares(a) { (a, b) } else { (b, a) };
        if !squares(sq) || g.nodes[div].op != Op::Binary(Binary::Div) || g.nodes[div].input(0) != Some(d) {
            continue;
        }
        let Some(r2) = consumers[g.nodes[sq].outputs[0]] else { continue };
        if trailing_mean_axis(g, &g.nodes[r2]) != Some(axis) {
            continue;
        }
        let Some(add) = only(g.nodes[r2].outputs[0], Op::Binary(Binary::Add)) else { continue };
        let Some((_, eps)) = split_operands(&g.nodes[add], |v| v == g.nodes[r2].outputs[0]) else { continue };
        let Some(epsilon) = scalar(g, Some(eps)).filter(|e| *e >= 0.0) else { continue };
        let Some(sqrt) = only(g.nodes[add].outputs[0], Op::Generic(Generic::Unary(Unary::Sqrt))) else { continue };
        if consumers[g.nodes[sqrt].outputs[0]] != Some(div) || g.nodes[div].input(1) != Some(g.nodes[sqrt].outputs[0]) {
            continue;
        }
        let Some(dims) = g.shape(x).map(|s| s[axis..].to_vec()) else { continue };
        // The scale and the shift after it, each taken when it is a constant over `dims`.
        let mut pattern = vec![r1, sub, sq, r2, add, sqrt, div];
        let affine = |op: Binary, pattern: &mut Vec<usize>| {
            let out = g.nodes[*pattern.last().expect("not empty")].outputs[0];
            let next = only(out, Op::Binary(op))?;
            let (_, k) = split_operands(&g.nodes[next], |v| v == out)?;
            let values = trailing_constant(g, k, &dims)?;
            pattern.push(next);
            Some(values)
        };
        let len: usize = dims.iter().product();
        let scale = affine(Binary::Mul, &mut pattern);
        let bias = scale.as_ref().and_then(|_| affine(Binary::Add, &mut pattern));
        let last = pattern.pop().expect("not empty");
        let name = g.nodes[last].name.clone();
        let gamma =
            g.add_constant(format!("{name}.scale"), Tensor::float(dims.clone(), scale.unwrap_or(vec![1.0; len])));
        let mut inputs = vec![Some(x), Some(gamma)];
        if let Some(beta) = bias {
            inputs.push(Some(g.add_constant(format!("{name}.bias"), Tensor::float(dims, beta))));
        }
        g.nodes[last].op = Op::Generic(Generic::LayerNorm { axis: axis as i64, epsilon, outputs: 1 });
        g.nodes[last].inputs = inputs;
        // The pattern's other nodes are dead now (and would match again).
        pattern.sort_unstable();
        for d in pattern.into_iter().rev() {
            g.nodes.remove(d);
        }
        return true;
    }
    false
}

/// `y = x·a + b` (scalar constants, as Mul then Add) feeding only a padding-free
/// convolution: folded into that convolution's weights and bias.
fn fold_affine_forward(g: &mut Graph) -> bool {
    let consumers = sole_consumer(g);
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let Op::Binary(op @ (Binary::Mul | Binary::Add)) = n.op else { continue };
        let Some((x, c, _)) = const_operand(g, n) else { continue };
        if c.len() != 1 || g.shape(x) != g.shape(n.outputs[0]) {
            continue;
        }
        let Some(ci) = consumers[n.outputs[0]] else { continue };
        let conv = &g.nodes[ci];
        let Op::Conv(cv) = &conv.op else { continue };
        let pads_free = cv.pads == [0; 4] && cv.auto_pad == crate::ir::AutoPad::NotSet && !cv.transposed;
        let consts = conv.input(1).and_then(|w| g.constant(w)).is_some()
            && conv.input(2).is_none_or(|b| g.constant(b).is_some());
        if !pads_free || !consts || conv.input(0) != Some(n.outputs[0]) {
            continue;
        }
        let (scale, shift) = if op == Binary::Mul { (c[0], 0.0) } else { (1.0, c[0]) };
        let wid = conv.input(1).expect("checked");
        let w = g.constant(wid).and_then(Tensor::floats).expect("checked").to_vec();
        let wshape = g.shape(wid).expect("constant").to_vec();
        let c_out = wshape[0];
        let per_out = w.len() / c_out;
        let mut b: Vec<f32> = match conv.input(2) {
            Some(b) => g.constant(b).and_then(Tensor::floats).expect("checked").to_vec(),
            None => vec![0.0; c_out],
        };
        for (o, bo) in b.iter_mut().enumerate() {
            let sum: f64 = w[o * per_out..(o + 1) * per_out].iter().map(|&v| v as f64).sum();
            *bo += (shift as f64 * sum) as f32;
        }
        let w: Vec<f32> = w.iter().map(|v| v * scale).collect();
        let name = g.nodes[ci].name.clone();
        let new_w = g.add_constant(format!("{name}.prescaled_w"), Tensor::float(wshape, w));
        let new_b = g.add_constant(format!("{name}.prescaled_b"), Tensor::float(vec![c_out], b));
        let conv = &mut g.nodes[ci];
        conv.inputs.resize(3, None);
        conv.inputs[0] = Some(x);
        conv.inputs[1] = Some(new_w);
        conv.inputs[2] = Some(new_b);
        g.nodes.remove(i);
        return true;
    }
    false
}

/// `Add(x, Mul(x, s))` with `s` smaller than `x` (a squeeze-excitation gate): one full pass
/// `Mul(x, Add(s, 1))` instead of two; the added node runs on the small gate.
fn gated_residual(g: &mut Graph) -> bool {
    let consumers = sole_consumer(g);
    let producers = g.producers();
    for i in 0..g.nodes.len() {
        if g.nodes[i].op != Op::Binary(Binary::Add) {
            continue;
        }
        let (a, b) = (g.nodes[i].inputs[0].expect("required"), g.nodes[i].inputs[1].expect("required"));
        for (x, prod) in [(a, b), (b, a)] {
            let Some(m) = producers[prod] else { continue };
            let mn = &g.nodes[m];
            if mn.op != Op::Binary(Binary::Mul) || consumers[prod] != Some(i) {
                continue;
            }
            let gate = match (mn.inputs[0], mn.inputs[1]) {
                (Some(p), Some(q)) if p == x => q,
                (Some(p), Some(q)) if q == x => p,
                _ => continue,
            };
            let (xs, gs) = (g.shape(x).map(<[usize]>::len), g.shape(gate).map(|s| s.iter().product::<usize>()));
            let x_len = g.shape(x).map(|s| s.iter().product::<usize>());
            if g.constants.contains_key(&gate)
                || xs.is_none()
                || gs >= x_len
                || g.shape(x) != g.shape(g.nodes[i].outputs[0])
            {
                continue;
            }
            let one = g.add_constant(format!("{}.one", g.nodes[i].name), Tensor::float(vec![], vec![1.0]));
            let gate_shape = g.shape(gate).map(<[usize]>::to_vec);
            let shifted =
                g.add_value(format!("{}.gate_plus_one", g.nodes[i].name), crate::tensor::DType::F32, gate_shape);
            let add = Node {
                name: format!("{}.gate_plus_one", g.nodes[i].name),
                op: Op::Binary(Binary::Add),
                inputs: vec![Some(gate), Some(one)],
                outputs: vec![shifted],
            };
            g.nodes[i].op = Op::Binary(Binary::Mul);
            g.nodes[i].inputs = vec![Some(x), Some(shifted)];
            g.nodes[m] = add; // the gate exists here; the Add at i comes later
            return true;
        }
    }
    false
}

fn fuse_residual(g: &mut Graph) -> bool {
    let consumers = sole_consumer(g);
    let producers = g.producers();
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if n.op != Op::Binary(Binary::Add) {
            continue;
        }
        let (a, b) = (n.inputs[0].expect("required"), n.inputs[1].expect("required"));
        let out_shape = g.shape(n.outputs[0]);
        if g.shape(a) != out_shape
            || g.shape(b) != out_shape
            || g.constants.contains_key(&a)
            || g.constants.contains_key(&b)
        {
            continue;
        }
        for (x, other) in [(a, b), (b, a)] {
            let Some(p) = producers[x] else { continue };
            let Op::Conv(c) = &g.nodes[p].op else { continue };
            if c.activation != Activation::Identity || c.residual || consumers[x] != Some(i) || p > i {
                continue;
            }
            let mut conv = g.nodes[p].clone();
            if let Op::Conv(c) = &mut conv.op {
                c.residual = true;
            }
            conv.inputs.resize(3, None);
            conv.inputs.push(Some(other));
            conv.outputs = g.nodes[i].outputs.clone();
            g.nodes[i] = conv;
            g.nodes.remove(p);
            return true;
        }
    }
    false
}

fn fuse_activation(g: &mut Graph) -> bool {
    let consumers = sole_consumer(g);
    let producers = g.producers();
    for i in 0..g.nodes.len() {
        let Op::Activation(act) = g.nodes[i].op else { continue };
        if act == Activation::Identity {
            continue;
        }
        let x = g.nodes[i].inputs[0].expect("required");
        let Some(p) = producers[x] else { continue };
        if consumers[x] != Some(i) {
            continue;
        }
        let Op::Conv(c) = &mut g.nodes[p].op else { continue };
        if c.activation != Activation::Identity {
            continue;
        }
        c.activation = act;
        absorb(g, p, i);
        return true;
    }
    false
}

fn remove_dead(g: &mut Graph) -> usize {
    let mut removed = 0;
    loop {
        let uses = g.use_counts();
        let before = g.nodes.len();
        g.nodes.retain(|n| n.outputs.iter().any(|&o| uses[o] > 0));
        if g.nodes.len() == before {
            break;
        }
        removed += before - g.nodes.len();
    }
    let uses = g.use_counts();
    g.constants.retain(|id, _| uses[*id] > 0);
    removed
}
