//! Plan steps as device work: what each step needs on the GPU (constants, taps, epilogues,
//! copy geometry), prepared once when a GPU session is made, and the launch of one step.
//! Steps without a device form (data-dependent values, integer values, LayerNorm, MatMul of
//! two run-time values, recurrences, `Eval`) run on the host.

use kernels::cuda::{
    BinaryOp, ChainOp, DeviceBias, DeviceEpilogue, DeviceGap, DeviceMap, DeviceResize, DeviceTensor, Gpu, Precision,
    StridedCopy,
};
use kernels::PoolParams;

use super::exec::{concat_part_dims, pool_params, resize_output};
use super::{dims4, inputs_of, memory, ops, Layout, MapOp, Operand, Plan, Step};
use crate::error::{ModelError, Result};
use crate::ir::Binary;
use crate::tensor::strides;

/// An operand of a device step: a value's device buffer, or a constant uploaded once.
pub(super) enum Src {
    Value(usize),
    Const(DeviceTensor),
}

/// One step's device work.
pub(super) enum DeviceStep {
    Conv(DeviceEpilogue),
    Gemm(DeviceEpilogue),
    Map(DeviceMap),
    Binary {
        op: BinaryOp,
        a: (Src, [usize; 4]),
        b: (Src, [usize; 4]),
        dims: [usize; 4],
    },
    /// Strided copies into the output, in order (relayouts, transposes, crops, gathers,
    /// concatenations, depth-to-space, copies).
    Copies(Vec<(Src, StridedCopy)>),
    Pool {
        params: PoolParams,
        out_hw: [usize; 2],
    },
    GlobalAveragePool(DeviceGap),
    Resize {
        taps: DeviceResize,
        planes: bool,
    },
    Softmax((usize, usize, usize)),
}

/// The device form of `step`, or `None` where it runs on the host.
pub(super) fn prepare(plan: &Plan, step: &Step, gpu: &Gpu, precision: Precision) -> Result<Option<DeviceStep>> {
    let mut touched = inputs_of(step);
    touched.push(memory::writes(step));
    if touched.iter().any(|&v| plan.values[v].dynamic || plan.values[v].dtype.is_int()) {
        return Ok(None);
    }
    let phys = |v: usize| plan.values[v].physical();
    let src = |o: Operand| -> Result<Src> {
        Ok(match o {
            Operand::Value(v) => Src::Value(v),
            Operand::Const(c) => Src::Const(gpu.upload(&plan.consts[c], precision)?),
        })
    };
    let epilogue = |bias: &Option<usize>, activation| -> Result<DeviceEpilogue> {
        let bias = match bias {
            Some(b) => DeviceBias::PerCol(gpu.upload_f32(&plan.consts[*b])?),
            None => DeviceBias::None,
        };
        Ok(DeviceEpilogue { bias, activation }.checked()?)
    };
    Ok(Some(match step {
        Step::Conv { gate: Some(_), .. } => {
            return Err(ModelError::Malformed("a gated convolution (a CPU plan's fusion) in a GPU plan".into()))
        }
        Step::Conv { bias, activation, .. } => DeviceStep::Conv(epilogue(bias, *activation)?),
        Step::Gemm { bias, activation, .. } => DeviceStep::Gemm(epilogue(bias, *activation)?),
        Step::Map { ops: chain, channels, .. } => {
            let chain: Option<Vec<ChainOp<'_>>> = chain
                .iter()
                .map(|op| match *op {
                    MapOp::Act(a) => Some(ChainOp::Act(a)),
                    MapOp::Unary(u) => Some(ChainOp::Unary(u)),
                    MapOp::Mul(k) => Some(ChainOp::Mul(&plan.consts[k])),
                    MapOp::Add(k) => Some(ChainOp::Add(&plan.consts[k])),
                    // No device kernel: the chain runs on the host.
                    MapOp::Exact(_) => None,
                })
                .collect();
            match chain {
                Some(chain) => DeviceStep::Map(DeviceMap::upload(gpu, &chain, *channels)?),
                None => return Ok(None),
            }
        }
        Step::Binary { op, a, b, output } => {
            let op = match op {
                Binary::Add => BinaryOp::Add,
                Binary::Sub => BinaryOp::Sub,
                Binary::Mul => BinaryOp::Mul,
                Binary::Div => BinaryOp::Div,
            };
            DeviceStep::Binary { op, a: (src(a.0)?, a.1), b: (src(b.0)?, b.1), dims: output.1 }
        }
        Step::GlobalAveragePool { input, .. } => {
            DeviceStep::GlobalAveragePool(DeviceGap::new(gpu, dims4(&phys(*input)))?)
        }
        Step::Pool { pool, pads, average, output, .. } => {
            let o = phys(*output);
            DeviceStep::Pool { params: pool_params(pool, *pads, *average), out_hw: [o[1], o[2]] }
        }
        Step::Resize { resize, scales, input, output } => {
            let i = phys(*input);
            let (planes, ohw) = resize_output(plan, *output);
            let taps = ops::Taps::new(resize, *scales, [i[1], i[2]], ohw);
            DeviceStep::Resize { taps: DeviceResize::upload(gpu, &taps.rows, &taps.cols, taps.linear)?, planes }
        }
        Step::Softmax { dims, .. } => DeviceStep::Softmax(*dims),
        Step::Concat { .. }
        | Step::Relayout { .. }
        | Step::Copy { .. }
        | Step::Crop { .. }
        | Step::Gather { .. }
        | Step::Transpose { .. }
        | Step::DepthToSpace { .. } => match copies(plan, step, &src)? {
            Some(parts) => DeviceStep::Copies(parts),
            None => return Ok(None),
        },
        Step::MatMul { .. }
        | Step::LayerNorm { .. }
        | Step::Recurrence { .. }
        | Step::Eval { .. }
        | Step::ExpandDepthwise { .. } => return Ok(None),
    }))
}

