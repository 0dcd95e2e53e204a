//! Running a plan: a session owns the buffer slots and the thread pool, so repeated runs
//! allocate nothing but their outputs.

use kernels::device::loops;
use kernels::{
    Activation, AlignedBuf, BOperand, Bias, Channels, Epilogue, ImageMut, ImageRef, KernelSet, MatMut, MatRef,
    PackedConv, Parallelism, PoolMode, PoolParams, RowNorm,
};

use super::offload::Offload;
use super::{dims4, memory, ops, Layout, Operand, Plan, Step};
use crate::error::{ModelError, Result};
use crate::tensor::Tensor;

/// A host step's per-run state: the data-dependent values and the gated convolutions'
/// weights of the current run.
pub(super) type HostState<'a> = (&'a mut [Option<Tensor>], &'a mut [Option<PackedConv>]);

/// A plan ready to run repeatedly with a fixed thread count.
pub struct Session<'p> {
    pub(super) plan: &'p Plan,
    set: Box<dyn KernelSet>,
    arena: Vec<AlignedBuf>,
    /// Data-dependent values of the current run (see [`super::PlanValue::dynamic`]).
    dynamic: Vec<Option<Tensor>>,
    /// The gated convolutions' weights scaled for the current run, by weight index (see
    /// [`Step::Conv`]'s gate).
    gated: Vec<Option<PackedConv>>,
    /// The thread team of a multi-threaded session (helpers spin only while a run is on).
    pool: Option<kernels::threads::Team>,
    /// A device session's workspace and bookkeeping (`Plan::device_session`); `None`: every
    /// tensor is a host slice of `arena`.
    offload: Option<Offload<'p>>,
}

impl Plan {
    /// A session running on `threads` threads (1: the calling thread only), on this host's
    /// kernel set of the plan's kind.
    pub fn session(&self, threads: usize) -> Result<Session<'_>> {
        self.session_on(kernels::kernel_set(self.kernel_set)?, threads)
    }

    /// A session on the given kernel set, which must be the one the plan was packed for.
    pub fn session_on(&self, set: Box<dyn KernelSet>, threads: usize) -> Result<Session<'_>> {
        if set.info().name != self.kernel_name {
            return Err(ModelError::Input(format!(
                "the plan was packed for kernel set `{}`, not `{}`",
                self.kernel_name,
                set.info().name
            )));
        }
        if threads == 0 {
            return Err(ModelError::Input("threads must be at least 1".into()));
        }
        // A plan none of whose steps is worth splitting runs on the calling thread: handing
        // each run to a pool would only add the hand-over.
        let any_parallel = self.steps.iter().any(|s| {
            let out = memory::writes(&s.step);
            worth_threads(self, &s.step, self.values[out].words())
        });
        let pool = if threads > 1 && any_parallel {
            Some(
                kernels::threads::Team::new(threads)
                    .map_err(|e| ModelError::Input(format!("cannot start {threads} threads: {e}")))?,
            )
        } else {
            None
        };
        Ok(Session {
            plan: self,
            set,
            arena: self.slots.iter().map(|&n| AlignedBuf::zeroed(n)).collect(),
            dynamic: vec![None; self.values.len()],
            gated: vec![None; self.convs.len()],
            pool,
            offload: None,
        })
    }
}

impl<'p> Session<'p> {
    /// A device session of `plan` on `set` (the host steps' set) with its device state.
    pub(super) fn with_device(plan: &'p Plan, set: Box<dyn KernelSet>, offload: Offload<'p>) -> Result<Self> {
        let mut s = plan.session_on(set, 1)?;
        s.offload = Some(offload);
        Ok(s)
    }

    /// The host set, the host buffers, the data-dependent values with the gated
    /// convolutions' weights, and the device state.
    pub(super) fn parts(&mut self) -> (&dyn KernelSet, &mut [AlignedBuf], HostState<'_>, Option<&mut Offload<'p>>) {
        (&*self.set, &mut self.arena, (&mut self.dynamic, &mut self.gated), self.offload.as_mut())
    }

