//! The plan's element-wise, data-movement, pooling, resize and softmax steps on device tensors
//! (`kernels/ops.cu`): shapes and bounds checked here, once per call, then one launch.

use cudarc::driver::{CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

use super::args::{
    int, map_activation, BinArgs, ConvertArgs, CopyArgs, GapArgs, MapArgs, PoolArgs, ResizeArgs, SoftmaxArgs,
    COPY_RANK, MAP_MAX,
};
use super::device::{dev_err, DeviceTensor, Gpu, Precision};
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

/// The operator of [`Gpu::binary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
}

/// A strided copy ([`Gpu::copy`]): element `(i₀, …)` of the iteration space `dims` goes from
/// `src[src_offset + Σ iₖ·src_strides[k]]` to `dst[dst_offset + Σ iₖ·dst_strides[k]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StridedCopy {
    /// Iteration space, outermost first (at most 6 axes after merging).
    pub dims: Vec<usize>,
    /// Source strides per axis.
    pub src_strides: Vec<usize>,
    /// Destination strides per axis.
    pub dst_strides: Vec<usize>,
    /// First source element.
    pub src_offset: usize,
    /// First destination element.
    pub dst_offset: usize,
}

impl StridedCopy {
    /// A dense copy of `len` elements.
    pub fn dense(len: usize) -> Self {
        Self { dims: vec![len], src_strides: vec![1], dst_strides: vec![1], ..Self::default() }
    }

    /// The same copy with axes of one element dropped and neighbours that are contiguous in
    /// both tensors merged (fewer divisions per element, and most copies fit the kernel's
    /// six axes).
    pub fn merged(&self) -> Self {
        let mut m = Self { src_offset: self.src_offset, dst_offset: self.dst_offset, ..Self::default() };
        for ((&d, &s), &t) in self.dims.iter().zip(&self.src_strides).zip(&self.dst_strides) {
            if d == 1 {
                continue;
            }
            match (m.dims.last_mut(), m.src_strides.last_mut(), m.dst_strides.last_mut()) {
                (Some(pd), Some(ps), Some(pt)) if *ps == s * d && *pt == t * d => {
                    *pd *= d;
                    (*ps, *pt) = (s, t);
                }
                _ => {
                    m.dims.push(d);
                    m.src_strides.push(s);
                    m.dst_strides.push(t);
                }
            }
        }
        m
    }

    fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// One past the last element one side touches (its `strides` and `offset`).
    fn reach(&self, strides: &[usize], offset: usize) -> usize {
        reach(&self.dims, strides, offset)
    }
}

/// One past the last element of a non-empty iteration over `dims` at `strides` from `offset`.
fn reach(dims: &[usize], strides: &[usize], offset: usize) -> usize {
    offset + 1 + dims.iter().zip(strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>()
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
        if c.dims.len() != c.src_strides.len() || c.dims.len() != c.dst_strides.len() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_copies_merge_contiguous_axes_and_drop_unit_ones() {
        // NCHW [2, 3, 4, 5] → NHWC: iteration over (n, h·w, c) after merging h and w.
        let c = StridedCopy {
            dims: vec![2, 4, 5, 3],
            src_strides: vec![60, 5, 1, 20],
            dst_strides: vec![60, 15, 3, 1],
            ..Default::default()
        };
        let m = c.merged();
        assert_eq!(m.dims, vec![2, 20, 3]);
        assert_eq!(m.src_strides, vec![60, 1, 20]);
        assert_eq!(m.dst_strides, vec![60, 3, 1]);
        assert_eq!(m.reach(&m.src_strides, 0), 120);
        // A dense copy of a [1, 8, 1, 6] block is one axis.
        let d = StridedCopy {
            dims: vec![1, 8, 1, 6],
            src_strides: vec![48, 6, 6, 1],
            dst_strides: vec![48, 6, 6, 1],
            src_offset: 3,
            dst_offset: 0,
        };
        let m = d.merged();
        assert_eq!((m.dims.clone(), m.src_strides.clone(), m.src_offset), (vec![48], vec![1], 3));
        assert_eq!(m.reach(&m.src_strides, m.src_offset), 51);
        assert_eq!(StridedCopy::dense(0).merged().elements(), 0);
    }
}
