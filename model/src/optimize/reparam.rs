//! Structural re-parameterisation: branches of one input that a sum adds together (RepVGG,
//! MobileOne, FastViT and YOLO "RepConv" blocks as exported in their training form) become
//! one convolution. Each branch is linear in the shared input: a convolution whose kernel
//! lies inside the largest one's, or a per-channel scale and shift of the input itself (an
//! identity, a `BatchNormalization`, constant `Mul`/`Add`/`Sub`/`Div`), which is a
//! convolution with one tap at the kernel's centre. Their weights and biases add up, so the
//! sum costs what its largest convolution costs.

use kernels::ConvParams;

use super::{affine_of, batchnorm_affine, const_operand, plain_conv_producer, sole_consumer};
use crate::ir::{AutoPad, Binary, Graph, Op, ValueId};
use crate::tensor::Tensor;

/// One operand of a sum, as a function of the input the branches share.
enum Branch {
    /// A convolution without epilogue and with constant weights: its node.
    Conv(usize),
    /// `scale·x + shift` per channel of `x`.
    Affine { x: ValueId, scale: Vec<f32>, shift: Vec<f32> },
}

/// A convolution's summed weights and bias, and the parameters they go with.
struct Kernel {
    x: ValueId,
    p: ConvParams,
    shape: Vec<usize>,
    w: Vec<f32>,
    b: Vec<f32>,
}

/// Merges one sum (`Add`, or `Sub`) of two branches of the same input into one convolution;
/// says whether it found one.
pub(super) fn merge_branches(g: &mut Graph) -> bool {
    let consumers = sole_consumer(g);
    let producers = g.producers();
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let sign = match n.op {
            Op::Binary(Binary::Add) => 1.0,
            Op::Binary(Binary::Sub) => -1.0,
            _ => continue,
        };
        let (Some(a), Some(b), y) = (n.input(0), n.input(1), n.outputs[0]) else { continue };
        let Some(shape) = g.shape(y).filter(|s| s.len() == 4) else { continue };
        if a == b || g.shape(a) != Some(shape) || g.shape(b) != Some(shape) {
            continue;
        }
        let branch = |v: ValueId| branch(g, &producers, &consumers, v, i);
        let (Some(ba), Some(bb)) = (branch(a), branch(b)) else { continue };
        let merged = match (&ba, &bb) {
            (Branch::Conv(p), other) => merge(g, *p, 1.0, other, sign),
            (other, Branch::Conv(q)) => merge(g, *q, sign, other, 1.0),
            _ => None,
        };
        let Some((keep, k)) = merged else { continue };
        emit(g, keep, k, y);
        g.nodes.remove(i);
        return true;
    }
    false
}

/// What operand `v` of the sum at node `sum` is, if it is a branch.
fn branch(
    g: &Graph,
    producers: &[Option<usize>],
    consumers: &[Option<usize>],
    v: ValueId,
    sum: usize,
) -> Option<Branch> {
    let c = *g.shape(v)?.get(1)?;
    // `v` is read by the sum, so a sole reader is the sum.
    let forward = |p: &usize| *p < sum && matches!(&g.nodes[*p].op, Op::Conv(conv) if !conv.transposed);
    if let Some(p) = plain_conv_producer(g, producers, consumers, v).filter(forward) {
        return Some(Branch::Conv(p));
    }
    // Walk up through per-channel affine steps used only on this path.
    let (mut x, mut scale, mut shift) = (v, vec![1.0f32; c], vec![0.0f32; c]);
    while let Some(p) = producers[x].filter(|_| consumers[x].is_some() && g.constant(x).is_none()) {
        let n = &g.nodes[p];
        let (u, affine) = match n.op {
            Op::BatchNorm { epsilon } => (n.input(0)?, batchnorm_affine(g, n, epsilon)),
            Op::Binary(op) => match const_operand(g, n) {
                Some((u, k, first)) => (u, affine_of(op, k, first)),
                None => break,
            },
            _ => break,
        };
        let Some((s, t)) = affine else { break };
        let per_channel = |v: Vec<f32>| match v.len() {
            1 => Some(vec![v[0]; c]),
            l if l == c => Some(v),
            _ => None,
        };
        let (Some(s), Some(t)) = (per_channel(s), per_channel(t)) else { break };
        if g.shape(u) != g.shape(x) {
            break;
        }
        // scale·(s·u + t) + shift
        for k in 0..c {
            shift[k] += scale[k] * t[k];
            scale[k] *= s[k];
        }
        x = u;
    }
    Some(Branch::Affine { x, scale, shift })
}

/// The input and resolved parameters of the convolution at node `p`.
fn conv_of(g: &Graph, p: usize) -> Option<(ValueId, ConvParams)> {
    let n = &g.nodes[p];
    let Op::Conv(c) = &n.op else { return None };
    let x = n.input(0)?;
    let (params, _) = crate::shape::conv_params(n, c, g.shape(x)?, g.shape(n.input(1)?)?).ok()?;
    Some((x, params))
}

