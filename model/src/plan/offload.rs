//! Sessions whose tensors live where the kernel set keeps them ([`kernels::device`]): the
//! GPU's memory for the CUDA set, host buffers for a CPU set's device.
//!
//! A plan's weights, constants and operations are loaded once per precision
//! ([`DeviceWeights`]) and shared by every session made from them; each session has a
//! workspace of its own (on a GPU: a stream and one buffer per slot of the memory plan), so
//! sessions in different threads overlap on the device. When every step has a device form, a
//! run is one upload per input, the operations captured once as a CUDA graph and replayed (one
//! launch), and one download per output. Otherwise a value written on the device stays there
//! until a host step (or the caller) reads it, and a host-written value is copied up only when
//! a device step reads it.

use std::sync::Arc;

use kernels::device::{Handle, LoadedModel, ModelData, Precision, Workspace};
use kernels::{KernelSet, Parallelism};

use super::device_ops::{handle, op};
use super::exec::{exec_step, input_data, load_inputs, read_outputs, step_error, HostState, Session};
use super::{inputs_of, output_of, Plan};
use crate::error::{ModelError, Result};
use crate::tensor::Tensor;

/// A plan's weights, constants and device operations in one precision on its kernel set's
/// device, loaded once and read by every session made from them ([`DeviceWeights::session`]).
pub struct DeviceWeights<'p> {
    plan: &'p Plan,
    loaded: Arc<dyn LoadedModel>,
    /// Per step: its operation's index, or `None` where it runs on the host.
    ops: Vec<Option<usize>>,
    /// Every step on the device and every input and output a float of fixed size: a run is
    /// uploads, one captured launch, downloads.
    whole: bool,
    /// The device, in words.
    device: String,
}

/// A session's state on the device.
pub(super) struct Offload<'p> {
    weights: Arc<DeviceWeights<'p>>,
    ws: Box<dyn Workspace>,
    /// Whole-device plans: whether the run was captured, or why not (the operations are then
    /// launched one by one); `None` before the first run.
    captured: Option<std::result::Result<(), ModelError>>,
    on_host: Vec<bool>,
    on_device: Vec<bool>,
    /// Host↔device copies of the last run: (uploads, downloads).
    transfers: (usize, usize),
}

impl Plan {
    /// This plan's weights on its kernel set's device, stored in `precision`, for any number of
    /// sessions.
    pub fn device_weights(&self, precision: Precision) -> Result<Arc<DeviceWeights<'_>>> {
        let set = kernels::kernel_set(self.kernel_set)?;
        self.device_weights_on(&*set, precision)
    }

    /// [`Plan::device_weights`] on `set`'s device; `set` must be the one the plan was packed for.
    pub fn device_weights_on(&self, set: &dyn KernelSet, precision: Precision) -> Result<Arc<DeviceWeights<'_>>> {
        if set.info().name != self.kernel_name {
            return Err(ModelError::Input(format!(
                "the plan was packed for kernel set `{}`, not `{}`",
                self.kernel_name,
                set.info().name
            )));
        }
        let device = set.device()?;
        let mut ops = Vec::new();
        let index: Vec<Option<usize>> = self
            .steps
            .iter()
            .map(|ps| {
                op(self, &ps.step).map(|o| {
                    ops.push(o);
                    ops.len() - 1
                })
            })
            .collect();
        let data =
            ModelData { convs: &self.convs, gemms: &self.gemms, consts: &self.consts, ops: &ops, buffers: &self.slots };
        let loaded = device.load(&data, precision)?;
        let whole = index.iter().all(Option::is_some)
            && self
                .inputs
                .iter()
                .chain(&self.outputs)
                .all(|&v| !self.values[v].dynamic && !self.values[v].dtype.is_int());
        Ok(Arc::new(DeviceWeights { plan: self, loaded, ops: index, whole, device: device.describe() }))
    }

    /// A session on this plan's kernel set's device, storing activations and weights in
    /// `precision` (weights of its own: [`DeviceWeights::session`] shares them).
    pub fn device_session(&self, precision: Precision) -> Result<Session<'_>> {
        self.device_weights(precision)?.session()
    }
}

impl<'p> DeviceWeights<'p> {
    /// A session over these weights with a workspace of its own (its run is captured on its
    /// first run; whole-device plans' inputs and outputs get page-locked buffers).
    pub fn session(self: &Arc<Self>) -> Result<Session<'p>> {
        let plan = self.plan;
        let mut ws = Arc::clone(&self.loaded).workspace()?;
        if self.whole {
            let hs = |vs: &[usize]| -> Vec<Handle> { vs.iter().map(|&v| handle(plan, v)).collect() };
            ws.bind(&hs(&plan.inputs), &hs(&plan.outputs))?;
        }
        let n = plan.values.len();
        let offload = Offload {
            weights: Arc::clone(self),
            ws,
            captured: None,
            on_host: vec![false; n],
            on_device: vec![false; n],
            transfers: (0, 0),
        };
        Session::with_device(plan, kernels::kernel_set(plan.kernel_set)?, offload)
    }

    /// Whether every step runs on the device.
    pub fn whole_on_device(&self) -> bool {
        self.whole
    }

    /// The device, in words.
    pub fn device(&self) -> &str {
        &self.device
    }
}

