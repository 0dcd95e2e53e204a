//! Plan steps as operations on handles ([`kernels::device::Op`]), for a kernel set's
//! [`kernels::device::Device`]: each value is a handle into its slot of the memory plan. Steps
//! without a device form (data-dependent values, integer values, recurrences, `Eval`, gated
//! convolutions and expansions into depthwise convolutions, exact-only element-wise chains,
//! group norms) run on the host.

use kernels::device::{Epi, Handle, MapStep, Op, Operand as DevOperand, StridedCopy};

use super::exec::{concat_part_dims, pool_params, resize_output};
use super::{dims4, inputs_of, memory, ops, Layout, MapOp, Operand, Plan, Step};
use crate::tensor::strides;

/// The handle of value `v`: its slot, its length.
pub(super) fn handle(plan: &Plan, v: usize) -> Handle {
    Handle { buf: plan.values[v].slot, len: plan.values[v].len() }
}

/// The device form of `step`, or `None` where it runs on the host.
pub(super) fn op(plan: &Plan, step: &Step) -> Option<Op> {
    let mut touched = inputs_of(step);
    touched.push(memory::writes(step));
    if touched.iter().any(|&v| plan.values[v].dynamic || plan.values[v].dtype.is_int()) {
        return None;
    }
    let phys = |v: usize| plan.values[v].physical();
    let h = |v: usize| handle(plan, v);
    let src = |o: Operand| match o {
        Operand::Value(v) => DevOperand::Tensor(h(v)),
        Operand::Const(c) => DevOperand::Const(c),
    };
    let output = h(memory::writes(step));
    Some(match step {
        // The gate scales the weights per run: a CPU plan's fusion.
        Step::Conv { gate: Some(_), .. } => return None,
        Step::Conv { weights, bias, input, residual, activation, .. } => Op::Conv {
            weights: *weights,
            input: h(*input),
            dims: dims4(&phys(*input)),
            epi: Epi { bias: *bias, activation: *activation, residual: residual.map(h) },
            output,
        },
        Step::Gemm { a, b, bias, activation, .. } => Op::Gemm {
            a: h(*a),
            rows: super::gemm_rows(&plan.values[*a].shape),
            weights: *b,
            epi: Epi { bias: *bias, activation: *activation, residual: None },
            output,
        },
        Step::Map { input, ops: chain, channels, .. } => {
            let chain: Option<Vec<MapStep>> = chain
                .iter()
                .map(|op| match *op {
                    MapOp::Act(a) => Some(MapStep::Act(a)),
                    MapOp::Unary(u) => Some(MapStep::Unary(u)),
                    MapOp::Mul(k) => Some(MapStep::Mul(k)),
                    MapOp::Add(k) => Some(MapStep::Add(k)),
                    // No device kernel: the chain runs on the host.
                    MapOp::Exact(_) => None,
                })
                .collect();
            Op::Map { input: h(*input), chain: chain?, channels: *channels, output }
        }
        Step::Binary { op, a, b, output: (_, dims) } => {
            Op::Binary { op: (*op).into(), a: (src(a.0), a.1), b: (src(b.0), b.1), dims: *dims, output }
        }
        Step::GlobalAveragePool { input, .. } => {
            Op::GlobalAveragePool { input: h(*input), dims: dims4(&phys(*input)), output }
        }
        Step::Pool { pool, pads, average, input, output: o } => {
            let od = phys(*o);
            let params = pool_params(pool, *pads, *average);
            Op::Pool { input: h(*input), dims: dims4(&phys(*input)), params, out_hw: [od[1], od[2]], output }
        }
        Step::Resize { resize, scales, input, output: o } => {
            let i = phys(*input);
            let (planes, ohw) = resize_output(plan, *o);
            let taps = ops::taps(resize, *scales, [i[1], i[2]], ohw);
            Op::Resize { input: h(*input), dims: dims4(&i), taps, planes, output }
        }
        Step::Softmax { input, dims, .. } => Op::Softmax { input: h(*input), dims: *dims, output },
        Step::LayerNorm { input, len, scale, bias, epsilon, .. } => {
            Op::LayerNorm { input: h(*input), len: *len, scale: *scale, bias: *bias, epsilon: *epsilon, output }
        }
        Step::MatMul { a, b, dims, batch, a_strides, b_strides, .. } => Op::MatMul {
            a: h(*a),
            b: h(*b),
            dims: *dims,
            batch: batch.clone(),
            a_strides: a_strides.clone(),
            b_strides: b_strides.clone(),
            output,
        },
        Step::Concat { .. }
        | Step::Relayout { .. }
        | Step::Copy { .. }
        | Step::Crop { .. }
        | Step::Gather { .. }
        | Step::Transpose { .. }
        | Step::DepthToSpace { .. } => Op::Copies { parts: copies(plan, step, &src)?, output },
        Step::Recurrence { .. } | Step::Eval { .. } | Step::ExpandDepthwise { .. } | Step::GroupNorm { .. } => {
            return None
        }
    })
}

