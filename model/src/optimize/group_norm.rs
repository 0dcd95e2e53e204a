//! GroupNormalization as `torch.onnx.export` writes `nn.GroupNorm` (PoolFormer's and
//! MobileViTv2's norms, every diffusion U-Net's): `Reshape(x, [N, G, −1])`, an
//! `InstanceNormalization` of that with one scale and bias per group, a `Reshape` back to
//! `x`'s shape, then `γ` and `β` per channel as `Mul` and `Add`. Recognised as one
//! `GroupNormalization` of `x` (the two reshapes left dead) with per-channel scale and bias,
//! into which the following affine then folds: one pass over the values instead of five.

use crate::ir::{Graph, Op, ValueId};
use crate::portable::Generic;
use crate::tensor::Tensor;

use super::sole_consumer;

/// Rewrites one `Reshape → InstanceNormalization → Reshape` group norm; says whether it
/// found one.
pub(super) fn group_norm(g: &mut Graph) -> bool {
    let producers = g.producers();
    let consumers = sole_consumer(g);
    for i in 0..g.nodes.len() {
        let back = &g.nodes[i];
        if !matches!(back.op, Op::Reshape(_)) {
            continue;
        }
        let Some(norm) =
            back.input(0).and_then(|v| producers[v]).filter(|&p| consumers[g.nodes[p].outputs[0]] == Some(i))
        else {
            continue;
        };
        let Op::Generic(Generic::InstanceNorm(epsilon)) = g.nodes[norm].op else { continue };
        let Some(split) = g.nodes[norm].input(0) else { continue };
        let Some(r) =
            producers[split].filter(|&p| matches!(g.nodes[p].op, Op::Reshape(_)) && consumers[split] == Some(norm))
        else {
            continue;
        };
        let Some(x) = g.nodes[r].input(0) else { continue };
        let (Some(xs), Some(ss), Some(out)) = (g.shape(x), g.shape(split), g.shape(back.outputs[0])) else {
            continue;
        };
        // [N, C, spatial…] as [N, G, rest…] with each group whole channels, and back.
        let (&[n, c, ..], &[sn, groups, ..]) = (xs, ss) else { continue };
        if xs.len() < 3 || ss.len() < 3 || out != xs || sn != n || groups == 0 || c % groups != 0 {
            continue;
        }
        let Some((scale, bias)) = params(g, &g.nodes[norm].inputs, groups, c) else { continue };
        let name = g.nodes[i].name.clone();
        let scale = g.add_constant(format!("{name}.group_scale"), Tensor::float(vec![c], scale));
        let bias = g.add_constant(format!("{name}.group_bias"), Tensor::float(vec![c], bias));
        g.nodes[i].op = Op::Generic(Generic::GroupNorm { groups, epsilon });
        g.nodes[i].inputs = vec![Some(x), Some(scale), Some(bias)];
        return true;
    }
    false
}

/// A norm's constant scale and bias (`inputs[1]`, `inputs[2]`) as one value per channel of
/// `c` in `groups`: given per channel, or per group (repeated for the group's channels).
pub(crate) fn params(g: &Graph, inputs: &[Option<ValueId>], groups: usize, c: usize) -> Option<(Vec<f32>, Vec<f32>)> {
    let per_channel = |k: usize| {
        let v = g.constant((*inputs.get(k)?)?)?.floats()?;
        match v.len() {
            l if l == c => Some(v.to_vec()),
            l if l == groups => Some(v.iter().flat_map(|&p| std::iter::repeat_n(p, c / groups)).collect()),
            _ => None,
        }
    };
    Some((per_channel(1)?, per_channel(2)?))
}

/// The group count of a `GroupNormalization` or `InstanceNormalization` with constant
/// per-channel (or per-group) scale and bias at node `p`, of an input of `c` channels.
pub(super) fn norm_groups(g: &Graph, p: usize) -> Option<(usize, usize)> {
    let n = &g.nodes[p];
    let c = *g.shape(n.input(0)?)?.get(1)?;
    let groups = match n.op {
        Op::Generic(Generic::GroupNorm { groups, .. }) => groups,
        Op::Generic(Generic::InstanceNorm(_)) => c,
        _ => return None,
    };
    (groups > 0 && c % groups == 0 && g.shape(n.input(0)?)?.len() >= 3).then_some((groups, c))
}

/// Folds `scale·y + shift` (per channel, or one value for all) into the norm at node `p`
/// (see [`norm_groups`]); says whether it could.
pub(super) fn rescale_norm(g: &mut Graph, p: usize, scale: &[f32], shift: &[f32]) -> bool {
    let Some((groups, c)) = norm_groups(g, p) else { return false };
    let Some((s, b)) = params(g, &g.nodes[p].inputs, groups, c) else { return false };
    let expand = |v: &[f32]| if v.len() == 1 { vec![v[0]; c] } else { v.to_vec() };
    let (scale, shift) = (expand(scale), expand(shift));
    if scale.len() != c || shift.len() != c {
        return false;
    }
    let s: Vec<f32> = s.iter().zip(&scale).map(|(&a, &k)| a * k).collect();
    let b: Vec<f32> = b.iter().zip(&scale).zip(&shift).map(|((&a, &k), &t)| a * k + t).collect();
    let name = g.nodes[p].name.clone();
    let s = g.add_constant(format!("{name}.folded_scale"), Tensor::float(vec![c], s));
    let b = g.add_constant(format!("{name}.folded_bias"), Tensor::float(vec![c], b));
    g.nodes[p].inputs = vec![g.nodes[p].inputs[0], Some(s), Some(b)];
    true
}
