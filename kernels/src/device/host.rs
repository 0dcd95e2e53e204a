//! A CPU set as a [`Device`]: a handle is a host buffer, every operation runs at once on the
//! set's own kernels (convolutions, GEMMs, pooling, activations) or on the loops the CPU
//! executor shares ([`super::loops`]: broadcasts, per-channel constants, resize, softmax) and
//! strided copies, on the calling thread. What a device session
//! does on a GPU — one upload, the operations on handles, one download — runs here on any
//! machine, so the executor's device path is tested without a GPU. Storage is f32 only.

use std::sync::Arc;

use super::loops::{binary, channel_constant, resize, softmax, Src};
use super::ops::{batch_offsets, reach, Epi, MapStep, Op, Operand};
use super::{no_binding, Device, Handle, LoadedModel, ModelData, Precision, Workspace};
use crate::conv::{ImageMut, ImageRef, PackedConv};
use crate::epilogue::{Bias, Epilogue};
use crate::error::{KernelError, Result};
use crate::mat::{MatMut, MatRef};
use crate::pack::PackedB;
use crate::{AlignedBuf, BOperand, KernelSet, Parallelism, PoolParams, RowNorm};

/// A CPU kernel set's host memory as a device.
#[derive(Debug)]
pub struct HostDevice {
    set: Arc<dyn KernelSet>,
}

impl HostDevice {
    /// The device of `set`.
    pub fn new(set: Arc<dyn KernelSet>) -> Self {
        Self { set }
    }
}

/// A model loaded on the host: copies of its weights, constants and operations.
struct HostModel {
    set: Arc<dyn KernelSet>,
    convs: Vec<PackedConv>,
    gemms: Vec<PackedB>,
    consts: Vec<Vec<f32>>,
    ops: Vec<Op>,
    buffers: Vec<usize>,
}

impl Device for HostDevice {
    fn describe(&self) -> String {
        format!("host {}", self.set.info().name)
    }

    fn load(&self, model: &ModelData<'_>, precision: Precision) -> Result<Arc<dyn LoadedModel>> {
        if precision != Precision::F32 {
            return Err(KernelError::Unavailable {
                set: self.set.info().name.into(),
                reason: format!("a CPU set keeps tensors in f32 only, not {precision:?}"),
            });
        }
        Ok(Arc::new(HostModel {
            set: Arc::clone(&self.set),
            convs: model.convs.to_vec(),
            gemms: model.gemms.to_vec(),
            consts: model.consts.to_vec(),
            ops: model.ops.to_vec(),
            buffers: model.buffers.to_vec(),
        }))
    }
}

impl LoadedModel for HostModel {
    fn workspace(self: Arc<Self>) -> Result<Box<dyn Workspace>> {
        let bufs = self.buffers.iter().map(|&n| AlignedBuf::zeroed(n)).collect();
        Ok(Box::new(HostWorkspace { model: self, bufs, captured: None, bound: (Vec::new(), Vec::new()) }))
    }
}

/// A bound tensor and its host buffer.
type HostBinding = (Handle, Vec<f32>);

/// A session's host buffers.
struct HostWorkspace {
    model: Arc<HostModel>,
    bufs: Vec<AlignedBuf>,
    /// The operations [`Workspace::capture`] recorded.
    captured: Option<Vec<usize>>,
    /// Bound inputs and outputs: each handle and its host buffer.
    bound: (Vec<HostBinding>, Vec<HostBinding>),
}

impl HostWorkspace {
    fn tensor(&self, h: Handle) -> Result<&[f32]> {
        self.bufs.get(h.buf).and_then(|b| b.get(..h.len)).ok_or_else(|| out_of_range(h))
    }

    fn tensor_mut(&mut self, h: Handle) -> Result<&mut [f32]> {
        self.bufs.get_mut(h.buf).and_then(|b| b.get_mut(..h.len)).ok_or_else(|| out_of_range(h))
    }

    /// An operand's values: a tensor other than the output's buffer, or a constant.
    fn operand<'a>(&'a self, o: &Operand, consts: &'a [Vec<f32>]) -> Result<&'a [f32]> {
        match *o {
            Operand::Tensor(h) => self.tensor(h),
            Operand::Const(k) => consts.get(k).map(Vec::as_slice).ok_or_else(|| no_const(k)),
        }
    }