/// The strided copies that make a data-movement step (Concat, the NCHW ↔ NHWC relayouts,
/// Copy, Crop, Gather, Transpose, DepthToSpace) on a device; `None` for a step that has no
/// device form (a Transpose of more than six merged axes) and for every other step.
fn copies(plan: &Plan, step: &Step, src: &dyn Fn(Operand) -> DevOperand) -> Option<Vec<(DevOperand, StridedCopy)>> {
    let phys = |v: usize| plan.values[v].physical();
    let value = |v: usize| DevOperand::Tensor(handle(plan, v));
    match step {
        Step::Concat { inputs, axis, output } => {
            let outer: usize = phys(*output)[..*axis].iter().product();
            let chunks: Vec<usize> =
                inputs.iter().map(|&o| concat_part_dims(plan, o, *output, *axis)[*axis..].iter().product()).collect();
            let copies = side_by_side(outer, &chunks, |k| (chunks[k], 0));
            Some(inputs.iter().zip(copies).map(|(&o, copy)| (src(o), copy)).collect())
        }
        Step::Relayout { input, .. } => Some(vec![(value(*input), relayout(&plan.values[*input]))]),
        // A copy of a value that died into the output's slot copies nothing.
        Step::Copy { input: Operand::Value(v), output } if plan.values[*v].slot == plan.values[*output].slot => {
            Some(Vec::new())
        }
        Step::Copy { input, output } => Some(vec![(src(*input), StridedCopy::dense(plan.values[*output].len()))]),
        Step::Crop { input, outer, stride, start, len, .. } => {
            let copy = StridedCopy {
                dims: vec![*outer, *len],
                src_strides: vec![*stride, 1],
                dst_strides: vec![*len, 1],
                src_offset: *start,
                dst_offset: 0,
            };
            Some(vec![(value(*input), copy)])
        }
        Step::Gather { input, outer, stride, inner, indices, .. } => {
            // One copy per run of consecutive indices: `blocks` rows of `inner` from `first`.
            let runs = ops::index_runs(indices);
            let chunks: Vec<usize> = runs.iter().map(|&(_, blocks)| blocks * inner).collect();
            let copies = side_by_side(*outer, &chunks, |k| (*stride, runs[k].0 * inner));
            Some(copies.into_iter().map(|copy| (value(*input), copy)).collect())
        }
        Step::Transpose { input, perm, .. } => {
            let shape = &plan.values[*input].shape;
            let in_strides = strides(shape);
            let dims: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let copy = StridedCopy {
                src_strides: perm.iter().map(|&p| in_strides[p]).collect(),
                dst_strides: strides(&dims),
                dims,
                ..Default::default()
            };
            if copy.merged().dims.len() > 6 {
                return None;
            }
            Some(vec![(value(*input), copy)])
        }
        Step::DepthToSpace { input, block: [by, bx], .. } => {
            let [n, h, w, cc] = dims4(&phys(*input));
            let c = cc / (by * bx);
            let copy = StridedCopy {
                dims: vec![n, h, *by, w, bx * c],
                src_strides: vec![h * w * cc, w * cc, bx * c, cc, 1],
                dst_strides: strides(&[n, h, *by, w, bx * c]),
                ..Default::default()
            };
            Some(vec![(value(*input), copy)])
        }
        _ => None,
    }
}

/// Copies that place `chunks.len()` parts side by side in each of `outer` output rows: part
/// `k` is `[outer, chunks[k]]`, read from rows `source(k).0` apart starting at `source(k).1`.
fn side_by_side(outer: usize, chunks: &[usize], source: impl Fn(usize) -> (usize, usize)) -> Vec<StridedCopy> {
    let row: usize = chunks.iter().sum();
    let mut at = 0;
    let mut copies = Vec::new();
    for (k, &chunk) in chunks.iter().enumerate() {
        let (src_row, src_offset) = source(k);
        copies.push(StridedCopy {
            dims: vec![outer, chunk],
            src_strides: vec![src_row, 1],
            dst_strides: vec![row, 1],
            src_offset,
            dst_offset: at,
        });
        at += chunk;
    }
    copies
}

/// NCHW → NHWC (or back, for a blocked value), iterated in the output's order.
fn relayout(v: &super::PlanValue) -> StridedCopy {
    let [n, c, h, w] = dims4(&v.shape);
    if v.layout == Layout::Plain {
        StridedCopy {
            dims: vec![n, h, w, c],
            src_strides: vec![c * h * w, w, 1, h * w],
            dst_strides: strides(&[n, h, w, c]),
            ..Default::default()
        }
    } else {
        StridedCopy {
            dims: vec![n, c, h, w],
            src_strides: vec![h * w * c, 1, w * c, c],
            dst_strides: strides(&[n, c, h, w]),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `copy` run on the host.
    fn run(copy: &StridedCopy, src: &[f32], dst: &mut [f32]) {
        copy.apply(src, dst).unwrap();
    }

    #[test]
    fn side_by_side_copies_place_each_part_in_its_columns_of_every_row() {
        // Concat of [3, 2] and [3, 3] along the last axis: rows of 5.
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let b: Vec<f32> = (100..109).map(|v| v as f32).collect();
        let chunks = [2, 3];
        let copies = side_by_side(3, &chunks, |k| (chunks[k], 0));
        let mut out = vec![f32::NAN; 15];
        run(&copies[0], &a, &mut out);
        run(&copies[1], &b, &mut out);
        let want = [0., 1., 100., 101., 102., 2., 3., 103., 104., 105., 4., 5., 106., 107., 108.];
        assert_eq!(out, want);
    }

    #[test]
    fn side_by_side_copies_read_from_each_parts_start() {
        // Gather-like runs over one source of rows of 6: columns 4..6 then 0..3 of each row.
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let starts = [4, 0];
        let copies = side_by_side(2, &[2, 3], |k| (6, starts[k]));
        let mut out = vec![f32::NAN; 10];
        for c in &copies {
            run(c, &src, &mut out);
        }
        assert_eq!(out, [4., 5., 0., 1., 2., 10., 11., 6., 7., 8.]);
    }
}
