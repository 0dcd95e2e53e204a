//! Launches on device tensors: shapes checked here, once, then one kernel per GEMM part.

use cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};

use super::args::{activation, int, DwArgs, GemmArgs};
use super::device::{dev_err, DeviceBuf, DeviceTensor, GemmPair, Gpu, Precision, TensorCores};
use super::weights::{ConvBody, DeviceConv, DeviceMatrix, Layout, Part};
use crate::conv::{ConvKind, ConvParams};
use crate::epilogue::Activation;
use crate::error::{KernelError, Result};

/// Bias of a device GEMM.
#[derive(Debug, Default)]
pub enum DeviceBias {
    /// None.
    #[default]
    None,
    /// `bias[i]` added to row `i`.
    PerRow(CudaSlice<f32>),
    /// `bias[j]` added to column `j` (per output channel).
    PerCol(CudaSlice<f32>),
}

/// The fused epilogue of a device GEMM or convolution: `activation(acc + bias + residual)`,
/// the residual passed per call.
#[derive(Debug, Default)]
pub struct DeviceEpilogue {
    /// Bias, uploaded once.
    pub bias: DeviceBias,
    /// Activation applied last.
    pub activation: Activation,
}

impl DeviceEpilogue {
    /// The epilogue, or an error naming an activation the CUDA kernels do not have.
    pub fn checked(self) -> Result<Self> {
        activation(self.activation)?;
        Ok(self)
    }
}

const THREADS: u32 = 256;
const TILE: usize = 128;
/// The CUDA-core kernels' K step.
const SIMT_K_STEP: usize = 8;
/// Widest output the CUDA-core kernels give a 32-column tile: a 128-column one would leave at
/// least half its columns idle.
const NARROW_SIMT_MAX: usize = 64;
/// Fewest K steps of one split-K range (shorter ranges cost more in partial sums than they
/// gain in parallelism): 4 of the CUDA-core kernels' 8, 2 of the tensor-core kernels' 32 or 64.
const SIMT_MIN_SPLIT_STEPS: usize = 4;
const TC_MIN_SPLIT_STEPS: usize = 2;
/// Most K ranges of one launch.
const MAX_SPLITS: usize = 32;

/// `(splits, K per split)` for a launch of `tiles` blocks over `outputs` values and a
/// reduction of `k` in steps of `step.0` (ranges of at least `step.1` steps), on `sms` SMs with
/// room for `workspace` partial sums, when the tiles alone would leave SMs idle: enough ranges
/// to give every SM two blocks, no more than `MAX_SPLITS`, and partial sums that fit; `None`
/// where one range is best. Every range but the last is a whole number of steps.
pub(crate) fn split_plan(
    tiles: usize,
    outputs: usize,
    k: usize,
    (step, min_steps): (usize, usize),
    sms: usize,
    workspace: usize,
) -> Option<(usize, usize)> {
    if tiles == 0 || tiles >= sms || step == 0 || min_steps == 0 {
        return None;
    }
    let steps = k.div_ceil(step);
    let by_sms = (2 * sms).div_ceil(tiles);
    let by_k = steps / min_steps;
    let by_workspace = workspace / outputs.max(1);
    let want = by_sms.min(by_k).min(by_workspace).min(MAX_SPLITS);
    if want < 2 {
        return None;
    }
    let chunk = steps.div_ceil(want) * step;
    Some((k.div_ceil(chunk), chunk))
}

/// The kernel and launch geometry of one GEMM part.
struct GemmShape<'a> {
    pair: &'a GemmPair,
    tile_n: usize,
    smem: u32,
    threads: u32,
    /// The kernel's split-K form, its K step and the fewest steps of a range, where it has one.
    split: Option<(&'a GemmPair, usize, usize)>,
}

impl<'a> GemmShape<'a> {
    fn of(t: &'a TensorCores) -> Self {
        let split = t.split_k.as_ref().map(|(pair, step)| (pair, *step, TC_MIN_SPLIT_STEPS));
        Self { pair: &t.pair, tile_n: t.tile_n, smem: t.smem, threads: t.threads, split }
    }
}

/// Largest grid extent along y or z.
pub(super) const MAX_GRID_YZ: usize = 65_535;

fn same_precision(what: &str, t: &DeviceTensor, p: Precision) -> Result<()> {
    if t.precision() != p {
        return Err(KernelError::Shape(format!("{what} is {:?}, the weights are {p:?}", t.precision())));
    }
    Ok(())
}

