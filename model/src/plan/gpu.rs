//! Running a plan on an NVIDIA GPU (feature `cuda`): convolutions and GEMMs on the CUDA set,
//! every other step on the host, and each value kept where it was last written.
//!
//! Weights and biases are uploaded once, when the session is made. A value written by a GPU
//! step stays on the device; it is copied to the host only when a host step (or the caller)
//! reads it, and a host-written value is copied up only when a GPU step reads it, so
//! consecutive GPU steps exchange nothing with the host.

use std::sync::Arc;

use kernels::cuda::{DeviceBias, DeviceConv, DeviceEpilogue, DeviceMatrix, DeviceTensor, Gpu, Precision};
use kernels::{AlignedBuf, KernelSet, KernelSetId, Parallelism};

use super::exec::{exec_step, load_inputs, step_error};
use super::{dims4, inputs_of, output_of, Plan, Step};
use crate::error::{ModelError, Result};
use crate::tensor::Tensor;

/// A plan bound to the GPU: device weights, device and host buffers, reused across runs.
pub struct GpuSession<'p> {
    plan: &'p Plan,
    set: Box<dyn KernelSet>,
    gpu: Arc<Gpu>,
    precision: Precision,
    convs: Vec<DeviceConv>,
    gemms: Vec<DeviceMatrix>,
    /// Per step: the epilogue of a GPU step (bias uploaded once).
    epilogues: Vec<Option<DeviceEpilogue>>,
    arena: Vec<AlignedBuf>,
    /// Data-dependent values of the current run.
    dynamic: Vec<Option<Tensor>>,
    /// Per value: its device copy, once a GPU step has touched it.
    device: Vec<Option<DeviceTensor>>,
    on_host: Vec<bool>,
    on_device: Vec<bool>,
    /// Host↔device copies of the last run: (uploads, downloads).
    transfers: (usize, usize),
}

/// Whether a step runs on the GPU.
fn on_gpu(step: &Step) -> bool {
    matches!(step, Step::Conv { .. } | Step::Gemm { .. })
}

impl Plan {
    /// A session on this process's GPU, storing activations and weights in `precision`. The
    /// plan must have been built for the CUDA set (`kernel_set(KernelSetId::Cuda)`).
    pub fn gpu_session(&self, precision: Precision) -> Result<GpuSession<'_>> {
        if self.kernel_set != KernelSetId::Cuda {
            return Err(ModelError::Input(format!(
                "the plan was packed for kernel set `{}`; a GPU session needs one built for `cuda`",
                self.kernel_name
            )));
        }
        let set = kernels::kernel_set(KernelSetId::Cuda)?;
        let gpu = kernels::cuda::gpu()?;
        let convs = self.convs.iter().map(|c| DeviceConv::upload(&gpu, c, precision)).collect::<Result<_, _>>()?;
        let gemms = self.gemms.iter().map(|b| DeviceMatrix::upload(&gpu, b, precision)).collect::<Result<_, _>>()?;
        let mut epilogues = Vec::with_capacity(self.steps.len());
        for ps in &self.steps {
            let (bias, activation) = match &ps.step {
                Step::Conv { bias, activation, .. } => (bias, *activation),
                Step::Gemm { bias, activation, .. } => (bias, *activation),
                _ => {
                    epilogues.push(None);
                    continue;
                }
            };
            let bias = match bias {
                Some(b) => DeviceBias::PerCol(gpu.upload_f32(&self.consts[*b])?),
                None => DeviceBias::None,
            };
            epilogues.push(Some(DeviceEpilogue { bias, activation }.checked()?));
        }
        let n = self.values.len();
        Ok(GpuSession {
            plan: self,
            set,
            gpu,
            precision,
            convs,
            gemms,
            epilogues,
            arena: self.slots.iter().map(|&n| AlignedBuf::zeroed(n)).collect(),
            dynamic: vec![None; n],
            device: (0..n).map(|_| None).collect(),
            on_host: vec![false; n],
            on_device: vec![false; n],
            transfers: (0, 0),
        })
    }
}

impl GpuSession<'_> {
    /// Runs the plan on NCHW `inputs` and returns the outputs (on the host).
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let plan = self.plan;
        self.on_host.fill(false);
        self.on_device.fill(false);
        self.transfers = (0, 0);
        load_inputs(plan, inputs, &mut self.arena)?;
        for &v in &plan.inputs {
            self.on_host[v] = true;
        }
        for (s, ps) in plan.steps.iter().enumerate() {
            let result = if on_gpu(&ps.step) { self.gpu_step(s) } else { self.host_step(s) };
            result.map_err(|e| step_error(ps, e))?;
        }
        for &o in &plan.outputs {
            if !plan.values[o].dynamic {
                self.fetch_to_host(o)?;
            }
        }
        super::exec::read_outputs(plan, &self.arena, &mut self.dynamic)
    }

    /// Host↔device copies made by the last run: `(uploads, downloads)`.
    pub fn transfers(&self) -> (usize, usize) {
        self.transfers
    }

    /// The GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn fetch_to_host(&mut self, v: usize) -> Result<()> {
        if self.on_host[v] {
            return Ok(());
        }
        let pv = &self.plan.values[v];
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
        let len = self.plan.values[v].len();
        if self.device[v].is_none() {
            self.device[v] = Some(self.gpu.zeros(len, self.precision)?);
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
                self.plan.values[v].name
            )));
        }
        self.device_buffer(v)?;
        let pv = &self.plan.values[v];
        let t = self.device[v].as_mut().expect("allocated above");
        self.gpu.write(&self.arena[pv.slot][..pv.len()], t)?;
        self.on_device[v] = true;
        self.transfers.0 += 1;
        Ok(())
    }

    fn gpu_step(&mut self, s: usize) -> Result<()> {
        let plan = self.plan;
        let step = &plan.steps[s].step;
        for v in inputs_of(step) {
            self.send_to_device(v)?;
        }
        let out = output_of(step);
        self.device_buffer(out)?;
        // Take the output buffer out so that inputs can be borrowed beside it.
        let mut y = self.device[out].take().expect("allocated above");
        let epi = self.epilogues[s].as_ref().expect("GPU steps have an epilogue");
        let dev = |v: usize| self.device[v].as_ref().expect("uploaded above");
        let result = match step {
            Step::Conv { weights, input, residual, .. } => {
                let dims = dims4(&plan.values[*input].physical());
                self.gpu.conv2d(dev(*input), dims, &self.convs[*weights], epi, residual.map(dev), &mut y).map(|_| ())
            }
            Step::Gemm { a, b, .. } => {
                self.gpu.gemm(dev(*a), super::gemm_rows(&plan.values[*a].shape), &self.gemms[*b], epi, None, &mut y)
            }
            _ => unreachable!("only convolutions and GEMMs run on the GPU"),
        };
        self.device[out] = Some(y);
        result?;
        self.on_device[out] = true;
        self.on_host[out] = false;
        Ok(())
    }

    fn host_step(&mut self, s: usize) -> Result<()> {
        let plan = self.plan;
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
                &mut self.dynamic,
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