    /// Runs `op` with its output buffer taken out of the workspace (`out`), so that inputs
    /// can be read beside it; an input in the output's own buffer is read from `out`.
    fn run(&mut self, op: &Op, out: &mut [f32]) -> Result<()> {
        let model = Arc::clone(&self.model);
        let (set, consts) = (&*model.set, &model.consts);
        let seq = Parallelism::Sequential;
        let epilogue = |epi: &Epi, rows: usize, cols: usize| -> Result<Epilogue<'_>> {
            let residual = match epi.residual {
                Some(r) => Some(MatRef::row_major(self.tensor(r)?, rows, cols)?),
                None => None,
            };
            let bias = match epi.bias {
                Some(b) => Bias::PerCol(consts.get(b).ok_or_else(|| no_const(b))?),
                None => Bias::None,
            };
            Ok(Epilogue { bias, residual, activation: epi.activation })
        };
        match op {
            Op::Conv { weights, input, dims, epi, output } => {
                let w = model.convs.get(*weights).ok_or_else(|| no_weights("convolution", *weights))?;
                let p = w.params();
                let [oh, ow] = p.output_hw(dims[1], dims[2])?;
                let od = [dims[0], oh, ow, p.c_out];
                let epi = epilogue(epi, od[0] * oh * ow, p.c_out)?;
                let x = ImageRef::new(self.tensor(*input)?, *dims)?;
                set.conv2d(x, w, ImageMut::new(&mut out[..output.len], od)?, &epi, seq)?;
            }
            Op::Gemm { a, rows, weights, epi, output } => {
                let b = model.gemms.get(*weights).ok_or_else(|| no_weights("GEMM", *weights))?;
                let (k, n) = (b.k(), b.n());
                let epi = epilogue(epi, *rows, n)?;
                let a = MatRef::row_major(self.tensor(*a)?, *rows, k)?;
                set.gemm(a, BOperand::Packed(b), MatMut::row_major(&mut out[..output.len], *rows, n)?, &epi, seq)?;
            }
            Op::Map { input, chain, channels, output } => {
                let y = &mut out[..output.len];
                if input.buf != output.buf {
                    y.copy_from_slice(self.tensor(*input)?);
                }
                map(set, chain, *channels, consts, y)?;
            }
            Op::Binary { op, a, b, dims, output } => {
                let total: usize = dims.iter().product();
                let fits = |v: &[f32], s: &[usize; 4]| total == 0 || v.len() >= reach(dims, s, 0);
                if output.len < total {
                    return Err(KernelError::Shape(format!("a binary output of {} values for {total}", output.len)));
                }
                let a_src = match a.0 {
                    // In place: the left operand is the output's own elements.
                    Operand::Tensor(h) if h.buf == output.buf => Src::Output,
                    o => {
                        let v = self.operand(&o, consts)?;
                        if !fits(v, &a.1) {
                            return Err(short("left operand"));
                        }
                        Src::Slice(v)
                    }
                };
                let bv = match b.0 {
                    Operand::Tensor(h) if h.buf == output.buf => {
                        return Err(KernelError::Shape(
                            "a binary operation's right operand shares the output's buffer".into(),
                        ))
                    }
                    o => self.operand(&o, consts)?,
                };
                if !fits(bv, &b.1) {
                    return Err(short("right operand"));
                }
                binary(*op, (a_src, a.1), (bv, b.1), *dims, &mut out[..total], false);
            }
            Op::Copies { parts, output } => {
                for (src, copy) in parts {
                    let owned;
                    let x = match *src {
                        // A copy within one buffer reads a snapshot of it.
                        Operand::Tensor(h) if h.buf == output.buf => {
                            owned = out[..h.len].to_vec();
                            &owned[..]
                        }
                        _ => self.operand(src, consts)?,
                    };
                    copy.apply(x, &mut out[..output.len])?;
                }
            }
            Op::Pool { input, dims, params, out_hw, output } => {
                let od = [dims[0], out_hw[0], out_hw[1], dims[3]];
                let x = ImageRef::new(self.tensor(*input)?, *dims)?;
                set.pool2d(x, ImageMut::new(&mut out[..output.len], od)?, params, seq)?;
            }
            Op::GlobalAveragePool { input, dims, output } => {
                let [n, h, w, c] = *dims;
                let params = PoolParams::global_average([h, w]);
                let x = ImageRef::new(self.tensor(*input)?, *dims)?;
                set.pool2d(x, ImageMut::new(&mut out[..output.len], [n, 1, 1, c])?, &params, seq)?;
            }
            Op::Resize { input, dims, taps, planes, output } => {
                let [n, h, w, c] = *dims;
                let [rh, rw] = taps.reach();
                if rh > h || rw > w {
                    return Err(KernelError::Shape(format!("resize taps reach {:?} of a {h}×{w} image", [rh, rw])));
                }
                let x = self.tensor(*input)?;
                let len = n * taps.rows.len() * taps.cols.len() * c;
                if x.len() < n * h * w * c || output.len < len {
                    return Err(short("resize input or output"));
                }
                resize(x, *dims, taps, *planes, &mut out[..len], false);
            }
            Op::LayerNorm { input, len, scale, bias, epsilon, output } => {
                let get = |k: usize| consts.get(k).map(Vec::as_slice).ok_or_else(|| no_const(k));
                let bias = bias.map(get).transpose()?;
                let norm = RowNorm::LayerNorm { scale: get(*scale)?, bias, epsilon: *epsilon };
                set.normalize_rows(norm, self.tensor(*input)?, *len, &mut out[..output.len], seq)?;
            }
            Op::MatMul { a, b, dims: (m, k, n), batch, a_strides, b_strides, output } => {
                let (av, bv) = (self.tensor(*a)?, self.tensor(*b)?);
                let count: usize = batch.iter().product();
                if batch.len() != a_strides.len() || batch.len() != b_strides.len() || output.len < count * m * n {
                    return Err(KernelError::Shape(format!(
                        "a batched product over {batch:?} into {} values",
                        output.len
                    )));
                }
                for (i, c) in out[..count * m * n].chunks_mut((m * n).max(1)).enumerate() {
                    let (ao, bo) = batch_offsets(i, batch, a_strides, b_strides);
                    let am = MatRef::row_major(av.get(ao..ao + m * k).ok_or_else(|| short("left operand"))?, *m, *k)?;
                    let bm = MatRef::row_major(bv.get(bo..bo + k * n).ok_or_else(|| short("right operand"))?, *k, *n)?;
                    set.gemm(am, BOperand::Matrix(bm), MatMut::row_major(c, *m, *n)?, &Epilogue::none(), seq)?;
                }
            }
            Op::Softmax { input, dims: (outer, len, inner), output } => {
                let total = outer * len * inner;
                let y = out.get_mut(..total).filter(|_| output.len >= total).ok_or_else(|| short("softmax output"))?;
                if input.buf != output.buf {
                    y.copy_from_slice(self.tensor(*input)?.get(..total).ok_or_else(|| short("softmax input"))?);
                }
                softmax(y, (*outer, *len, *inner));
            }
        }
        Ok(())
    }
}