/// The convolution at node `p` (input `x`, parameters `params`) as a [`Kernel`] times `sign`:
/// its weights copied, so only once the merge is known to fit.
fn kernel(g: &Graph, p: usize, (x, params): (ValueId, ConvParams), sign: f32) -> Option<Kernel> {
    let n = &g.nodes[p];
    let wid = n.input(1)?;
    let w = g.constant(wid)?.floats()?.iter().map(|v| v * sign).collect();
    let b = match n.input(2) {
        Some(b) => g.constant(b)?.floats()?.iter().map(|v| v * sign).collect(),
        None => vec![0.0; params.c_out],
    };
    let shape = g.shape(wid)?.to_vec();
    (b.len() == params.c_out).then_some(Kernel { x, p: params, shape, w, b })
}

/// Where kernel `small`'s tap (0, 0) lies in `big`'s taps, if every tap of `small` reads
/// the input `big`'s tap there reads, at every output.
fn offset(big: &ConvParams, small: [usize; 2], small_pads: [usize; 2]) -> Option<[usize; 2]> {
    let mut at = [0; 2];
    for ax in 0..2 {
        let shift = big.pads[ax].checked_sub(small_pads[ax])?;
        let d = big.dilations[ax];
        if shift % d != 0 || shift / d + small[ax] > big.kernel[ax] {
            return None;
        }
        at[ax] = shift / d;
    }
    Some(at)
}

/// The convolution at `p` (times `sign_p`) plus `other` (times `sign_o`): the node to keep
/// and its summed kernel.
fn merge(g: &Graph, p: usize, sign_p: f32, other: &Branch, sign_o: f32) -> Option<(usize, Kernel)> {
    let cp = conv_of(g, p)?;
    match other {
        Branch::Conv(q) => {
            let cq = conv_of(g, *q)?;
            let key = |(x, p): &(ValueId, ConvParams)| (*x, p.strides, p.dilations, p.groups, p.c_in, p.c_out);
            if key(&cp) != key(&cq) {
                return None;
            }
            // The sum's operands have one shape, so both give as many outputs.
            let fits = |big: &ConvParams, small: &ConvParams| offset(big, small.kernel, [small.pads[0], small.pads[1]]);
            let ((keep, big, sign_big), (small, sign_small), at) = match (fits(&cp.1, &cq.1), fits(&cq.1, &cp.1)) {
                (Some(at), _) => ((p, cp, sign_p), ((*q, cq), sign_o), at),
                (None, Some(at)) => ((*q, cq, sign_o), ((p, cp), sign_p), at),
                (None, None) => return None,
            };
            let mut big = kernel(g, keep, big, sign_big)?;
            let small = kernel(g, small.0, small.1, sign_small)?;
            let ([bh, bw], [sh, sw]) = (big.p.kernel, small.p.kernel);
            for (row, taps) in small.w.chunks_exact(sh * sw).enumerate() {
                for (t, v) in taps.iter().enumerate() {
                    big.w[(row * bh + at[0] + t / sw) * bw + at[1] + t % sw] += v;
                }
            }
            big.b.iter_mut().zip(&small.b).for_each(|(b, s)| *b += s);
            Some((keep, big))
        }
        Branch::Affine { x, scale, shift } => {
            // Output `y` reads input `y` at tap `at` (the output has the input's shape, so
            // `scale` has an entry per output channel).
            let (xp, params) = &cp;
            let square = params.c_in == params.c_out && params.strides == [1, 1];
            let at = offset(params, [1, 1], [0, 0]).filter(|_| x == xp && square)?;
            let mut k = kernel(g, p, cp, sign_p)?;
            let [kh, kw] = k.p.kernel;
            let per_group = k.p.c_in / k.p.groups;
            for o in 0..k.p.c_out {
                k.w[((o * per_group + o % per_group) * kh + at[0]) * kw + at[1]] += sign_o * scale[o];
                k.b[o] += sign_o * shift[o];
            }
            Some((p, k))
        }
    }
}

/// Gives node `keep` the summed kernel `k` and the sum's output `y`.
fn emit(g: &mut Graph, keep: usize, k: Kernel, y: ValueId) {
    let name = g.nodes[keep].name.clone();
    let w = g.add_constant(format!("{name}.merged_w"), Tensor::float(k.shape, k.w));
    let b = g.add_constant(format!("{name}.merged_b"), Tensor::float(vec![k.p.c_out], k.b));
    let n = &mut g.nodes[keep];
    let Op::Conv(c) = &mut n.op else { unreachable!("a branch kept is a convolution") };
    c.pads = k.p.pads;
    c.auto_pad = AutoPad::NotSet;
    n.inputs = vec![Some(k.x), Some(w), Some(b)];
    n.outputs[0] = y;
}
