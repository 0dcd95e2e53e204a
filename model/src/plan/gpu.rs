//! Running a plan on an NVIDIA GPU (feature `cuda`): every step with a device form
//! (`gpu_steps`) on the GPU, the others on the host, each value kept where it was last
//! written.
//!
//! Weights, biases and constants are uploaded once per model ([`GpuWeights`]) and shared by
//! every session made from them; each session has a lane of its own (a stream and split-K
//! workspace: [`Gpu::lane`]), its own activations and captured graph, so sessions in different
//! threads overlap on the device. When every step
//! runs on the device, a run is one upload per input, the steps captured once as a CUDA graph
//! and replayed (one launch), and one download per output; an f16 session's inputs and outputs
//! cross the bus in f32 and change precision on the device. Otherwise a value written by a GPU
//! step stays on the device until a host step (or the caller) reads it, and a host-written
//! value is copied up only when a GPU step reads it.

use std::sync::Arc;

use kernels::cuda::{DeviceConv, DeviceGraph, DeviceMatrix, DeviceTensor, Gpu, PinnedBuf, Precision};
use kernels::{AlignedBuf, KernelSet, KernelSetId, Parallelism};

use super::exec::{exec_step, input_data, load_inputs, step_error};
use super::gpu_steps::{prepare, DeviceStep};
use super::{inputs_of, output_of, Plan};
use crate::error::{ModelError, Result};
use crate::tensor::Tensor;

/// A plan's weights, biases and step constants on the GPU in one precision, uploaded once and
/// read by every session made from them ([`GpuWeights::session`]).
pub struct GpuWeights<'p> {
    plan: &'p Plan,
    precision: Precision,
    convs: Vec<DeviceConv>,
    gemms: Vec<DeviceMatrix>,
    /// Per step: its device form, or `None` where it runs on the host.
    device_steps: Vec<Option<DeviceStep>>,
    /// Every step on the device: a run is uploads, one graph, downloads.
    whole: bool,
    /// The lane the uploads went through (synchronized before any session reads them).
    gpu: Arc<Gpu>,
}

/// A plan bound to the GPU: shared device weights, the session's own lane, device and host
/// buffers, reused across runs.
pub struct GpuSession<'p> {
    weights: Arc<GpuWeights<'p>>,
    set: Box<dyn KernelSet>,
    /// This session's lane: its stream orders the session's copies and launches.
    gpu: Arc<Gpu>,
    /// The captured run of a whole-device plan (made by the first run), or why it could not
    /// be captured (the steps are then launched one by one).
    graph: Option<Result<DeviceGraph>>,
    arena: Vec<AlignedBuf>,
    /// Data-dependent values of the current run.
    dynamic: Vec<Option<Tensor>>,
    /// Per value: its device copy, once a GPU step has touched it.
    device: Vec<Option<DeviceTensor>>,
    /// f16 sessions of a whole-device plan: the f32 device copies of inputs and outputs.
    staging: Vec<Option<DeviceTensor>>,
    /// Whole-device plans: page-locked host buffers of the inputs and outputs, in the plan's
    /// order ([`GpuSession::run_bound`]).
    pinned_in: Vec<PinnedBuf>,
    pinned_out: Vec<PinnedBuf>,
    on_host: Vec<bool>,
    on_device: Vec<bool>,
    /// Host↔device copies of the last run: (uploads, downloads).
    transfers: (usize, usize),
}

/// The device tensor an input or output `v` of a whole-device plan crosses the bus through:
/// its f32 staging in f16 sessions, else its own buffer (both made with the session).
fn boundary<'a>(staging: &'a [Option<DeviceTensor>], device: &'a [Option<DeviceTensor>], v: usize) -> &'a DeviceTensor {
    staging[v].as_ref().or(device[v].as_ref()).expect("allocated when the session was made")
}

/// [`boundary`], writable.
fn boundary_mut<'a>(
    staging: &'a mut [Option<DeviceTensor>],
    device: &'a mut [Option<DeviceTensor>],
    v: usize,
) -> &'a mut DeviceTensor {
    staging[v].as_mut().or(device[v].as_mut()).expect("allocated when the session was made")
}