fn out_of_range(h: Handle) -> KernelError {
    KernelError::Shape(format!("tensor {h:?} is outside the workspace's buffers"))
}

fn no_const(k: usize) -> KernelError {
    KernelError::Shape(format!("constant {k} is not in the model"))
}

fn no_weights(what: &str, k: usize) -> KernelError {
    KernelError::Shape(format!("{what} weights {k} are not in the model"))
}

fn short(what: &str) -> KernelError {
    KernelError::Shape(format!("the {what} is shorter than its strides reach"))
}

/// An element-wise chain in place on `y`, one operation at a time over the whole tensor.
fn map(
    set: &dyn KernelSet,
    chain: &[MapStep],
    (c, stride): (usize, usize),
    consts: &[Vec<f32>],
    y: &mut [f32],
) -> Result<()> {
    let (c, stride) = (c.max(1), stride.max(1));
    for step in chain {
        match *step {
            MapStep::Act(a) => set.activate(a, y)?,
            MapStep::Unary(u) => set.unary(u, y)?,
            MapStep::Mul(k) | MapStep::Add(k) => {
                let k = consts.get(k).ok_or_else(|| no_const(k))?;
                if k.len() != 1 && k.len() != c {
                    return Err(KernelError::Shape(format!(
                        "an element-wise constant of {} values for {c} channels",
                        k.len()
                    )));
                }
                channel_constant(y, k, matches!(step, MapStep::Mul(_)), (c, stride));
            }
        }
    }
    Ok(())
}

