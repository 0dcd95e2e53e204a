//! The CUDA set as a [`Device`]: a model's weights, constants and prepared operations
//! uploaded once ([`CudaModel`], shared by every session), and per session a lane of the GPU
//! (its own stream and split-K workspace) with one device buffer per slot of the plan's
//! memory plan, each tensor a view of its slot ([`Alias`]), and the run's launches captured as
//! one CUDA graph.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::CudaSlice;

use super::device::{Alias, DeviceTensor, Gpu, PinnedBuf};
use super::graph::DeviceGraph;
use super::launch::{DeviceBias, DeviceEpilogue};
use super::ops::{ChainOp, DeviceGap, DeviceMap, DeviceResize};
use super::weights::{DeviceConv, DeviceMatrix};
use crate::device::{
    no_binding, Device, Epi, Handle, LoadedModel, MapStep, ModelData, Op, Operand, Precision, Workspace,
};
use crate::error::{KernelError, Result};

/// The GPU of this process as a [`Device`].
pub(crate) struct CudaDevice {
    pub(crate) gpu: Arc<Gpu>,
}

/// What an operation needs on the device beyond its tensors, made once.
enum Prepared {
    /// A convolution's or GEMM's bias and activation.
    Epilogue(DeviceEpilogue),
    /// An element-wise chain's codes and constants.
    Map(DeviceMap),
    /// A global average pool (its partial sums are each workspace's own).
    Gap,
    /// A resize's taps.
    Resize(DeviceResize),
    /// A layer norm's scale and bias, in f32.
    LayerNorm(CudaSlice<f32>, Option<CudaSlice<f32>>),
    /// Nothing beyond the operation.
    None,
}

/// A model on the GPU: weights, constants and prepared operations, read by every session.
struct CudaModel {
    gpu: Arc<Gpu>,
    precision: Precision,
    convs: Vec<DeviceConv>,
    gemms: Vec<DeviceMatrix>,
    /// Constants read as operands (binary operands, copy sources), in the model's precision.
    consts: Vec<Option<DeviceTensor>>,
    ops: Vec<(Op, Prepared)>,
    buffers: Vec<usize>,
}

impl Device for CudaDevice {
    fn describe(&self) -> String {
        format!("{} sm_{}", self.gpu.name(), self.gpu.sm())
    }

    fn load(&self, model: &ModelData<'_>, precision: Precision) -> Result<Arc<dyn LoadedModel>> {
        let gpu = &self.gpu;
        let convs = model.convs.iter().map(|c| DeviceConv::upload(gpu, c, precision)).collect::<Result<_>>()?;
        let gemms = model.gemms.iter().map(|b| DeviceMatrix::upload(gpu, b, precision)).collect::<Result<_>>()?;
        let constant = |k: usize| {
            model.consts.get(k).ok_or_else(|| KernelError::Shape(format!("constant {k} is not in the model")))
        };
        let mut consts: Vec<Option<DeviceTensor>> = (0..model.consts.len()).map(|_| None).collect();
        for op in model.ops {
            let operands: Vec<&Operand> = match op {
                Op::Binary { a, b, .. } => vec![&a.0, &b.0],
                Op::Copies { parts, .. } => parts.iter().map(|(o, _)| o).collect(),
                _ => Vec::new(),
            };
            for o in operands {
                if let Operand::Const(k) = *o {
                    if consts[k].is_none() {
                        consts[k] = Some(gpu.upload(constant(k)?, precision)?);
                    }
                }
            }
        }
        let epilogue = |epi: &Epi| -> Result<DeviceEpilogue> {
            let bias = match epi.bias {
                Some(b) => DeviceBias::PerCol(gpu.upload_f32(constant(b)?)?),
                None => DeviceBias::None,
            };
            DeviceEpilogue { bias, activation: epi.activation }.checked()
        };
        let ops = model
            .ops
            .iter()
            .map(|op| {
                let prepared = match op {
                    Op::Conv { epi, .. } | Op::Gemm { epi, .. } => Prepared::Epilogue(epilogue(epi)?),
                    Op::Map { chain, channels, .. } => {
                        let chain: Vec<ChainOp<'_>> = chain
                            .iter()
                            .map(|s| {
                                Ok(match *s {
                                    MapStep::Act(a) => ChainOp::Act(a),
                                    MapStep::Unary(u) => ChainOp::Unary(u),
                                    MapStep::Mul(k) => ChainOp::Mul(constant(k)?),
                                    MapStep::Add(k) => ChainOp::Add(constant(k)?),
                                })
                            })
                            .collect::<Result<_>>()?;
                        Prepared::Map(DeviceMap::upload(gpu, &chain, *channels)?)
                    }
                    Op::GlobalAveragePool { .. } => Prepared::Gap,
                    Op::Resize { taps, .. } => {
                        Prepared::Resize(DeviceResize::upload(gpu, &taps.rows, &taps.cols, taps.linear)?)
                    }
                    Op::LayerNorm { scale, bias, .. } => Prepared::LayerNorm(
                        gpu.upload_f32(constant(*scale)?)?,
                        bias.map(|b| gpu.upload_f32(constant(b)?)).transpose()?,
                    ),
                    _ => Prepared::None,
                };
                Ok((op.clone(), prepared))
            })
            .collect::<Result<_>>()?;
        // Sessions read the weights from lanes of their own: the uploads must be done.
        gpu.synchronize()?;
        Ok(Arc::new(CudaModel {
            gpu: Arc::clone(gpu),
            precision,
            convs,
            gemms,
            consts,
            ops,
            buffers: model.buffers.to_vec(),
        }))
    }
}