    /// The device state of a device session.
    pub(super) fn offload(&self) -> Option<&Offload<'p>> {
        self.offload.as_ref()
    }

    /// Runs the plan on NCHW `inputs` (in the model's input order) and returns the outputs.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        match self.offload {
            Some(_) => Offload::run(self, inputs),
            None => self.run_timed(inputs, None),
        }
    }

    /// [`Session::run`], adding each step's wall time to `times` (one entry per step). A
    /// device session's profile is [`Session::run_device_profiled`].
    pub fn run_profiled(&mut self, inputs: &[Tensor], times: &mut [std::time::Duration]) -> Result<Vec<Tensor>> {
        if self.offload.is_some() {
            return Err(ModelError::Input("a device session is profiled by `run_device_profiled`".into()));
        }
        if times.len() != self.plan.steps.len() {
            return Err(ModelError::Input(format!("{} timers for {} steps", times.len(), self.plan.steps.len())));
        }
        self.run_timed(inputs, Some(times))
    }

    fn run_timed(&mut self, inputs: &[Tensor], times: Option<&mut [std::time::Duration]>) -> Result<Vec<Tensor>> {
        let plan = self.plan;
        load_inputs(plan, inputs, &mut self.arena)?;
        let par = if self.pool.is_some() { Parallelism::Threads } else { Parallelism::Sequential };
        let (set, arena, dynamic, gated) = (&*self.set, &mut self.arena, &mut self.dynamic, &mut self.gated);
        match &self.pool {
            Some(pool) => pool.install(|| run_steps(plan, set, arena, (dynamic, gated), par, times))?,
            None => run_steps(plan, set, arena, (dynamic, gated), par, times)?,
        }
        read_outputs(plan, &self.arena, &mut self.dynamic)
    }
}

/// The plan's outputs after a run: from their arena words, or taken from the table of
/// data-dependent values.
pub(super) fn read_outputs(plan: &Plan, arena: &[AlignedBuf], dynamic: &mut [Option<Tensor>]) -> Result<Vec<Tensor>> {
    plan.outputs
        .iter()
        .map(|&o| match plan.values[o].dynamic {
            true => dynamic[o]
                .clone()
                .ok_or_else(|| ModelError::Malformed(format!("output `{}` was not computed", plan.values[o].name))),
            false => Ok(plan.read_value(o, &arena[plan.values[o].slot])),
        })
        .collect()
}

fn run_steps(
    plan: &Plan,
    set: &dyn KernelSet,
    arena: &mut [AlignedBuf],
    (dynamic, gated): (&mut [Option<Tensor>], &mut [Option<PackedConv>]),
    par: Parallelism,
    mut times: Option<&mut [std::time::Duration]>,
) -> Result<()> {
    let parallel = par == Parallelism::Threads;
    for (s, ps) in plan.steps.iter().enumerate() {
        let start = times.as_ref().map(|_| std::time::Instant::now());
        let step = &ps.step;
        let out_v = &plan.values[super::memory::writes(step)];
        let mut out_buf = std::mem::take(&mut arena[out_v.slot]);
        let result = {
            let arena = &*arena;
            let val = |v: usize| -> &[f32] { &arena[plan.values[v].slot][..plan.values[v].words()] };
            let out = &mut out_buf[..out_v.words()];
            let in_place = |v: usize| plan.values[v].slot == out_v.slot;
            let step_par = if parallel && worth_threads(plan, step, out.len()) { par } else { Parallelism::Sequential };
            exec_step(plan, set, step, out, &val, &in_place, (dynamic, gated), step_par)
        };
        arena[out_v.slot] = out_buf;
        if let (Some(t), Some(start)) = (times.as_deref_mut(), start) {
            t[s] += start.elapsed();
        }
        result.map_err(|e| step_error(ps, e))?;
    }
    Ok(())
}

/// Checks `inputs` against the plan's (count, FLOAT, shape): their values, in order.
pub(super) fn input_data<'t>(plan: &Plan, inputs: &'t [Tensor]) -> Result<Vec<&'t [f32]>> {
    if inputs.len() != plan.inputs.len() {
        return Err(ModelError::Input(format!("the plan has {} inputs, {} given", plan.inputs.len(), inputs.len())));
    }
    plan.inputs
        .iter()
        .zip(inputs)
        .map(|(&v, t)| {
            let pv = &plan.values[v];
            let data = t.floats().ok_or_else(|| ModelError::Input(format!("input `{}` must be FLOAT", pv.name)))?;
            if t.shape != pv.shape {
                return Err(ModelError::Input(format!(
                    "input `{}` has shape {:?}, the plan expects {:?}",
                    pv.name, t.shape, pv.shape
                )));
            }
            Ok(data)
        })
        .collect()
}

/// Checks `inputs` (see [`input_data`]) and copies them into their slots.
pub(super) fn load_inputs(plan: &Plan, inputs: &[Tensor], arena: &mut [AlignedBuf]) -> Result<()> {
    for (&v, data) in plan.inputs.iter().zip(input_data(plan, inputs)?) {
        arena[plan.values[v].slot][..data.len()].copy_from_slice(data);
    }
    Ok(())
}