fn no_binding(what: &str, i: usize, n: usize) -> ModelError {
    ModelError::Input(format!(
        "no page-locked {what} {i}: the session has {n} (only plans with every step on the device have them)"
    ))
}

impl Plan {
    /// This plan's weights on this process's GPU, stored in `precision`, for any number of
    /// sessions. The plan must have been built for the CUDA set (`kernel_set(KernelSetId::Cuda)`).
    pub fn gpu_weights(&self, precision: Precision) -> Result<Arc<GpuWeights<'_>>> {
        if self.kernel_set != KernelSetId::Cuda {
            return Err(ModelError::Input(format!(
                "the plan was packed for kernel set `{}`; a GPU session needs one built for `cuda`",
                self.kernel_name
            )));
        }
        let gpu = kernels::cuda::gpu()?;
        let convs = self.convs.iter().map(|c| DeviceConv::upload(&gpu, c, precision)).collect::<Result<_, _>>()?;
        let gemms = self.gemms.iter().map(|b| DeviceMatrix::upload(&gpu, b, precision)).collect::<Result<_, _>>()?;
        let device_steps: Vec<_> =
            self.steps.iter().map(|ps| prepare(self, &ps.step, &gpu, precision)).collect::<Result<_>>()?;
        let whole = device_steps.iter().all(Option::is_some)
            && self
                .inputs
                .iter()
                .chain(&self.outputs)
                .all(|&v| !self.values[v].dynamic && !self.values[v].dtype.is_int());
        // Sessions read the weights from lanes of their own: the uploads must be done.
        gpu.synchronize()?;
        Ok(Arc::new(GpuWeights { plan: self, precision, convs, gemms, device_steps, whole, gpu }))
    }

    /// A session on this process's GPU, storing activations and weights in `precision` (weights
    /// of its own: [`GpuWeights::session`] shares them).
    pub fn gpu_session(&self, precision: Precision) -> Result<GpuSession<'_>> {
        self.gpu_weights(precision)?.session()
    }
}

impl<'p> GpuWeights<'p> {
    /// A session over these weights with a lane, activations and page-locked buffers of its
    /// own (its graph is captured on its first run).
    pub fn session(self: &Arc<Self>) -> Result<GpuSession<'p>> {
        let plan = self.plan;
        let set = kernels::kernel_set(KernelSetId::Cuda)?;
        let gpu = self.gpu.lane()?;
        let n = plan.values.len();
        let mut s = GpuSession {
            weights: Arc::clone(self),
            set,
            gpu,
            graph: None,
            arena: plan.slots.iter().map(|&n| AlignedBuf::zeroed(n)).collect(),
            dynamic: vec![None; n],
            device: (0..n).map(|_| None).collect(),
            staging: (0..n).map(|_| None).collect(),
            pinned_in: Vec::new(),
            pinned_out: Vec::new(),
            on_host: vec![false; n],
            on_device: vec![false; n],
            transfers: (0, 0),
        };
        if self.whole {
            // Every buffer a run touches exists before the run is captured.
            for ps in &plan.steps {
                for v in inputs_of(&ps.step).into_iter().chain([output_of(&ps.step)]) {
                    s.device_buffer(v)?;
                }
            }
            for &v in plan.inputs.iter().chain(&plan.outputs) {
                s.device_buffer(v)?;
                if self.precision == Precision::F16 {
                    s.staging[v] = Some(s.gpu.zeros(plan.values[v].len(), Precision::F32)?);
                }
            }
            let pinned =
                |vs: &[usize]| vs.iter().map(|&v| s.gpu.pinned(plan.values[v].len())).collect::<Result<_, _>>();
            (s.pinned_in, s.pinned_out) = (pinned(&plan.inputs)?, pinned(&plan.outputs)?);
        }
        Ok(s)
    }

    /// Whether every step runs on the device.
    pub fn whole_on_device(&self) -> bool {
        self.whole
    }
}