impl<'p> Offload<'p> {
    /// A run on the device (every step there, or some on the host through `session`'s
    /// buffers): the outputs.
    pub(super) fn run(session: &mut Session<'p>, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let plan = session.plan;
        let (set, arena, (dynamic, gated), d) = session.parts();
        let d = d.ok_or_else(not_on_device)?;
        d.on_host.fill(false);
        d.on_device.fill(false);
        d.transfers = (0, 0);
        if d.weights.whole {
            for (&v, data) in plan.inputs.iter().zip(input_data(plan, inputs)?) {
                d.ws.upload(data, handle(plan, v))?;
                d.transfers.0 += 1;
            }
            d.launch_whole()?;
            for &o in &plan.outputs {
                let pv = &plan.values[o];
                d.ws.download(handle(plan, o), &mut arena[pv.slot][..pv.len()])?;
                d.transfers.1 += 1;
            }
            return read_outputs(plan, arena, dynamic);
        }
        load_inputs(plan, inputs, arena)?;
        for &v in &plan.inputs {
            d.on_host[v] = true;
        }
        for (s, ps) in plan.steps.iter().enumerate() {
            let result = match d.weights.ops[s] {
                Some(k) => {
                    inputs_of(&ps.step).into_iter().try_for_each(|v| d.send_to_device(v, arena)).and_then(|_| {
                        d.ws.launch(k)?;
                        let out = output_of(&ps.step);
                        (d.on_device[out], d.on_host[out]) = (true, false);
                        Ok(())
                    })
                }
                None => d.host_step(s, set, arena, (&mut *dynamic, &mut *gated)),
            };
            result.map_err(|e| step_error(ps, e))?;
        }
        for &o in &plan.outputs {
            if !plan.values[o].dynamic {
                d.fetch_to_host(o, arena)?;
            }
        }
        read_outputs(plan, arena, dynamic)
    }

    /// The operations of a whole-device run: captured on the first run, replayed on every one
    /// (launched one by one where the capture failed).
    fn launch_whole(&mut self) -> Result<()> {
        // Every step is an operation, numbered in step order.
        let n = self.weights.ops.len();
        if self.captured.is_none() {
            let all: Vec<usize> = (0..n).collect();
            self.captured = Some(self.ws.capture(&all).map_err(ModelError::from));
        }
        if !self.ws.replay()? {
            (0..n).try_for_each(|k| self.ws.launch(k))?;
        }
        Ok(())
    }

    fn fetch_to_host(&mut self, v: usize, arena: &mut [kernels::AlignedBuf]) -> Result<()> {
        if self.on_host[v] {
            return Ok(());
        }
        let pv = &self.weights.plan.values[v];
        if !self.on_device[v] {
            return Err(ModelError::Malformed(format!("value `{}` is read before any step writes it", pv.name)));
        }
        self.ws.download(handle(self.weights.plan, v), &mut arena[pv.slot][..pv.len()])?;
        self.on_host[v] = true;
        self.transfers.1 += 1;
        Ok(())
    }

    fn send_to_device(&mut self, v: usize, arena: &[kernels::AlignedBuf]) -> Result<()> {
        if self.on_device[v] {
            return Ok(());
        }
        let pv = &self.weights.plan.values[v];
        if !self.on_host[v] {
            return Err(ModelError::Malformed(format!("value `{}` is read before any step writes it", pv.name)));
        }
        self.ws.upload(&arena[pv.slot][..pv.len()], handle(self.weights.plan, v))?;
        self.on_device[v] = true;
        self.transfers.0 += 1;
        Ok(())
    }

    /// Runs step `s` on the host set, its inputs fetched first.
    fn host_step(
        &mut self,
        s: usize,
        set: &dyn KernelSet,
        arena: &mut [kernels::AlignedBuf],
        state: HostState<'_>,
    ) -> Result<()> {
        let plan = self.weights.plan;
        let step = &plan.steps[s].step;
        for v in inputs_of(step) {
            self.fetch_to_host(v, arena)?;
        }
        let out = output_of(step);
        let out_v = &plan.values[out];
        let mut out_buf = std::mem::take(&mut arena[out_v.slot]);
        let result = {
            let arena = &*arena;
            let val = |v: usize| -> &[f32] { &arena[plan.values[v].slot][..plan.values[v].words()] };
            let in_place = |v: usize| plan.values[v].slot == out_v.slot;
            let words = &mut out_buf[..out_v.words()];
            exec_step(plan, set, step, words, &val, &in_place, state, Parallelism::Sequential)
        };
        arena[out_v.slot] = out_buf;
        result?;
        (self.on_host[out], self.on_device[out]) = (true, false);
        Ok(())
    }
}