impl Workspace for HostWorkspace {
    fn upload(&mut self, data: &[f32], to: Handle) -> Result<()> {
        if data.len() != to.len {
            return Err(KernelError::Shape(format!("upload of {} values into {}", data.len(), to.len)));
        }
        self.tensor_mut(to)?.copy_from_slice(data);
        Ok(())
    }

    fn download(&mut self, from: Handle, out: &mut [f32]) -> Result<()> {
        if out.len() != from.len {
            return Err(KernelError::Shape(format!("download of {} values into {}", from.len, out.len())));
        }
        out.copy_from_slice(self.tensor(from)?);
        Ok(())
    }

    fn launch(&mut self, op: usize) -> Result<()> {
        let model = Arc::clone(&self.model);
        let op = model.ops.get(op).ok_or_else(|| KernelError::Shape(format!("operation {op} is not in the model")))?;
        let buf = op.output().buf;
        let mut out = std::mem::take(self.bufs.get_mut(buf).ok_or_else(|| out_of_range(op.output()))?);
        let result = self.run(op, &mut out);
        self.bufs[buf] = out;
        result
    }

    fn capture(&mut self, ops: &[usize]) -> Result<()> {
        if let Some(&bad) = ops.iter().find(|&&k| k >= self.model.ops.len()) {
            return Err(KernelError::Shape(format!("operation {bad} is not in the model")));
        }
        self.captured = Some(ops.to_vec());
        Ok(())
    }

    fn replay(&mut self) -> Result<bool> {
        let Some(ops) = self.captured.take() else { return Ok(false) };
        let result = ops.iter().try_for_each(|&k| self.launch(k));
        self.captured = Some(ops);
        result.map(|_| true)
    }

    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }

    fn time(&mut self, issue: &mut dyn FnMut(&mut dyn Workspace) -> Result<()>) -> Result<f64> {
        let start = std::time::Instant::now();
        issue(self)?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }

    fn bind(&mut self, inputs: &[Handle], outputs: &[Handle]) -> Result<()> {
        let host = |hs: &[Handle]| hs.iter().map(|&h| (h, vec![0.0; h.len])).collect();
        self.bound = (host(inputs), host(outputs));
        Ok(())
    }

    fn bound_input(&mut self, i: usize) -> Result<&mut [f32]> {
        let n = self.bound.0.len();
        Ok(&mut self.bound.0.get_mut(i).ok_or_else(|| no_binding("input", i, n))?.1)
    }

    fn bound_output(&mut self, o: usize) -> Result<&[f32]> {
        let n = self.bound.1.len();
        Ok(&self.bound.1.get(o).ok_or_else(|| no_binding("output", o, n))?.1)
    }

    fn upload_bound(&mut self) -> Result<()> {
        let inputs = std::mem::take(&mut self.bound.0);
        let result = inputs.iter().try_for_each(|(h, data)| self.upload(data, *h));
        self.bound.0 = inputs;
        result
    }

    fn download_bound(&mut self) -> Result<()> {
        let mut outputs = std::mem::take(&mut self.bound.1);
        let result = outputs.iter_mut().try_for_each(|(h, data)| self.download(*h, data));
        self.bound.1 = outputs;
        result
    }
}

#[cfg(test)]
mod tests {
    use crate::device::StridedCopy;

    #[test]
    fn strided_copies_refuse_to_reach_past_either_tensor() {
        let copy =
            StridedCopy { dims: vec![2, 3], src_strides: vec![3, 1], dst_strides: vec![4, 1], ..Default::default() };
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let mut y = vec![f32::NAN; 8];
        copy.apply(&x, &mut y).unwrap();
        assert_eq!(&y[..3], &[0., 1., 2.]);
        assert!(y[3].is_nan());
        assert_eq!(&y[4..7], &[3., 4., 5.]);
        assert!(copy.apply(&x[..5], &mut y).is_err());
        assert!(copy.apply(&x, &mut y[..6]).is_err());
    }
}