impl LoadedModel for CudaModel {
    fn workspace(self: Arc<Self>) -> Result<Box<dyn Workspace>> {
        let gpu = self.gpu.lane()?;
        let bufs: Vec<DeviceTensor> =
            self.buffers.iter().map(|&n| gpu.zeros(n, self.precision)).collect::<Result<_>>()?;
        let mut ws = CudaWorkspace {
            graph: None,
            reads: HashMap::new(),
            writes: HashMap::new(),
            gaps: HashMap::new(),
            staging: HashMap::new(),
            bound: Bound::default(),
            bufs,
            gpu,
            model: Arc::clone(&self),
        };
        // Every view and workspace a launch names exists before any run is captured.
        for (k, (op, _)) in self.ops.iter().enumerate() {
            for h in reads(op) {
                ws.view(h, false)?;
            }
            ws.view(op.output(), true)?;
            if let Op::GlobalAveragePool { dims, .. } = op {
                ws.gaps.insert(k, DeviceGap::new(&ws.gpu, *dims)?);
            }
        }
        Ok(Box::new(ws))
    }
}

/// The f32 staging tensor of `h` (made on first use).
fn staging<'a>(map: &'a mut HashMap<Handle, DeviceTensor>, gpu: &Gpu, h: Handle) -> Result<&'a mut DeviceTensor> {
    match map.entry(h) {
        std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::hash_map::Entry::Vacant(e) => Ok(e.insert(gpu.zeros(h.len, Precision::F32)?)),
    }
}

/// The tensors an operation reads.
fn reads(op: &Op) -> Vec<Handle> {
    let tensor = |o: &Operand| match *o {
        Operand::Tensor(h) => Some(h),
        Operand::Const(_) => None,
    };
    let epi = |e: &Epi| e.residual;
    match op {
        Op::Conv { input, epi: e, .. } => std::iter::once(*input).chain(epi(e)).collect(),
        Op::Gemm { a, epi: e, .. } => std::iter::once(*a).chain(epi(e)).collect(),
        Op::Binary { a, b, .. } => tensor(&a.0).into_iter().chain(tensor(&b.0)).collect(),
        Op::Copies { parts, .. } => parts.iter().filter_map(|(o, _)| tensor(o)).collect(),
        Op::MatMul { a, b, .. } => vec![*a, *b],
        Op::Map { input, .. }
        | Op::LayerNorm { input, .. }
        | Op::Pool { input, .. }
        | Op::GlobalAveragePool { input, .. }
        | Op::Resize { input, .. }
        | Op::Softmax { input, .. } => vec![*input],
    }
}

/// Page-locked host buffers of the bound inputs and outputs, and, in f16 workspaces, their
/// f32 staging on the device (the conversion runs on the device).
#[derive(Default)]
struct Bound {
    inputs: Vec<(Handle, PinnedBuf, Option<DeviceTensor>)>,
    outputs: Vec<(Handle, PinnedBuf, Option<DeviceTensor>)>,
}

/// One session on the GPU. Fields drop in order: the graph before the buffers it names.
struct CudaWorkspace {
    graph: Option<DeviceGraph>,
    /// Views of the buffers as operations read them, by handle.
    reads: HashMap<Handle, Alias>,
    /// Views as operations write them (separate objects: an in-place operation reads and
    /// writes one handle).
    writes: HashMap<Handle, Alias>,
    /// Partial sums of each global average pool, by operation.
    gaps: HashMap<usize, DeviceGap>,
    /// f16 workspaces: the f32 device copy each uploaded or downloaded tensor crosses the bus
    /// through (made on first use).
    staging: HashMap<Handle, DeviceTensor>,
    bound: Bound,
    /// One buffer per slot of the memory plan.
    bufs: Vec<DeviceTensor>,
    /// This session's lane: its stream orders the session's copies and launches.
    gpu: Arc<Gpu>,
    model: Arc<CudaModel>,
}