fn not_on_device() -> ModelError {
    ModelError::Input("the session keeps its tensors on the host (a device session comes from `device_session`)".into())
}

impl<'p> Session<'p> {
    /// Host↔device copies made by the last run of a device session: `(uploads, downloads)`;
    /// `(0, 0)` for a host session.
    pub fn transfers(&self) -> (usize, usize) {
        self.offload().map_or((0, 0), |d| d.transfers)
    }

    /// Whether every step runs on the device (a run is then one captured launch between the
    /// uploads and the downloads); false for a host session.
    pub fn whole_on_device(&self) -> bool {
        self.offload().is_some_and(|d| d.weights.whole)
    }

    /// The device a device session runs on, in words.
    pub fn device(&self) -> Option<&str> {
        self.offload().map(|d| d.weights.device.as_str())
    }

    /// Why the run could not be captured as one launch (its operations are then launched one
    /// by one), if it could not.
    pub fn graph_error(&self) -> Option<&ModelError> {
        self.offload().and_then(|d| d.captured.as_ref()?.as_ref().err())
    }

    /// Names of the steps a device session runs on the host.
    pub fn host_steps(&self) -> Vec<&str> {
        let Some(d) = self.offload() else { return Vec::new() };
        let steps = self.plan.steps.iter().zip(&d.weights.ops);
        steps.filter(|(_, k)| k.is_none()).map(|(ps, _)| ps.op.as_str()).collect()
    }

    /// The page-locked buffer of input `i` (in the plan's order; NCHW values) of a
    /// whole-device session: what a caller fills (from its decoder, say) before
    /// [`Self::run_bound`] so that the input crosses the bus in one DMA transfer.
    pub fn input_mut(&mut self, i: usize) -> Result<&mut [f32]> {
        Ok(self.offload_mut()?.ws.bound_input(i)?)
    }

    /// The page-locked buffer of output `o` (in the plan's order; NCHW values), as the last
    /// [`Self::run_bound`] left it.
    pub fn output(&mut self, o: usize) -> Result<&[f32]> {
        Ok(self.offload_mut()?.ws.bound_output(o)?)
    }

    /// A run of a whole-device plan from the page-locked inputs ([`Self::input_mut`]) into the
    /// page-locked outputs ([`Self::output`]): one DMA transfer per input, the captured run,
    /// one DMA transfer per output, then a wait for all of them.
    pub fn run_bound(&mut self) -> Result<()> {
        let host = self.host_steps().len();
        let (n_in, n_out) = (self.plan.inputs.len(), self.plan.outputs.len());
        let d = self.offload_mut()?;
        if !d.weights.whole {
            return Err(ModelError::Input(format!(
                "page-locked runs need every step on the device ({host} run on the host)"
            )));
        }
        d.ws.upload_bound()?;
        d.launch_whole()?;
        d.ws.download_bound()?;
        d.ws.synchronize()?;
        d.transfers = (n_in, n_out);
        Ok(())
    }

    /// A run of a whole-device plan, operation by operation with the device time of each step
    /// (ms) in `times` (one entry per step), and of the uploads, the steps and the downloads as
    /// a whole: `(outputs, [upload, steps, download] ms)`. Each launch is waited for: a
    /// profile, not the captured run's timing.
    pub fn run_device_profiled(&mut self, inputs: &[Tensor], times: &mut [f64]) -> Result<(Vec<Tensor>, [f64; 3])> {
        let plan = self.plan;
        let host = self.host_steps().len();
        let (_, arena, (dynamic, _), d) = self.parts();
        let d = d.ok_or_else(not_on_device)?;
        if !d.weights.whole || times.len() != plan.steps.len() {
            return Err(ModelError::Input(format!(
                "a profile needs every step on the device ({host} on the host) and one timer per step ({} for {})",
                times.len(),
                plan.steps.len()
            )));
        }
        let data = input_data(plan, inputs)?;
        let mut phases = [0.0; 3];
        phases[0] =
            d.ws.time(&mut |ws| plan.inputs.iter().zip(&data).try_for_each(|(&v, x)| ws.upload(x, handle(plan, v))))?;
        for (s, k) in d.weights.ops.iter().enumerate() {
            let k = k.expect("a whole-device plan");
            times[s] = d.ws.time(&mut |ws| ws.launch(k)).map_err(|e| step_error(&plan.steps[s], e.into()))?;
            phases[1] += times[s];
        }
        phases[2] = d.ws.time(&mut |ws| {
            plan.outputs.iter().try_for_each(|&o| {
                let pv = &plan.values[o];
                ws.download(handle(plan, o), &mut arena[pv.slot][..pv.len()])
            })
        })?;
        d.transfers = (plan.inputs.len(), plan.outputs.len());
        Ok((read_outputs(plan, arena, dynamic)?, phases))
    }

    fn offload_mut(&mut self) -> Result<&mut Offload<'p>> {
        self.parts().3.ok_or_else(not_on_device)
    }
}