fn check_len(what: &str, t: &DeviceTensor, len: usize) -> Result<()> {
    if t.len() != len {
        return Err(KernelError::Shape(format!("{what} holds {} values, expected {len}", t.len())));
    }
    Ok(())
}

impl Gpu {
    fn epilogue_args(&self, a: &mut GemmArgs, epi: &DeviceEpilogue, residual: Option<&DeviceTensor>) -> Result<()> {
        let (act, p0, p1) = activation(epi.activation)?;
        (a.act, a.p0, a.p1) = (act, p0, p1);
        (a.bias_mode, a.bias) = match &epi.bias {
            DeviceBias::None => (0, 0),
            DeviceBias::PerRow(b) => (1, self.addr(b)),
            DeviceBias::PerCol(b) => (2, self.addr(b)),
        };
        a.residual = residual.map_or(0, |r| r.addr(self));
        Ok(())
    }

    fn check_bias(&self, epi: &DeviceEpilogue, rows: usize, cols: usize) -> Result<()> {
        match &epi.bias {
            DeviceBias::PerRow(b) if b.len() != rows => {
                Err(KernelError::Shape(format!("per-row bias has {} values, output has {rows} rows", b.len())))
            }
            DeviceBias::PerCol(b) if b.len() != cols => {
                Err(KernelError::Shape(format!("per-column bias has {} values, output has {cols} columns", b.len())))
            }
            _ => Ok(()),
        }
    }

    /// Fills B's fields for `part`, picks the kernel and launches over `m × n × groups`.
    fn launch_part(&self, mut a: GemmArgs, part: &Part, groups: usize) -> Result<()> {
        let (m, n) = (a.m as usize, part.n);
        if m == 0 || n == 0 {
            return Ok(());
        }
        a.b = part.weights.addr(self);
        a.n = int(n, "output columns")?;
        a.k = int(part.k, "reduction length")?;
        a.b_gs = part.group_stride as i64;
        a.groups = int(groups, "groups")?;
        let shape = self.gemm_shape(part.weights.precision(), part.layout, n)?;
        match part.layout {
            Layout::Panels => (a.b_ps, a.b_rs) = ((part.k * TILE) as i64, TILE as i64),
            Layout::Transposed => (a.b_ps, a.b_rs) = (0, part.k as i64),
        }
        let (gy, gx) = (m.div_ceil(TILE), n.div_ceil(shape.tile_n));
        // The split-K form and its plan `(splits, K per split)`, where the launch splits.
        let split = shape.split.and_then(|(pair, step, min)| {
            self.split_k(gx * gy * groups, m * n * groups, part.k, (step, min)).map(|plan| (pair, plan))
        });
        let (pair, splits) = split.map_or((shape.pair, 1), |(pair, (s, _))| (pair, s));
        let func: &CudaFunction = if a.conv == 1 { &pair.conv } else { &pair.dense };
        if gy > MAX_GRID_YZ || groups * splits > MAX_GRID_YZ {
            return Err(KernelError::Shape(format!("{m} rows × {groups} groups exceed one launch's grid")));
        }
        if let Some((_, (s, chunk))) = split {
            (a.splits, a.k_chunk, a.ws) = (s as i32, chunk as i32, self.addr(&self.workspace));
        }
        let cfg = LaunchConfig {
            grid_dim: (gx as u32, gy as u32, (groups * splits) as u32),
            block_dim: (shape.threads, 1, 1),
            shared_mem_bytes: shape.smem,
        };
        let mut launch = self.stream().launch_builder(func);
        launch.arg(&a);
        // SAFETY: `a` matches the kernel's `GemmArgs`; every address in it is a live buffer of
        // this context whose length the caller checked against m, n, k and the geometry (the
        // split-K partial sums, splits · groups · m · n values, fit the workspace: `split_k`),
        // and the single stream orders this launch after the writes it reads.
        unsafe { launch.launch(cfg) }.map_err(dev_err("launch gemm"))?;
        if split.is_some() {
            let reduce = self.funcs.splitk_reduce.of(part.weights.precision());
            self.launch_elements(reduce, &a, m * n * groups, "launch split-K reduction")?;
        }
        Ok(())
    }