impl GpuSession<'_> {
    /// Runs the plan on NCHW `inputs` and returns the outputs (on the host).
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.on_host.fill(false);
        self.on_device.fill(false);
        self.transfers = (0, 0);
        if self.weights.whole {
            self.run_whole(inputs)
        } else {
            self.run_mixed(inputs)
        }
    }

    /// A run of a whole-device plan, step by step with the device time of each (ms) in
    /// `times` (one entry per step), and of the uploads, the steps and the downloads as a
    /// whole: `(outputs, [upload, steps, download] ms)`. The steps are launched one by one,
    /// each waited for: a profile, not the graph's timing.
    pub fn run_profiled(&mut self, inputs: &[Tensor], times: &mut [f64]) -> Result<(Vec<Tensor>, [f64; 3])> {
        let plan = self.weights.plan;
        self.transfers = (0, 0);
        if !self.weights.whole || times.len() != plan.steps.len() {
            return Err(ModelError::Input(format!(
                "a profile needs every step on the device ({} on the host) and one timer per step ({} for {})",
                self.host_steps().len(),
                times.len(),
                plan.steps.len()
            )));
        }
        let gpu = Arc::clone(&self.gpu);
        let data = input_data(plan, inputs)?;
        let mut phases = [0.0; 3];
        phases[0] = gpu.elapsed_ms(|| self.upload_inputs(&data))?;
        phases[1] = self.issue_all(Some(times))?;
        phases[2] = gpu.elapsed_ms(|| self.download_outputs())?;
        Ok((super::exec::read_outputs(plan, &self.arena, &mut self.dynamic)?, phases))
    }

    /// Host↔device copies made by the last run: `(uploads, downloads)`.
    pub fn transfers(&self) -> (usize, usize) {
        self.transfers
    }

    /// Whether every step runs on the device (a run is then one graph launch between the
    /// uploads and the downloads).
    pub fn whole_on_device(&self) -> bool {
        self.weights.whole
    }

    /// Why the run could not be captured as a CUDA graph (its steps are then launched one by
    /// one), if it could not.
    pub fn graph_error(&self) -> Option<&ModelError> {
        match &self.graph {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Names of the steps that run on the host.
    pub fn host_steps(&self) -> Vec<&str> {
        let steps = self.weights.plan.steps.iter().zip(&self.weights.device_steps);
        steps.filter(|(_, d)| d.is_none()).map(|(ps, _)| ps.op.as_str()).collect()
    }

    /// The GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The page-locked buffer of input `i` (in the plan's order; NCHW values) of a
    /// whole-device plan: what a caller fills (from its decoder, say) before [`Self::run_bound`]
    /// so that the input crosses the bus in one DMA transfer, with no copy on the host.
    pub fn input_mut(&mut self, i: usize) -> Result<&mut [f32]> {
        let n = self.pinned_in.len();
        let buf = self.pinned_in.get_mut(i).ok_or_else(|| no_binding("input", i, n))?;
        Ok(buf.as_mut_slice()?)
    }

    /// The page-locked buffer of output `o` (in the plan's order; NCHW values), as the last
    /// [`Self::run_bound`] left it.
    pub fn output(&self, o: usize) -> Result<&[f32]> {
        let buf = self.pinned_out.get(o).ok_or_else(|| no_binding("output", o, self.pinned_out.len()))?;
        Ok(buf.as_slice()?)
    }

    /// A run of a whole-device plan from the page-locked inputs ([`Self::input_mut`]) into the
    /// page-locked outputs ([`Self::output`]): one DMA transfer per input, the captured steps,
    /// one DMA transfer per output, then a wait for all of them.
    pub fn run_bound(&mut self) -> Result<()> {
        if !self.weights.whole {
            return Err(ModelError::Input(format!(
                "page-locked runs need every step on the device ({} run on the host)",
                self.host_steps().len()
            )));
        }
        self.transfers = (0, 0);
        for (k, &v) in self.weights.plan.inputs.iter().enumerate() {
            let target = boundary_mut(&mut self.staging, &mut self.device, v);
            self.gpu.write_pinned(&self.pinned_in[k], target)?;
            self.transfers.0 += 1;
        }
        self.launch_whole()?;
        for (k, &o) in self.weights.plan.outputs.iter().enumerate() {
            let t = boundary(&self.staging, &self.device, o);
            self.gpu.read_pinned(t, &mut self.pinned_out[k])?;
            self.transfers.1 += 1;
        }
        Ok(self.gpu.synchronize()?)
    }

    /// A whole-device run: uploads, the captured steps, downloads.
    fn run_whole(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let plan = self.weights.plan;
        self.upload_inputs(&input_data(plan, inputs)?)?;
        self.launch_whole()?;
        self.download_outputs()?;
        super::exec::read_outputs(plan, &self.arena, &mut self.dynamic)
    }

    /// The steps of a whole-device run: captured as a CUDA graph on the first run, replayed on
    /// every one (launched one by one where the capture failed).
    fn launch_whole(&mut self) -> Result<()> {
        if self.graph.is_none() {
            let gpu = Arc::clone(&self.gpu);
            let captured = gpu.capture(|| self.issue_all(None).map(|_| ()));
            self.graph = Some(captured);
        }
        match &self.graph {
            Some(Ok(g)) => self.gpu.replay(g)?,
            _ => {
                self.issue_all(None)?;
            }
        }
        Ok(())
    }

    /// Copies a whole-device run's inputs to the device (f16 sessions: to the f32 staging).
    fn upload_inputs(&mut self, data: &[&[f32]]) -> Result<()> {
        for (&v, d) in self.weights.plan.inputs.iter().zip(data) {
            let target = boundary_mut(&mut self.staging, &mut self.device, v);
            self.gpu.write(d, target)?;
            self.transfers.0 += 1;
        }
        Ok(())
    }

    /// Copies a whole-device run's outputs into their arena slots.
    fn download_outputs(&mut self) -> Result<()> {
        let plan = self.weights.plan;
        for &o in &plan.outputs {
            let pv = &plan.values[o];
            let t = boundary(&self.staging, &self.device, o);
            self.gpu.download(t, &mut self.arena[pv.slot][..pv.len()])?;
            self.transfers.1 += 1;
        }
        Ok(())
    }

    /// Every launch of a whole-device run (inputs to f16, the steps, outputs to f32); with
    /// `times` (one per step), each launch is waited for and timed, step `s`'s device time
    /// lands in `times[s]`, and the total is returned (0 without).
    fn issue_all(&mut self, mut times: Option<&mut [f64]>) -> Result<f64> {
        let plan = self.weights.plan;
        let gpu = Arc::clone(&self.gpu);
        // With `times`: each launch waited for, its device time returned.
        let timed = times.is_some();
        let launch = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
            match timed {
                true => gpu.elapsed_ms(f),
                false => f().map(|_| 0.0),
            }
        };
        let mut total = 0.0;
        for &v in &plan.inputs {
            if let (Some(s), Some(t)) = (&self.staging[v], self.device[v].as_mut()) {
                total += launch(&mut || Ok(gpu.convert(s, t)?))?;
            }
        }
        for s in 0..plan.steps.len() {
            let ms = launch(&mut || self.gpu_step(s).map_err(|e| step_error(&plan.steps[s], e)))?;
            if let Some(t) = times.as_deref_mut() {
                t[s] = ms;
            }
            total += ms;
        }
        for &o in &plan.outputs {
            if let (Some(s), Some(t)) = (self.staging[o].as_mut(), &self.device[o]) {
                total += launch(&mut || Ok(gpu.convert(t, s)?))?;
            }
        }
        Ok(total)
    }

    /// A run with some steps on the host: values move between host and device on demand.
    fn run_mixed(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let plan = self.weights.plan;
        load_inputs(plan, inputs, &mut self.arena)?;
        for &v in &plan.inputs {
            self.on_host[v] = true;
        }
        for (s, ps) in plan.steps.iter().enumerate() {
            let result = match self.weights.device_steps[s].is_some() {
                true => inputs_of(&ps.step)
                    .into_iter()
                    .try_for_each(|v| self.send_to_device(v))
                    .and_then(|_| self.gpu_step(s)),
                false => self.host_step(s),
            };
            result.map_err(|e| step_error(ps, e))?;
        }
        for &o in &plan.outputs {
            if !plan.values[o].dynamic {
                self.fetch_to_host(o)?;
            }
        }
        super::exec::read_outputs(plan, &self.arena, &mut self.dynamic)
    }

    fn fetch_to_host(&mut self, v: usize) -> Result<()> {
        if self.on_host[v] {
            return Ok(());
        }
        let pv = &self.weights.plan.values[v];
        let t = self.device[v]
            .as_ref()
            .filter(|_| self.on_device[v])
            .ok_or_else(|| ModelError::Malformed(format!("value `{}` is read before any step writes it", pv.name)))?;
        self.gpu.download(t, &mut self.arena[pv.slot][..pv.len()])?;
        self.on_host[v] = true;
        self.transfers.1 += 1;
        Ok(())
    }

    /// The device buffer of value `v`, allocated on first use.
    fn device_buffer(&mut self, v: usize) -> Result<&mut DeviceTensor> {
        let len = self.weights.plan.values[v].len();
        if self.device[v].is_none() {
            self.device[v] = Some(self.gpu.zeros(len, self.weights.precision)?);
        }
        Ok(self.device[v].as_mut().expect("allocated above"))
    }

    fn send_to_device(&mut self, v: usize) -> Result<()> {
        if self.on_device[v] {
            return Ok(());
        }
        if !self.on_host[v] {
            return Err(ModelError::Malformed(format!(
                "value `{}` is read before any step writes it",
                self.weights.plan.values[v].name
            )));
        }
        self.device_buffer(v)?;
        let pv = &self.weights.plan.values[v];
        let t = self.device[v].as_mut().expect("allocated above");
        self.gpu.write(&self.arena[pv.slot][..pv.len()], t)?;
        self.on_device[v] = true;
        self.transfers.0 += 1;
        Ok(())
    }

    /// Launches step `s` (its inputs on the device).
    fn gpu_step(&mut self, s: usize) -> Result<()> {
        let plan = self.weights.plan;
        let step = &plan.steps[s].step;
        let out = output_of(step);
        self.device_buffer(out)?;
        // Take the output buffer out so that inputs can be borrowed beside it.
        let mut y = self.device[out].take().expect("allocated above");
        let result = {
            let device = &self.device;
            let dev = |v: usize| device[v].as_ref().expect("on the device");
            let w = &self.weights;
            let ds = w.device_steps[s].as_ref().expect("a device step");
            ds.launch(plan, step, &self.gpu, &dev, &mut y, (&w.convs, &w.gemms))
        };
        self.device[out] = Some(y);
        result?;
        self.on_device[out] = true;
        self.on_host[out] = false;
        Ok(())
    }

    fn host_step(&mut self, s: usize) -> Result<()> {
        let plan = self.weights.plan;
        let step = &plan.steps[s].step;
        for v in inputs_of(step) {
            self.fetch_to_host(v)?;
        }
        let out = output_of(step);
        let out_v = &plan.values[out];
        let mut out_buf = std::mem::take(&mut self.arena[out_v.slot]);
        let result = {
            let arena = &self.arena;
            let val = |v: usize| -> &[f32] { &arena[plan.values[v].slot][..plan.values[v].words()] };
            let in_place = |v: usize| plan.values[v].slot == out_v.slot;
            exec_step(
                plan,
                &*self.set,
                step,
                &mut out_buf[..out_v.words()],
                &val,
                &in_place,
                (&mut self.dynamic, &mut []),
                Parallelism::Sequential,
            )
        };
        self.arena[out_v.slot] = out_buf;
        result?;
        self.on_host[out] = true;
        self.on_device[out] = false;
        Ok(())
    }
}