impl CudaWorkspace {
    /// Makes the view of `h` (for writing, or reading) if it does not exist yet.
    fn view(&mut self, h: Handle, write: bool) -> Result<()> {
        let map = if write { &mut self.writes } else { &mut self.reads };
        if let std::collections::hash_map::Entry::Vacant(e) = map.entry(h) {
            let buf = self.bufs.get(h.buf).ok_or_else(|| KernelError::Shape(format!("tensor {h:?} has no buffer")))?;
            // SAFETY: the buffers live in this workspace and are never reallocated; the views
            // are fields dropped before them, and this lane's stream orders every use.
            e.insert(unsafe { Alias::new(&self.gpu, buf, h.len)? });
        }
        Ok(())
    }

    fn read(&self, h: Handle) -> Result<&DeviceTensor> {
        self.reads.get(&h).map(Alias::get).ok_or_else(|| KernelError::Shape(format!("tensor {h:?} was never prepared")))
    }
}

impl Workspace for CudaWorkspace {
    fn upload(&mut self, data: &[f32], to: Handle) -> Result<()> {
        self.view(to, true)?;
        let t = self.writes.get_mut(&to).expect("made above").get_mut();
        match self.model.precision {
            Precision::F32 => self.gpu.write(data, t),
            // f32 over the bus, rounded to f16 on the device.
            Precision::F16 => {
                let s = staging(&mut self.staging, &self.gpu, to)?;
                self.gpu.write(data, s)?;
                self.gpu.convert(s, t)
            }
        }
    }

    fn download(&mut self, from: Handle, out: &mut [f32]) -> Result<()> {
        self.view(from, false)?;
        let t = self.reads.get(&from).expect("made above").get();
        match self.model.precision {
            Precision::F32 => self.gpu.download(t, out),
            // Widened to f32 on the device, then over the bus.
            Precision::F16 => {
                let s = staging(&mut self.staging, &self.gpu, from)?;
                self.gpu.convert(t, s)?;
                self.gpu.download(s, out)
            }
        }
    }

    fn launch(&mut self, k: usize) -> Result<()> {
        let model = Arc::clone(&self.model);
        let (op, prepared) =
            model.ops.get(k).ok_or_else(|| KernelError::Shape(format!("operation {k} is not in the model")))?;
        let out = op.output();
        let mut y =
            self.writes.remove(&out).ok_or_else(|| KernelError::Shape(format!("output {out:?} was never prepared")))?;
        let result = self.issue(op, prepared, k, y.get_mut());
        self.writes.insert(out, y);
        result
    }

    fn capture(&mut self, ops: &[usize]) -> Result<()> {
        let gpu = Arc::clone(&self.gpu);
        self.graph = None;
        let graph = gpu.capture(|| ops.iter().try_for_each(|&k| self.launch(k)))?;
        self.graph = Some(graph);
        Ok(())
    }

    fn replay(&mut self) -> Result<bool> {
        match &self.graph {
            Some(g) => self.gpu.replay(g).map(|_| true),
            None => Ok(false),
        }
    }

    fn synchronize(&mut self) -> Result<()> {
        self.gpu.synchronize()
    }

    fn time(&mut self, issue: &mut dyn FnMut(&mut dyn Workspace) -> Result<()>) -> Result<f64> {
        let gpu = Arc::clone(&self.gpu);
        gpu.elapsed_ms(|| issue(self))
    }

    fn bind(&mut self, inputs: &[Handle], outputs: &[Handle]) -> Result<()> {
        let f16 = self.model.precision == Precision::F16;
        let mut side = |hs: &[Handle], write: bool| -> Result<Vec<(Handle, PinnedBuf, Option<DeviceTensor>)>> {
            hs.iter()
                .map(|&h| {
                    self.view(h, write)?;
                    let staging = if f16 { Some(self.gpu.zeros(h.len, Precision::F32)?) } else { None };
                    Ok((h, self.gpu.pinned(h.len)?, staging))
                })
                .collect()
        };
        let inputs = side(inputs, true)?;
        let outputs = side(outputs, false)?;
        self.bound = Bound { inputs, outputs };
        Ok(())
    }