    /// The kernel for `n` output columns of weights in `precision` and `layout`: the CUDA-core
    /// tiles are 128 × 128 (128 × 32 for few columns) with static shared memory; each
    /// tensor-core kernel carries its own geometry (wgmma for outputs wider than 128 columns,
    /// mma.sync's 64-column tile for up to 64).
    fn gemm_shape(&self, precision: Precision, layout: Layout, n: usize) -> Result<GemmShape<'_>> {
        let narrow = self.tuning.narrow_tiles;
        let simt = |pair, split, tile_n| GemmShape {
            pair,
            tile_n,
            smem: 0,
            threads: THREADS,
            split: Some((split, SIMT_K_STEP, SIMT_MIN_SPLIT_STEPS)),
        };
        let f = &self.funcs;
        let simt_narrow = narrow && n <= NARROW_SIMT_MAX;
        Ok(match (precision, layout) {
            (Precision::F32, _) if simt_narrow => simt(&f.f32_n32, &f.f32_n32, 32),
            (Precision::F32, _) => simt(&f.f32, &f.f32_sk, TILE),
            (Precision::F16, Layout::Panels) if simt_narrow => simt(&f.f16_n32, &f.f16_n32, 32),
            (Precision::F16, Layout::Panels) => simt(&f.f16, &f.f16_sk, TILE),
            (Precision::F16, Layout::Transposed) => {
                let wide = f.f16_wgmma.as_ref().filter(|_| n > TILE);
                let few = f.f16_mma_n64.as_ref().filter(|t| narrow && n <= t.tile_n);
                let t = wide.or(few).or(f.f16_mma.as_ref());
                let t = t.ok_or_else(|| KernelError::Device("no tensor-core kernel".into()))?;
                GemmShape::of(t)
            }
        })
    }

    /// The split-K plan of a launch ([`split_plan`]) on this GPU, if the rule is on.
    fn split_k(&self, tiles: usize, outputs: usize, k: usize, step: (usize, usize)) -> Option<(usize, usize)> {
        let room = self.workspace.len();
        self.tuning.split_k.then(|| split_plan(tiles, outputs, k, step, self.sm_count, room)).flatten()
    }

    /// `C = activation(A·B + bias + residual)`: `A` is `m × k` row-major, `C` and the residual
    /// `m × n` row-major, all in the weights' precision.
    pub fn gemm(
        &self,
        a: &DeviceTensor,
        m: usize,
        b: &DeviceMatrix,
        epi: &DeviceEpilogue,
        residual: Option<&DeviceTensor>,
        c: &mut DeviceTensor,
    ) -> Result<()> {
        let (k, n) = b.dims();
        let p = b.precision();
        for (what, t, len) in [("A", a, m * k), ("C", &*c, m * n)] {
            same_precision(what, t, p)?;
            check_len(what, t, len)?;
        }
        if let Some(r) = residual {
            same_precision("residual", r, p)?;
            check_len("residual", r, m * n)?;
        }
        self.check_bias(epi, m, n)?;
        let mut args = GemmArgs {
            a: a.addr(self),
            c: c.addr(self),
            lda: k as i64,
            ldc: n as i64,
            m: int(m, "rows")?,
            ..Default::default()
        };
        self.epilogue_args(&mut args, epi, residual)?;
        self.launch_part(args, &b.part, 1)
    }

    /// An ONNX `Conv` / `ConvTranspose` on NHWC device tensors: `input` is `dims`, `output`
    /// and the residual the output's shape; returns the output's dims.
    pub fn conv2d(
        &self,
        input: &DeviceTensor,
        dims: [usize; 4],
        w: &DeviceConv,
        epi: &DeviceEpilogue,
        residual: Option<&DeviceTensor>,
        output: &mut DeviceTensor,
    ) -> Result<[usize; 4]> {
        let out_dims = self.check_conv(input, dims, w, epi, residual, output)?;
        if out_dims.iter().product::<usize>() == 0 {
            return Ok(out_dims);
        }
        let call = ConvCall { input, dims, out_dims, p: w.params, epi, residual };
        match &w.body {
            ConvBody::Depthwise(wt) => self.conv_depthwise(&call, wt, w.precision(), output)?,
            ConvBody::Gemm(parts) => self.conv_parts(&call, parts, output)?,
        }
        Ok(out_dims)
    }

    /// Checks a convolution's tensors against its weights; returns the output's dims.
    fn check_conv(
        &self,
        input: &DeviceTensor,
        [n, h, wd, c]: [usize; 4],
        w: &DeviceConv,
        epi: &DeviceEpilogue,
        residual: Option<&DeviceTensor>,
        output: &DeviceTensor,
    ) -> Result<[usize; 4]> {
        let p = &w.params;
        if c != p.c_in {
            return Err(KernelError::Shape(format!("convolution input has {c} channels, weights expect {}", p.c_in)));
        }
        let [oh, ow] = p.output_hw(h, wd)?;
        let out_len = n * oh * ow * p.c_out;
        same_precision("input", input, w.precision())?;
        check_len("input", input, n * h * wd * c)?;
        same_precision("output", output, w.precision())?;
        check_len("output", output, out_len)?;
        if let Some(r) = residual {
            same_precision("residual", r, w.precision())?;
            check_len("residual", r, out_len)?;
        }
        if matches!(epi.bias, DeviceBias::PerRow(_)) {
            return Err(KernelError::Shape("convolution bias is per output channel".into()));
        }
        self.check_bias(epi, n * oh * ow, p.c_out)?;
        Ok([n, oh, ow, p.c_out])
    }

    /// A depthwise convolution: one thread per output element.
    fn conv_depthwise(
        &self,
        call: &ConvCall<'_>,
        wt: &DeviceBuf,
        precision: Precision,
        output: &mut DeviceTensor,
    ) -> Result<()> {
        let (p, [_, h, wd, c], [_, oh, ow, _]) = (&call.p, call.dims, call.out_dims);
        let out_len = call.out_dims.iter().product::<usize>();
        let (act, p0, p1) = activation(call.epi.activation)?;
        let a = DwArgs {
            x: call.input.addr(self),
            w: wt.addr(self),
            bias: match &call.epi.bias {
                DeviceBias::PerCol(b) => self.addr(b),
                _ => 0,
            },
            residual: call.residual.map_or(0, |r| r.addr(self)),
            y: output.addr(self),
            total: out_len as i64,
            h: int(h, "height")?,
            w_: int(wd, "width")?,
            c: int(c, "channels")?,
            oh: int(oh, "output height")?,
            ow: int(ow, "output width")?,
            c_out: int(p.c_out, "output channels")?,
            kh: int(p.kernel[0], "kernel")?,
            kw: int(p.kernel[1], "kernel")?,
            sh: int(p.strides[0], "stride")?,
            sw: int(p.strides[1], "stride")?,
            dh: int(p.dilations[0], "dilation")?,
            dw: int(p.dilations[1], "dilation")?,
            pt: int(p.pads[0], "pad")?,
            pl: int(p.pads[1], "pad")?,
            mult: int(p.c_out / p.c_in, "channel multiplier")?,
            act,
            p0,
            p1,
        };
        let func = match precision {
            Precision::F32 => &self.funcs.depthwise_f32,
            Precision::F16 => &self.funcs.depthwise_f16,
        };
        // Input, weights, bias, residual and output lengths were checked against the
        // geometry (`check_conv`).
        self.launch_elements(func, &a, out_len, "launch depthwise")
    }

    /// A convolution as implicit GEMMs: one, or one per output phase of a `ConvTranspose`
    /// (a pointwise `Conv` as a plain GEMM on the pixel matrix).
    fn conv_parts(&self, call: &ConvCall<'_>, parts: &[Part], output: &mut DeviceTensor) -> Result<()> {
        let (p, [n, h, wd, c], [_, oh, ow, _]) = (&call.p, call.dims, call.out_dims);
        let pointwise = p.kind == ConvKind::Forward
            && p.kernel == [1, 1]
            && p.strides == [1, 1]
            && p.pads == [0; 4]
            && p.groups == 1;
        let mut base = GemmArgs { a: call.input.addr(self), c: output.addr(self), ..Default::default() };
        self.epilogue_args(&mut base, call.epi, call.residual)?;
        for part in parts {
            let mut a = base;
            if pointwise {
                (a.lda, a.ldc, a.m) = (c as i64, p.c_out as i64, int(n * h * wd, "pixels")?);
            } else {
                let (gh, gw, step, os) = match p.kind {
                    ConvKind::Forward => (oh, ow, p.strides, [1, 1]),
                    ConvKind::Transposed { .. } => {
                        let grid = |o: usize, ph: usize, s: usize| if o > ph { (o - ph).div_ceil(s) } else { 0 };
                        let (s, ph) = (p.strides, part.phase);
                        (grid(oh, ph[0], s[0]), grid(ow, ph[1], s[1]), [1, 1], s)
                    }
                };
                a.conv = 1;
                a.m = int(n * gh * gw, "pixels")?;
                (a.in_h, a.in_w, a.in_c) = (int(h, "height")?, int(wd, "width")?, int(c, "channels")?);
                (a.gh, a.gw, a.is_h, a.is_w) = (int(gh, "rows")?, int(gw, "columns")?, step[0] as i32, step[1] as i32);
                a.cg_in = int(p.c_in_per_group(), "channels")?;
                (a.out_h, a.out_w, a.c_out) = (int(oh, "height")?, int(ow, "width")?, int(p.c_out, "channels")?);
                (a.oy0, a.ox0) = (part.phase[0] as i32, part.phase[1] as i32);
                (a.os_h, a.os_w) = (int(os[0], "stride")?, int(os[1], "stride")?);
                a.offs = part.offs.as_ref().map_or(0, |o| self.addr(o));
            }
            self.launch_part(a, part, p.groups)?;
        }
        Ok(())
    }
}