/// A kernel's refusal of a step, named after the node it came from.
pub(super) fn step_error(ps: &super::PlannedStep, e: ModelError) -> ModelError {
    match e {
        ModelError::Kernel(k) => {
            ModelError::Unsupported { node: ps.node.clone(), op: ps.op.clone(), reason: k.to_string() }
        }
        other => other,
    }
}

/// Multiply-adds below which a convolution or GEMM runs on the calling thread: waking the
/// pool and splitting the work cost more than such a step takes.
const MIN_PARALLEL_WORK: usize = 1 << 16;
/// Elements below which a data-movement or element-wise step runs on the calling thread.
const MIN_PARALLEL_ELEMENTS: usize = 1 << 13;

fn worth_threads(plan: &Plan, step: &Step, out_len: usize) -> bool {
    let per_output = match step {
        Step::Conv { weights, .. } => {
            let p = plan.convs[*weights].params();
            p.c_in_per_group() * p.kernel[0] * p.kernel[1]
        }
        Step::ExpandDepthwise { expand, depthwise, .. } => {
            let (e, d) = (plan.convs[expand.weights].params(), plan.convs[depthwise.weights].params());
            // Per output value: the depthwise taps, and the expansion of the input pixels the
            // stride steps over.
            e.c_in * d.strides[0] * d.strides[1] + d.kernel[0] * d.kernel[1]
        }
        Step::Gemm { b, .. } => plan.gemms[*b].k(),
        Step::MatMul { dims, .. } => dims.1,
        // Two directions: two chains of time steps, however short.
        Step::Recurrence { cell, .. } => return cell.reverse.len() > 1,
        _ => return out_len >= MIN_PARALLEL_ELEMENTS,
    };
    out_len.saturating_mul(per_output) >= MIN_PARALLEL_WORK
}

/// The pooling parameters of a `Step::Pool`.
pub(super) fn pool_params(pool: &crate::ir::Pool, pads: [usize; 4], average: Option<bool>) -> PoolParams {
    let mode = match average {
        None => PoolMode::Max,
        Some(count_include_pad) => PoolMode::Average { count_include_pad },
    };
    PoolParams { kernel: pool.kernel, strides: pool.strides, dilations: pool.dilations, pads, mode }
}

/// Where a `Step::Resize` writes: NCHW planes when its output value is plain (fused with the
/// relayout of a plan output, `build::resize_to_planes`), else NHWC; and the output's
/// (height, width).
pub(super) fn resize_output(plan: &Plan, output: usize) -> (bool, [usize; 2]) {
    let o = plan.values[output].physical();
    let planes = plan.values[output].layout == Layout::Plain;
    (planes, if planes { [o[2], o[3]] } else { [o[1], o[2]] })
}

/// The physical dims of one part of a `Step::Concat` along `axis` into `output`: a value's
/// own, or for a constant the output's with the constant's extent along the axis.
pub(super) fn concat_part_dims(plan: &Plan, part: Operand, output: usize, axis: usize) -> Vec<usize> {
    match part {
        Operand::Value(v) => plan.values[v].physical(),
        Operand::Const(c) => {
            let mut d = plan.values[output].physical();
            let others: usize = d.iter().enumerate().filter(|&(k, _)| k != axis).map(|(_, &n)| n).product();
            d[axis] = plan.consts[c].len() / others.max(1);
            d
        }
    }
}

