//! The plan's element-wise, data-movement, pooling, resize and softmax steps on device tensors
//! (`kernels/ops.cu`): shapes and bounds checked here, once per call, then one launch.

use cudarc::driver::{CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

use super::args::{
    int, map_activation, BinArgs, ConvertArgs, CopyArgs, GapArgs, LayerNormArgs, MapArgs, MatMulArgs, PoolArgs,
    ResizeArgs, SoftmaxArgs, COPY_RANK, MAP_MAX, MM_RANK,
};
use super::device::{dev_err, DeviceTensor, Gpu, Precision};
use crate::device::ops::reach;
pub use crate::device::{BinaryOp, StridedCopy};
use crate::error::{KernelError, Result};
use crate::{Activation, PoolMode, PoolParams, Unary};

/// A kernel in its f32 and f16 storage forms.
#[derive(Debug)]
pub(crate) struct PerPrecision {
    pub f32: CudaFunction,
    pub f16: CudaFunction,
}

impl PerPrecision {
    pub(crate) fn of(&self, p: Precision) -> &CudaFunction {
        match p {
            Precision::F32 => &self.f32,
            Precision::F16 => &self.f16,
        }
    }
}

/// The kernels of `ops.cu`.
#[derive(Debug)]
pub(crate) struct OpFuncs {
    pub map: PerPrecision,
    pub binary: PerPrecision,
    pub copy: PerPrecision,
    pub pool: PerPrecision,
    pub gap_part: PerPrecision,
    pub gap: PerPrecision,
    pub resize: PerPrecision,
    pub softmax: PerPrecision,
    pub layernorm: PerPrecision,
    pub matmul: PerPrecision,
    /// `f32`: f16 → f32; `f16`: f32 → f16.
    pub convert: PerPrecision,
}

impl OpFuncs {
    /// Loads every kernel of `ops.cu` through `f` (by entry-point name).
    pub(crate) fn load(f: impl Fn(&str) -> Result<CudaFunction>) -> Result<Self> {
        let both = |n: &str| -> Result<PerPrecision> {
            Ok(PerPrecision { f32: f(&format!("{n}_f32"))?, f16: f(&format!("{n}_f16"))? })
        };
        Ok(Self {
            map: both("map")?,
            binary: both("binary")?,
            copy: both("copy")?,
            pool: both("pool")?,
            gap_part: both("gap_part")?,
            gap: both("gap")?,
            resize: both("resize")?,
            softmax: both("softmax")?,
            layernorm: both("layernorm")?,
            matmul: both("matmul")?,
            convert: both("convert")?,
        })
    }
}

/// One operation of an element-wise chain, with its constant (one value, or one per channel).
#[derive(Debug, Clone, Copy)]
pub enum ChainOp<'a> {
    /// An activation (every one the CPU sets have).
    Act(Activation),
    /// A transcendental function.
    Unary(Unary),
    /// `x · k[c]`.
    Mul(&'a [f32]),
    /// `x + k[c]`.
    Add(&'a [f32]),
}

/// An element-wise chain on the device, constants uploaded once ([`Gpu::map`]).
#[derive(Debug)]
pub struct DeviceMap {
    /// (code, p0, p1, constant) per operation.
    ops: Vec<(i32, f32, f32, Option<CudaSlice<f32>>)>,
    /// `(c, stride)`: element `i` has channel `(i / stride) % c`.
    channels: (usize, usize),
}

impl DeviceMap {
    /// Uploads a chain's constants; `channels = (c, stride)` as in the plan's `Step::Map`. A
    /// constant must hold one value or `c`.
    pub fn upload(gpu: &Gpu, chain: &[ChainOp<'_>], channels: (usize, usize)) -> Result<Self> {
        let c = channels.0.max(1);
        let ops = chain
            .iter()
            .map(|op| {
                Ok(match *op {
                    ChainOp::Act(a) => {
                        a.validate()?;
                        let (code, p0, p1) = map_activation(a);
                        (code, p0, p1, None)
                    }
                    ChainOp::Unary(u) => (unary_code(u), 0.0, 0.0, None),
                    ChainOp::Mul(k) | ChainOp::Add(k) => {
                        if k.len() != 1 && k.len() != c {
                            return Err(KernelError::Shape(format!(
                                "an element-wise constant of {} values for {c} channels",
                                k.len()
                            )));
                        }
                        let code = if matches!(op, ChainOp::Mul(_)) { 30 } else { 31 };
                        (code, 0.0, 0.0, Some(gpu.upload_f32(k)?))
                    }
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { ops, channels: (c, channels.1.max(1)) })
    }
}

fn unary_code(u: Unary) -> i32 {
    match u {
        Unary::Exp => 20,
        Unary::Log => 21,
        Unary::Tanh => 22,
        Unary::Erf => 23,
        Unary::Sigmoid => 24,
    }
}

/// A resize's source taps, uploaded once ([`Gpu::resize`]).
#[derive(Debug)]
pub struct DeviceResize {
    rows: CudaSlice<i32>,
    row_t: CudaSlice<f32>,
    cols: CudaSlice<i32>,
    col_t: CudaSlice<f32>,
    /// Output rows and columns.
    out: [usize; 2],
    /// One past the largest source row and column read.
    reach: [usize; 2],
    linear: bool,
}

impl DeviceResize {
    /// Uploads per output row and column `(i0, i1, weight of i1)` (nearest: `i1` unused).
    pub fn upload(gpu: &Gpu, rows: &[(usize, usize, f32)], cols: &[(usize, usize, f32)], linear: bool) -> Result<Self> {
        let split = |taps: &[(usize, usize, f32)]| -> Result<(Vec<i32>, Vec<f32>, usize)> {
            let mut idx = Vec::with_capacity(2 * taps.len());
            let mut end = 0;
            for &(a, b, _) in taps {
                let b = if linear { b } else { a };
                idx.extend([int(a, "resize tap")?, int(b, "resize tap")?]);
                end = end.max(a.max(b) + 1);
            }
            Ok((idx, taps.iter().map(|t| t.2).collect(), end))
        };
        let (ri, rt, rr) = split(rows)?;
        let (ci, ct, cr) = split(cols)?;
        let up_i =
            |v: &[i32]| gpu.stream().clone_htod(if v.is_empty() { &[0][..] } else { v }).map_err(dev_err("upload"));
        let up_f = |v: &[f32]| gpu.upload_f32(if v.is_empty() { &[0.0][..] } else { v });
        Ok(Self {
            rows: up_i(&ri)?,
            row_t: up_f(&rt)?,
            cols: up_i(&ci)?,
            col_t: up_f(&ct)?,
            out: [rows.len(), cols.len()],
            reach: [rr, cr],
            linear,
        })
    }
}

const THREADS: u32 = 256;

/// The partial sums of a global average pool over one input shape ([`Gpu::global_average_pool`]).
#[derive(Debug)]
pub struct DeviceGap {
    part: CudaSlice<f32>,
    splits: usize,
    dims: [usize; 4],
}

impl DeviceGap {
    /// Workspace for pools of NHWC `dims`: the pixels split into segments of at least 256, at
    /// most 64 segments.
    pub fn new(gpu: &Gpu, dims: [usize; 4]) -> Result<Self> {
        let [n, h, w, c] = dims;
        let splits = (h * w).div_ceil(256).clamp(1, 64);
        let part = gpu.stream().alloc_zeros((n * splits * c).max(1)).map_err(dev_err("alloc"))?;
        Ok(Self { part, splits, dims })
    }
}

fn same(what: &str, t: &DeviceTensor, p: Precision, len: usize) -> Result<()> {
    if t.precision() != p {
        return Err(KernelError::Shape(format!("{what} is {:?}, the input {p:?}", t.precision())));
    }
    if t.len() < len {
        return Err(KernelError::Shape(format!("{what} holds {} values, {len} needed", t.len())));
    }
    Ok(())
}

impl Gpu {
    /// One launch of `f` with `args` over `total` elements (grid-stride, 256 threads a block),
    /// or none if empty. The caller has checked every buffer in `args` against the indices
    /// the kernel forms for `total` elements.
    pub(super) fn launch_elements<A: DeviceRepr>(
        &self,
        f: &CudaFunction,
        args: &A,
        total: usize,
        what: &str,
    ) -> Result<()> {
        if total == 0 {
            return Ok(());
        }
        let blocks = total.div_ceil(THREADS as usize).min(1 << 20) as u32;
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
        let mut launch = self.stream().launch_builder(f);
        launch.arg(args);
        // SAFETY: `args` is the `#[repr(C)]` mirror of the kernel's argument block; every
        // address in it is a live buffer of this context whose length the caller checked
        // against the indices the kernel forms, and the single stream orders the launch.
        unsafe { launch.launch(cfg) }.map_err(dev_err(what)).map(|_| ())
    }

    /// `y = chain(x)` element by element (`x` and `y` of the same length and precision).
    pub fn map(&self, x: &DeviceTensor, chain: &DeviceMap, y: &mut DeviceTensor) -> Result<()> {
        let p = x.precision();
        same("map output", y, p, x.len())?;
        let mut src = x.addr(self);
        let dst = y.addr(self);
        let (c, stride) = chain.channels;
        // Chains longer than one launch holds continue in place on the output.
        for part in chain.ops.chunks(MAP_MAX) {
            let mut a = MapArgs {
                x: src,
                y: dst,
                total: x.len() as i64,
                c: c as i64,
                stride: stride as i64,
                nops: part.len() as i32,
                ..Default::default()
            };
            for (j, (code, p0, p1, k)) in part.iter().enumerate() {
                (a.op[j], a.p0[j], a.p1[j]) = (*code, *p0, *p1);
                if let Some(k) = k {
                    (a.k[j], a.klen[j]) = (self.addr(k), k.len() as i32);
                }
            }
            self.launch_elements(self.funcs.ops.map.of(p), &a, x.len(), "launch map")?;
            src = dst;
        }
        if chain.ops.is_empty() {
            return self.copy(x, y, &StridedCopy::dense(x.len()));
        }
        Ok(())
    }

    /// `y = a ∘ b` over the 4 physical axes `dims`, each operand read at its strides (0 along
    /// broadcast axes).
    pub fn binary(
        &self,
        op: BinaryOp,
        a: (&DeviceTensor, [usize; 4]),
        b: (&DeviceTensor, [usize; 4]),
        dims: [usize; 4],
        y: &mut DeviceTensor,
    ) -> Result<()> {
        let total: usize = dims.iter().product();
        let p = y.precision();
        same("binary output", y, p, total)?;
        for (what, (t, s)) in [("left operand", a), ("right operand", b)] {
            same(what, t, p, if total == 0 { 0 } else { reach(&dims, &s, 0) })?;
        }
        let i = |v: [usize; 4]| v.map(|x| x as i64);
        let args = BinArgs {
            a: a.0.addr(self),
            b: b.0.addr(self),
            y: y.addr(self),
            total: total as i64,
            d: i(dims),
            sa: i(a.1),
            sb: i(b.1),
            op: op as i32,
            pad_: 0,
        };
        self.launch_elements(self.funcs.ops.binary.of(p), &args, total, "launch binary")
    }

    /// A strided copy from `x` into `y` (see [`StridedCopy`]; it is merged first).
    pub fn copy(&self, x: &DeviceTensor, y: &mut DeviceTensor, c: &StridedCopy) -> Result<()> {
        if !c.well_formed() {
            return Err(KernelError::Shape("a strided copy needs one stride per axis on each side".into()));
        }
        let c = c.merged();
        let total = c.elements();
        if total == 0 {
            return Ok(());
        }
        if c.dims.len() > COPY_RANK {
            return Err(KernelError::Shape(format!(
                "a strided copy of {} axes (the device copy has {COPY_RANK})",
                c.dims.len()
            )));
        }
        let p = x.precision();
        same("copy source", x, p, c.reach(&c.src_strides, c.src_offset))?;
        same("copy destination", y, p, c.reach(&c.dst_strides, c.dst_offset))?;
        let mut a = CopyArgs {
            x: x.addr(self),
            y: y.addr(self),
            total: total as i64,
            x0: c.src_offset as i64,
            y0: c.dst_offset as i64,
            rank: c.dims.len() as i32,
            ..Default::default()
        };
        for (k, ((&d, &s), &t)) in c.dims.iter().zip(&c.src_strides).zip(&c.dst_strides).enumerate() {
            (a.d[k], a.sx[k], a.sy[k]) = (d as i64, s as i64, t as i64);
        }
        self.launch_elements(self.funcs.ops.copy.of(p), &a, total, "launch copy")
    }

    /// Max or average pooling of NHWC `x` (`dims`) into `y` (`[n, oh, ow, c]`).
    pub fn pool2d(
        &self,
        x: &DeviceTensor,
        dims: [usize; 4],
        params: &PoolParams,
        out_hw: [usize; 2],
        y: &mut DeviceTensor,
    ) -> Result<()> {
        let [n, h, w, c] = dims;
        let [oh, ow] = out_hw;
        if params.kernel.contains(&0) || params.strides.contains(&0) || params.dilations.contains(&0) {
            return Err(KernelError::Shape("pool window, strides and dilations must be positive".into()));
        }
        let p = x.precision();
        same("pool input", x, p, n * h * w * c)?;
        let total = n * oh * ow * c;
        same("pool output", y, p, total)?;
        let (max, include_pad) = match params.mode {
            PoolMode::Max => (1, 0),
            PoolMode::Average { count_include_pad } => (0, count_include_pad as i32),
        };
        let [pt, pl, pb, pr] = params.pads;
        let a = PoolArgs {
            x: x.addr(self),
            y: y.addr(self),
            total: total as i64,
            h: int(h, "height")?,
            w: int(w, "width")?,
            c: int(c, "channels")?,
            oh: int(oh, "output height")?,
            ow: int(ow, "output width")?,
            kh: int(params.kernel[0], "window")?,
            kw: int(params.kernel[1], "window")?,
            sh: int(params.strides[0], "stride")?,
            sw: int(params.strides[1], "stride")?,
            dh: int(params.dilations[0], "dilation")?,
            dw: int(params.dilations[1], "dilation")?,
            pt: int(pt, "pad")?,
            pl: int(pl, "pad")?,
            pb: int(pb, "pad")?,
            pr: int(pr, "pad")?,
            max,
            include_pad,
            pad_: 0,
        };
        self.launch_elements(self.funcs.ops.pool.of(p), &a, total, "launch pool")
    }

    /// Mean over H×W of NHWC `x` (`dims`, those `gap` was made for) into `y` (`[n, c]`).
    pub fn global_average_pool(
        &self,
        x: &DeviceTensor,
        dims: [usize; 4],
        gap: &DeviceGap,
        y: &mut DeviceTensor,
    ) -> Result<()> {
        let [n, h, w, c] = dims;
        if dims != gap.dims {
            return Err(KernelError::Shape(format!("a pool of {dims:?} with partial sums for {:?}", gap.dims)));
        }
        let p = x.precision();
        same("pool input", x, p, n * h * w * c)?;
        same("pool output", y, p, n * c)?;
        if n * c == 0 {
            return Ok(());
        }
        let a = GapArgs {
            x: x.addr(self),
            y: y.addr(self),
            part: self.addr(&gap.part),
            hw: (h * w) as i64,
            n: int(n, "images")?,
            c: int(c, "channels")?,
            splits: int(gap.splits, "segments")?,
            pad_: 0,
        };
        if n > super::launch::MAX_GRID_YZ {
            return Err(KernelError::Shape(format!("{n} images exceed one launch's grid")));
        }
        let cfg = LaunchConfig {
            grid_dim: (c.div_ceil(32) as u32, gap.splits as u32, n as u32),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream().launch_builder(self.funcs.ops.gap_part.of(p));
        launch.arg(&a);
        // SAFETY: `a` mirrors `GapArgs`; `x` holds n·h·w·c values (checked above) and `part`
        // n·splits·c (made for these dims); the kernel's 8 × 33 shared array matches the block.
        unsafe { launch.launch(cfg) }.map_err(dev_err("launch global average pool"))?;
        self.launch_elements(self.funcs.ops.gap.of(p), &a, n * c, "launch global average pool")
    }

    /// Resize of NHWC `x` (`dims`) by `taps` into `y`: NHWC, or NCHW when `planes`.
    pub fn resize(
        &self,
        x: &DeviceTensor,
        dims: [usize; 4],
        taps: &DeviceResize,
        planes: bool,
        y: &mut DeviceTensor,
    ) -> Result<()> {
        let [n, h, w, c] = dims;
        if taps.reach[0] > h || taps.reach[1] > w {
            return Err(KernelError::Shape(format!("resize taps reach {:?} of a {h}×{w} image", taps.reach)));
        }
        let p = x.precision();
        same("resize input", x, p, n * h * w * c)?;
        let [oh, ow] = taps.out;
        let total = n * oh * ow * c;
        same("resize output", y, p, total)?;
        let a = ResizeArgs {
            x: x.addr(self),
            y: y.addr(self),
            rows: self.addr(&taps.rows),
            rt: self.addr(&taps.row_t),
            cols: self.addr(&taps.cols),
            ct: self.addr(&taps.col_t),
            n: int(n, "images")?,
            h: int(h, "height")?,
            w: int(w, "width")?,
            c: int(c, "channels")?,
            oh: int(oh, "output height")?,
            ow: int(ow, "output width")?,
            linear: taps.linear as i32,
            planes: planes as i32,
        };
        self.launch_elements(self.funcs.ops.resize.of(p), &a, total, "launch resize")
    }

    /// `y = x` in `y`'s precision (f32 ↔ f16; the same precision is a copy).
    pub fn convert(&self, x: &DeviceTensor, y: &mut DeviceTensor) -> Result<()> {
        if x.len() != y.len() {
            return Err(KernelError::Shape(format!("conversion of {} values into {}", x.len(), y.len())));
        }
        if x.precision() == y.precision() {
            return self.copy(x, y, &StridedCopy::dense(x.len()));
        }
        let a = ConvertArgs { x: x.addr(self), y: y.addr(self), total: x.len() as i64 };
        self.launch_elements(self.funcs.ops.convert.of(y.precision()), &a, x.len(), "launch conversion")
    }

    /// Softmax of `x` along `len` values at stride `inner`, `outer` times, into `y`.
    pub fn softmax(
        &self,
        x: &DeviceTensor,
        (outer, len, inner): (usize, usize, usize),
        y: &mut DeviceTensor,
    ) -> Result<()> {
        let total = outer * len * inner;
        let p = x.precision();
        same("softmax input", x, p, total)?;
        same("softmax output", y, p, total)?;
        if total == 0 {
            return Ok(());
        }
        let a =
            SoftmaxArgs { x: x.addr(self), y: y.addr(self), outer: outer as i64, len: len as i64, inner: inner as i64 };
        let blocks = (outer * inner).min(1 << 20) as u32;
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
        let mut launch = self.stream().launch_builder(self.funcs.ops.softmax.of(p));
        launch.arg(&a);
        // SAFETY: `a` mirrors `SoftmaxArgs`; both buffers hold outer·len·inner values of
        // precision `p` (checked above); the kernel's 256-entry shared array matches THREADS.
        unsafe { launch.launch(cfg) }.map_err(dev_err("launch softmax")).map(|_| ())
    }

    /// Layer normalisation of each `len`-value row of `x` into `y`, with `scale` and `bias`
    /// (f32, `len` values each) on the device.
    pub fn layer_norm(
        &self,
        x: &DeviceTensor,
        len: usize,
        (scale, bias): (&CudaSlice<f32>, Option<&CudaSlice<f32>>),
        epsilon: f32,
        y: &mut DeviceTensor,
    ) -> Result<()> {
        let p = x.precision();
        if len == 0 || !x.len().is_multiple_of(len) || scale.len() != len || bias.is_some_and(|b| b.len() != len) {
            return Err(KernelError::Shape(format!(
                "layer norm of {} values in rows of {len} with {} scales and {} biases",
                x.len(),
                scale.len(),
                bias.map_or(0, CudaSlice::len)
            )));
        }
        same("layer norm output", y, p, x.len())?;
        let rows = x.len() / len;
        let a = LayerNormArgs {
            x: x.addr(self),
            y: y.addr(self),
            scale: self.addr(scale),
            bias: bias.map_or(0, |b| self.addr(b)),
            rows: rows as i64,
            len: len as i64,
            eps: epsilon,
            pad_: 0,
        };
        let cfg = LaunchConfig {
            grid_dim: (rows.min(1 << 20) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream().launch_builder(self.funcs.ops.layernorm.of(p));
        launch.arg(&a);
        // SAFETY: `a` mirrors `LayerNormArgs`; `x` and `y` hold rows·len values of precision
        // `p`, scale and bias `len` f32 (checked above); the 256-entry shared array matches
        // THREADS.
        unsafe { launch.launch(cfg) }.map_err(dev_err("launch layer norm")).map(|_| ())
    }

    /// A batched product of `a` and `b` (`m × k` by `k × n` per batch index over `batch`, each
    /// operand at its own batch strides) into the dense `y`.
    pub fn matmul(
        &self,
        (a, sa): (&DeviceTensor, &[usize]),
        (b, sb): (&DeviceTensor, &[usize]),
        (m, k, n): (usize, usize, usize),
        batch: &[usize],
        y: &mut DeviceTensor,
    ) -> Result<()> {
        if batch.len() > MM_RANK || sa.len() != batch.len() || sb.len() != batch.len() {
            return Err(KernelError::Shape(format!(
                "a batched product over {} axes (the device kernel has {MM_RANK}, one stride per axis)",
                batch.len()
            )));
        }
        let count: usize = batch.iter().product();
        let p = y.precision();
        same("matmul output", y, p, count * m * n)?;
        if count * m * n == 0 {
            return Ok(());
        }
        // The farthest element each operand's batch offsets reach.
        let far = |s: &[usize]| batch.iter().zip(s).map(|(&d, &st)| (d - 1) * st).sum::<usize>();
        same("matmul left operand", a, p, far(sa) + m * k)?;
        same("matmul right operand", b, p, far(sb) + k * n)?;
        let mut args = MatMulArgs {
            a: a.addr(self),
            b: b.addr(self),
            y: y.addr(self),
            m: m as i64,
            k: k as i64,
            n: n as i64,
            batch: [1; MM_RANK],
            ..Default::default()
        };
        let lead = MM_RANK - batch.len();
        for (d, ((&bd, &x), &z)) in batch.iter().zip(sa).zip(sb).enumerate() {
            (args.batch[lead + d], args.sa[lead + d], args.sb[lead + d]) = (bd as i64, x as i64, z as i64);
        }
        const T: usize = 16;
        if count > super::launch::MAX_GRID_YZ || m.div_ceil(T) > super::launch::MAX_GRID_YZ {
            return Err(KernelError::Shape(format!("a product of {count} × {m} rows exceeds one launch's grid")));
        }
        let cfg = LaunchConfig {
            grid_dim: (int(n.div_ceil(T), "columns")? as u32, m.div_ceil(T) as u32, count as u32),
            block_dim: (T as u32, T as u32, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream().launch_builder(self.funcs.ops.matmul.of(p));
        launch.arg(&args);
        // SAFETY: `args` mirrors `MatMulArgs`; every offset the kernel forms (batch offsets
        // plus an m·k or k·n block) is within `a` and `b`, and `y` holds count·m·n values
        // (checked above); the 16×17 shared tiles match the 16×16 block.
        unsafe { launch.launch(cfg) }.map_err(dev_err("launch matmul")).map(|_| ())
    }
}