/// One checked convolution call, as the launchers read it.
struct ConvCall<'a> {
    input: &'a DeviceTensor,
    /// The input's NHWC dims.
    dims: [usize; 4],
    /// The output's NHWC dims.
    out_dims: [usize; 4],
    p: ConvParams,
    epi: &'a DeviceEpilogue,
    residual: Option<&'a DeviceTensor>,
}

#[cfg(test)]
mod tests {
    use super::{split_plan, MAX_SPLITS, SIMT_MIN_SPLIT_STEPS as MIN};

    #[test]
    fn split_k_ranges_cover_k_in_whole_steps_and_fit_the_workspace() {
        let mut split = 0;
        for tiles in [1, 3, 4, 12, 40, 131, 132, 500] {
            for k in [8, 27, 64, 100, 384, 864, 1000, 4608] {
                for (step, sms, room) in [(8, 132, 4 << 20), (64, 132, 4 << 20), (8, 8, 4 << 20), (8, 132, 20_000)] {
                    let outputs = tiles * 128 * 24;
                    let Some((splits, chunk)) = split_plan(tiles, outputs, k, (step, MIN), sms, room) else {
                        continue;
                    };
                    split += 1;
                    let case = format!("tiles {tiles} k {k} step {step} sms {sms} room {room}");
                    assert!(tiles < sms, "{case}: split with every SM busy");
                    assert!((2..=MAX_SPLITS).contains(&splits), "{case}: {splits} splits");
                    assert_eq!(chunk % step, 0, "{case}: a range of {chunk} is not whole steps");
                    assert!(chunk >= MIN * step, "{case}: range {chunk} under the minimum");
                    // The ranges cover K exactly: none empty, none past the end.
                    assert!(splits * chunk >= k && (splits - 1) * chunk < k, "{case}: {splits} × {chunk}");
                    assert!(splits * outputs <= room, "{case}: partial sums overflow the workspace");
                    assert!(tiles * splits <= 2 * sms + tiles, "{case}: {splits} splits of {tiles} tiles");
                }
            }
        }
        assert!(split > 20, "the cases above must exercise the split ({split} did)");
        // Enough tiles for the SMs, a reduction too short or no workspace: one range.
        assert_eq!(split_plan(132, 1000, 4608, (8, MIN), 132, 4 << 20), None);
        assert_eq!(split_plan(4, 1000, 8 * (2 * MIN - 1), (8, MIN), 132, 4 << 20), None);
        assert_eq!(split_plan(4, 1000, 4608, (8, MIN), 132, 1999), None);
        // The 20×20 3×3 96→24 convolution of the PP-OCR neck in f32: 4 tiles of 128 × 32.
        assert_eq!(split_plan(4, 400 * 24, 864, (8, MIN), 132, 4 << 20), Some((27, 32)));
        // Its 1×1 384→384 layers in f16 on mma.sync (12 tiles, K steps of 64, 2 a range).
        assert_eq!(split_plan(12, 400 * 384, 384, (64, 2), 132, 4 << 20), Some((3, 128)));
    }
}