/// A convolution's epilogue: the per-channel `bias` constant, `activation`, and the
/// `residual` value read as the `(n·oh·ow) × c` matrix of an NHWC output of dims `od`.
fn conv_epilogue<'a>(
    plan: &'a Plan,
    bias: Option<usize>,
    activation: Activation,
    residual: Option<&'a [f32]>,
    od: [usize; 4],
) -> Result<Epilogue<'a>> {
    let residual = match residual {
        Some(r) => Some(MatRef::row_major(r, od[0] * od[1] * od[2], od[3])?),
        None => None,
    };
    Ok(Epilogue { bias: bias.map_or(Bias::None, |b| Bias::PerCol(&plan.consts[b])), residual, activation })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn exec_step<'a>(
    plan: &'a Plan,
    set: &dyn KernelSet,
    step: &Step,
    out: &mut [f32],
    val: &dyn Fn(usize) -> &'a [f32],
    in_place: &dyn Fn(usize) -> bool,
    (dynamic, gated): (&mut [Option<Tensor>], &mut [Option<PackedConv>]),
    par: Parallelism,
) -> Result<()> {
    let parallel = par == Parallelism::Threads;
    let phys = |v: usize| plan.values[v].physical();
    match step {
        Step::Conv { weights, bias, input, residual, activation, output, gate } => {
            let x = ImageRef::new(val(*input), dims4(&phys(*input)))?;
            let od = dims4(&phys(*output));
            let epi = conv_epilogue(plan, *bias, *activation, residual.map(val), od)?;
            let packed = &plan.convs[*weights];
            let weights = match gate {
                None => packed,
                Some(g) => {
                    let copy = gated.get_mut(*weights).ok_or_else(|| {
                        ModelError::Malformed("a gated convolution runs only in a CPU session".into())
                    })?;
                    let copy = copy.get_or_insert_with(|| packed.clone());
                    packed.scale_inputs_into(val(*g), copy, par)?;
                    &*copy
                }
            };
            set.conv2d(x, weights, ImageMut::new(out, od)?, &epi, par)?;
        }
        Step::ExpandDepthwise { expand, depthwise, input, residual, output } => {
            let x = ImageRef::new(val(*input), dims4(&phys(*input)))?;
            let od = dims4(&phys(*output));
            let e_epi = conv_epilogue(plan, expand.bias, expand.activation, None, od)?;
            let d_epi = conv_epilogue(plan, depthwise.bias, depthwise.activation, residual.map(val), od)?;
            let (e, d) = (&plan.convs[expand.weights], &plan.convs[depthwise.weights]);
            set.conv2d_expand_depthwise(x, [(e, &e_epi), (d, &d_epi)], ImageMut::new(out, od)?, par)?;
        }
        Step::Map { input, ops: chain, channels, .. } => {
            if !in_place(*input) {
                out.copy_from_slice(val(*input));
            }
            ops::map(set, out, chain, &plan.consts, *channels, parallel)?;
        }
        Step::Binary { op, a, b, output } => binary_step(plan, *op, (*a, *b), output.1, val, in_place, out, parallel)?,
        Step::GlobalAveragePool { input, .. } => {
            let [n, h, w, c] = dims4(&phys(*input));
            let params = PoolParams::global_average([h, w]);
            let x = ImageRef::new(val(*input), [n, h, w, c])?;
            set.pool2d(x, ImageMut::new(out, [n, 1, 1, c])?, &params, par)?;
        }
        Step::Pool { pool, pads, average, input, output } => {
            let params = pool_params(pool, *pads, *average);
            let x = ImageRef::new(val(*input), dims4(&phys(*input)))?;
            set.pool2d(x, ImageMut::new(out, dims4(&phys(*output)))?, &params, par)?;
        }
        Step::Resize { resize, scales, input, output } => {
            let (planes, ohw) = resize_output(plan, *output);
            ops::resize(val(*input), dims4(&phys(*input)), resize, *scales, out, ohw, planes, parallel);
        }
        Step::Concat { inputs, axis, output } => {
            let parts: Vec<(&[f32], Vec<usize>)> = inputs
                .iter()
                .map(|&o| (ops::operand(o, &plan.consts, val), concat_part_dims(plan, o, *output, *axis)))
                .collect();
            ops::concat(&parts, *axis, out, parallel);
        }
        Step::Relayout { input, .. } => {
            let v = &plan.values[*input];
            ops::relayout(val(*input), dims4(&v.shape), v.layout == Layout::Plain, out, parallel);
        }
        Step::DepthToSpace { input, block, .. } => {
            ops::depth_to_space(val(*input), dims4(&phys(*input)), *block, out, parallel)
        }
        Step::Copy { input: Operand::Value(v), .. } if in_place(*v) => {}
        Step::Copy { input, .. } => ops::copy(ops::operand(*input, &plan.consts, val), out, parallel),
        Step::Gemm { a, b, bias, activation, output } => {
            gemm_step(plan, set, (*a, *b, *output), (*bias, *activation), val, out, par)?
        }
        Step::MatMul { a, b, dims, batch, a_strides, b_strides, .. } => {
            let (a, b) = ((val(*a), a_strides.as_slice()), (val(*b), b_strides.as_slice()));
            matmul_step(set, a, b, *dims, batch, out, par)?
        }
        Step::Transpose { input, perm, .. } => ops::transpose(val(*input), &plan.values[*input].shape, perm, out),
        Step::Crop { input, outer, stride, start, len, .. } => {
            ops::crop(val(*input), [*outer, *stride, *start, *len], out, parallel)
        }
        Step::Gather { input, outer, stride, inner, indices, .. } => {
            ops::gather(val(*input), [*outer, *stride, *inner], indices, out, parallel)
        }
        Step::LayerNorm { input, len, scale, bias, epsilon, .. } => {
            let bias = bias.map(|b| plan.consts[b].as_slice());
            let norm = RowNorm::LayerNorm { scale: &plan.consts[*scale], bias, epsilon: *epsilon };
            let x = val(*input);
            set.normalize_rows(norm, x, *len, &mut out[..x.len()], par)?
        }
        Step::GroupNorm { input, len, channel_len, scale, bias, epsilon, .. } => {
            let (scale, bias) = (plan.consts[*scale].as_slice(), plan.consts[*bias].as_slice());
            let channels = match plan.values[*input].layout {
                Layout::Nhwc => Channels::Interleaved,
                Layout::Plain => Channels::Planes(*channel_len),
            };
            let norm = RowNorm::GroupNorm { scale, bias, channels, epsilon: *epsilon };
            let x = val(*input);
            set.normalize_rows(norm, x, *len, &mut out[..x.len()], par)?
        }
        Step::Recurrence { cell, xw, .. } => {
            super::recurrent::run(set, cell, &plan.consts, &plan.gemms, val(*xw), out, parallel)?
        }
        Step::Softmax { input, dims, .. } => match *dims {
            // Along the last axis: the kernel set's row kernel.
            (outer, len, 1) if len > 0 => {
                let n = outer * len;
                set.normalize_rows(RowNorm::Softmax, &val(*input)[..n], len, &mut out[..n], par)?
            }
            dims => {
                out.copy_from_slice(val(*input));
                loops::softmax(out, dims)
            }
        },
        Step::Eval { .. } => super::eval::run(plan, step, val, out, dynamic)?,
    }
    Ok(())
}