    fn bound_input(&mut self, i: usize) -> Result<&mut [f32]> {
        let n = self.bound.inputs.len();
        self.bound.inputs.get_mut(i).ok_or_else(|| no_binding("input", i, n))?.1.as_mut_slice()
    }

    fn bound_output(&mut self, o: usize) -> Result<&[f32]> {
        let n = self.bound.outputs.len();
        self.bound.outputs.get(o).ok_or_else(|| no_binding("output", o, n))?.1.as_slice()
    }

    fn upload_bound(&mut self) -> Result<()> {
        for (h, pinned, staging) in &mut self.bound.inputs {
            let t = self.writes.get_mut(h).expect("made by bind").get_mut();
            match staging {
                Some(s) => {
                    self.gpu.write_pinned(pinned, s)?;
                    self.gpu.convert(s, t)?;
                }
                None => self.gpu.write_pinned(pinned, t)?,
            }
        }
        Ok(())
    }

    fn download_bound(&mut self) -> Result<()> {
        for (h, pinned, staging) in &mut self.bound.outputs {
            let t = self.reads.get(h).expect("made by bind").get();
            match staging {
                Some(s) => {
                    self.gpu.convert(t, s)?;
                    self.gpu.read_pinned(s, pinned)?;
                }
                None => self.gpu.read_pinned(t, pinned)?,
            }
        }
        Ok(())
    }
}

impl CudaWorkspace {
    /// Launches operation `k` (`op`, with what was `prepared` for it) into `y`.
    fn issue(&self, op: &Op, prepared: &Prepared, k: usize, y: &mut DeviceTensor) -> Result<()> {
        let (gpu, model) = (&*self.gpu, &*self.model);
        let operand = |o: &Operand| match *o {
            Operand::Tensor(h) => self.read(h),
            Operand::Const(c) => model
                .consts
                .get(c)
                .and_then(Option::as_ref)
                .ok_or_else(|| KernelError::Shape(format!("constant {c} was not uploaded"))),
        };
        let residual = |e: &Epi| e.residual.map(|r| self.read(r)).transpose();
        let unprepared = || KernelError::Device(format!("operation {k} was prepared for another kind"));
        match (op, prepared) {
            (Op::Conv { weights, input, dims, epi, .. }, Prepared::Epilogue(e)) => {
                let w = model.convs.get(*weights).ok_or_else(unprepared)?;
                gpu.conv2d(self.read(*input)?, *dims, w, e, residual(epi)?, y).map(|_| ())
            }
            (Op::Gemm { a, rows, weights, epi, .. }, Prepared::Epilogue(e)) => {
                let b = model.gemms.get(*weights).ok_or_else(unprepared)?;
                gpu.gemm(self.read(*a)?, *rows, b, e, residual(epi)?, y)
            }
            (Op::Map { input, .. }, Prepared::Map(chain)) => gpu.map(self.read(*input)?, chain, y),
            (Op::Binary { op, a, b, dims, .. }, _) => {
                gpu.binary(*op, (operand(&a.0)?, a.1), (operand(&b.0)?, b.1), *dims, y)
            }
            (Op::Copies { parts, .. }, _) => parts.iter().try_for_each(|(o, copy)| gpu.copy(operand(o)?, y, copy)),
            (Op::Pool { input, dims, params, out_hw, .. }, _) => {
                gpu.pool2d(self.read(*input)?, *dims, params, *out_hw, y)
            }
            (Op::GlobalAveragePool { input, dims, .. }, Prepared::Gap) => {
                let gap = self.gaps.get(&k).ok_or_else(unprepared)?;
                gpu.global_average_pool(self.read(*input)?, *dims, gap, y)
            }
            (Op::Resize { input, dims, planes, .. }, Prepared::Resize(taps)) => {
                gpu.resize(self.read(*input)?, *dims, taps, *planes, y)
            }
            (Op::Softmax { input, dims, .. }, _) => gpu.softmax(self.read(*input)?, *dims, y),
            (Op::LayerNorm { input, len, epsilon, .. }, Prepared::LayerNorm(scale, bias)) => {
                gpu.layer_norm(self.read(*input)?, *len, (scale, bias.as_ref()), *epsilon, y)
            }
            (Op::MatMul { a, b, dims, batch, a_strides, b_strides, .. }, _) => {
                gpu.matmul((self.read(*a)?, a_strides), (self.read(*b)?, b_strides), *dims, batch, y)
            }
            _ => Err(unprepared()),
        }
    }
}