/// The strided copies that make a data-movement step (Concat, the NCHW ↔ NHWC relayouts,
/// Copy, Crop, Gather, Transpose, DepthToSpace) on the device; `None` for a step that has no
/// device form (a Transpose of more than six merged axes) and for every other step.
fn copies(plan: &Plan, step: &Step, src: &dyn Fn(Operand) -> Result<Src>) -> Result<Option<Vec<(Src, StridedCopy)>>> {
    let phys = |v: usize| plan.values[v].physical();
    Ok(match step {
        Step::Concat { inputs, axis, output } => {
            let outer: usize = phys(*output)[..*axis].iter().product();
            let chunks: Vec<usize> =
                inputs.iter().map(|&o| concat_part_dims(plan, o, *output, *axis)[*axis..].iter().product()).collect();
            let copies = side_by_side(outer, &chunks, |k| (chunks[k], 0));
            Some(inputs.iter().zip(copies).map(|(&o, copy)| Ok((src(o)?, copy))).collect::<Result<_>>()?)
        }
        Step::Relayout { input, .. } => Some(vec![(Src::Value(*input), relayout(&plan.values[*input]))]),
        Step::Copy { input, output } => Some(vec![(src(*input)?, StridedCopy::dense(plan.values[*output].len()))]),
        Step::Crop { input, outer, stride, start, len, .. } => {
            let copy = StridedCopy {
                dims: vec![*outer, *len],
                src_strides: vec![*stride, 1],
                dst_strides: vec![*len, 1],
                src_offset: *start,
                dst_offset: 0,
            };
            Some(vec![(Src::Value(*input), copy)])
        }
        Step::Gather { input, outer, stride, inner, indices, .. } => {
            // One copy per run of consecutive indices: `blocks` rows of `inner` from `first`.
            let runs = ops::index_runs(indices);
            let chunks: Vec<usize> = runs.iter().map(|&(_, blocks)| blocks * inner).collect();
            let copies = side_by_side(*outer, &chunks, |k| (*stride, runs[k].0 * inner));
            Some(copies.into_iter().map(|copy| (Src::Value(*input), copy)).collect())
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
                return Ok(None);
            }
            Some(vec![(Src::Value(*input), copy)])
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
            Some(vec![(Src::Value(*input), copy)])
        }
        _ => None,
    })
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

impl DeviceStep {
    /// Launches the step on the device: `dev(v)` is value `v`'s device buffer, `y` the output's.
    pub(super) fn launch<'a>(
        &'a self,
        plan: &Plan,
        step: &Step,
        gpu: &Gpu,
        dev: &dyn Fn(usize) -> &'a DeviceTensor,
        y: &mut DeviceTensor,
        weights: (&[kernels::cuda::DeviceConv], &[kernels::cuda::DeviceMatrix]),
    ) -> kernels::Result<()> {
        let phys = |v: usize| dims4(&plan.values[v].physical());
        let operand = |s: &'a Src| match s {
            Src::Value(v) => dev(*v),
            Src::Const(t) => t,
        };
        match (self, step) {
            (DeviceStep::Conv(epi), Step::Conv { weights: w, input, residual, .. }) => {
                gpu.conv2d(dev(*input), phys(*input), &weights.0[*w], epi, residual.map(dev), y).map(|_| ())
            }
            (DeviceStep::Gemm(epi), Step::Gemm { a, b, .. }) => {
                gpu.gemm(dev(*a), super::gemm_rows(&plan.values[*a].shape), &weights.1[*b], epi, None, y)
            }
            (DeviceStep::Map(chain), Step::Map { input, .. }) => gpu.map(dev(*input), chain, y),
            (DeviceStep::Binary { op, a, b, dims }, _) => {
                gpu.binary(*op, (operand(&a.0), a.1), (operand(&b.0), b.1), *dims, y)
            }
            (DeviceStep::Copies(parts), _) => parts.iter().try_for_each(|(s, copy)| gpu.copy(operand(s), y, copy)),
            (DeviceStep::Pool { params, out_hw }, Step::Pool { input, .. }) => {
                gpu.pool2d(dev(*input), phys(*input), params, *out_hw, y)
            }
            (DeviceStep::GlobalAveragePool(gap), Step::GlobalAveragePool { input, .. }) => {
                gpu.global_average_pool(dev(*input), phys(*input), gap, y)
            }
            (DeviceStep::Resize { taps, planes }, Step::Resize { input, .. }) => {
                gpu.resize(dev(*input), phys(*input), taps, *planes, y)
            }
            (DeviceStep::Softmax(dims), Step::Softmax { input, .. }) => gpu.softmax(dev(*input), *dims, y),
            _ => Err(kernels::KernelError::Device("a device step prepared for another kind of step".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `copy` run on the host: every element of its iteration space from `src` into `dst`.
    fn run(copy: &StridedCopy, src: &[f32], dst: &mut [f32]) {
        let total: usize = copy.dims.iter().product();
        for flat in 0..total {
            let (mut rest, mut s, mut d) = (flat, copy.src_offset, copy.dst_offset);
            for axis in (0..copy.dims.len()).rev() {
                let i = rest % copy.dims[axis];
                rest /= copy.dims[axis];
                s += i * copy.src_strides[axis];
                d += i * copy.dst_strides[axis];
            }
            dst[d] = src[s];
        }
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