/// A `Gemm` step: rows of value `a` times packed weights `b`, bias and activation fused.
fn gemm_step<'a>(
    plan: &'a Plan,
    set: &dyn KernelSet,
    (a, b, output): (usize, usize, usize),
    (bias, activation): (Option<usize>, kernels::Activation),
    val: &dyn Fn(usize) -> &'a [f32],
    out: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let s = &plan.values[a].shape;
    let o = &plan.values[output].shape;
    let (m, k, n) = (super::gemm_rows(s), s[s.len() - 1], o[o.len() - 1]);
    let epi =
        Epilogue { bias: bias.map_or(Bias::None, |b| Bias::PerCol(&plan.consts[b])), activation, ..Epilogue::none() };
    let a = MatRef::row_major(val(a), m, k)?;
    set.gemm(a, BOperand::Packed(&plan.gemms[b]), MatMut::row_major(out, m, n)?, &epi, par)?;
    Ok(())
}

/// A batched `MatMul` of two values: one `m × k` by `k × n` product per batch index, each
/// operand at its own batch strides (0 where it broadcasts).
fn matmul_step(
    set: &dyn KernelSet,
    (av, a_strides): (&[f32], &[usize]),
    (bv, b_strides): (&[f32], &[usize]),
    (m, k, n): (usize, usize, usize),
    batch: &[usize],
    out: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let count: usize = batch.iter().product();
    for (i, c) in out.chunks_mut(m * n).enumerate().take(count) {
        let (ao, bo) = kernels::device::batch_offsets(i, batch, a_strides, b_strides);
        let am = MatRef::row_major(&av[ao..ao + m * k], m, k)?;
        let bm = MatRef::row_major(&bv[bo..bo + k * n], k, n)?;
        set.gemm(am, BOperand::Matrix(bm), MatMut::row_major(c, m, n)?, &Epilogue::none(), par)?;
    }
    Ok(())
}

/// A broadcasting binary step; its left operand may share the output's buffer, its right
/// one may not.
#[allow(clippy::too_many_arguments)]
fn binary_step<'a>(
    plan: &'a Plan,
    op: crate::ir::Binary,
    (a, b): ((Operand, [usize; 4]), (Operand, [usize; 4])),
    dims: [usize; 4],
    val: &dyn Fn(usize) -> &'a [f32],
    in_place: &dyn Fn(usize) -> bool,
    out: &mut [f32],
    parallel: bool,
) -> Result<()> {
    let read = |o: Operand| ops::operand(o, &plan.consts, val);
    let a_src = match a.0 {
        Operand::Value(v) if in_place(v) => loops::Src::Output,
        o => loops::Src::Slice(read(o)),
    };
    if matches!(b.0, Operand::Value(v) if in_place(v)) {
        return Err(ModelError::Malformed("a binary step's right operand shares the output buffer".into()));
    }
    loops::binary(op.into(), (a_src, a.1), (read(b.0), b.1), dims, out, parallel);
    Ok(())
}
