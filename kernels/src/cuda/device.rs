//! The GPU: driver probe, one context and stream, the compiled kernels, and device tensors.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, PinnedHostSlice};
use cudarc::nvrtc::Ptx;
use half::f16;

use super::compile::{self, Compiled};
use crate::error::{KernelError, Result};

pub use crate::device::Precision;

/// A GEMM kernel in its dense (`gemm_*`) and convolution (`conv_*`) forms.
#[derive(Debug, Clone)]
pub(crate) struct GemmPair {
    pub dense: CudaFunction,
    pub conv: CudaFunction,
}

/// A tensor-core kernel with its launch geometry, resolved once when the module is loaded.
#[derive(Debug)]
pub(crate) struct TensorCores {
    pub pair: GemmPair,
    /// `mma.sync` (sm_80+), `wmma` (sm_70+) or `wgmma` (sm_90a).
    pub name: &'static str,
    /// Output tile columns.
    pub tile_n: usize,
    /// Dynamic shared memory per block.
    pub smem: u32,
    /// Threads per block.
    pub threads: u32,
    /// Its form that reduces one K range into split-K partial sums, with its K step.
    pub split_k: Option<(GemmPair, usize)>,
}

/// The compiled kernels of one module.
#[derive(Debug)]
pub(crate) struct Funcs {
    pub f32: GemmPair,
    pub f16: GemmPair,
    /// The CUDA-core kernels reducing one K range each (split K).
    pub f32_sk: GemmPair,
    pub f16_sk: GemmPair,
    /// The CUDA-core kernels with 32-column tiles (outputs of few channels), split K or not.
    pub f32_n32: GemmPair,
    pub f16_n32: GemmPair,
    /// Sums split-K partial sums and applies the epilogue.
    pub splitk_reduce: super::ops::PerPrecision,
    /// f16 GEMMs of up to 128 columns (every f16 GEMM without wgmma).
    pub f16_mma: Option<TensorCores>,
    /// f16 GEMMs of up to 64 columns on `mma.sync` (64-column tiles).
    pub f16_mma_n64: Option<TensorCores>,
    /// f16 GEMMs wider than 128 columns on Hopper.
    pub f16_wgmma: Option<TensorCores>,
    pub depthwise_f32: CudaFunction,
    pub depthwise_f16: CudaFunction,
    /// The plan's other steps (`ops.cu`).
    pub ops: super::ops::OpFuncs,
}

/// One GPU with its context, stream and kernels: opened once per process ([`gpu`]).
#[derive(Debug)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    sm: u32,
    /// Streaming multiprocessors.
    pub(crate) sm_count: usize,
    /// Split-K partial sums (every launch of this lane is ordered on its stream, so one per
    /// lane suffices).
    pub(crate) workspace: CudaSlice<f32>,
    /// The process's knobs (the launch rules `split_k` and `narrow_tiles` are read per launch).
    pub(crate) tuning: &'static crate::Tuning,
    nvrtc: (i32, i32),
    pub(crate) funcs: Arc<Funcs>,
    pub(crate) compiled: Arc<Compiled>,
}

/// f32 values of split-K partial sums the GPU keeps (16 MiB): a launch whose partial sums
/// would not fit splits less.
const SPLIT_K_WORKSPACE: usize = 4 << 20;

fn no_driver(reason: impl Into<String>) -> KernelError {
    KernelError::Unavailable { set: "cuda".into(), reason: reason.into() }
}

/// Whether the CUDA driver library (libcuda.so) can be opened; nothing else is called before
/// this says yes.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library under its known names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The process's GPU (device 0), opened and its kernels compiled on first use; afterwards the
/// same one, or the same error ("no CUDA driver", "no CUDA device", a compile error).
pub fn gpu() -> Result<Arc<Gpu>> {
    static GPU: OnceLock<Result<Arc<Gpu>>> = OnceLock::new();
    GPU.get_or_init(|| Gpu::open().map(Arc::new)).clone()
}

/// Runs `f`, turning a panic inside cudarc (a missing symbol in an old driver) into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| KernelError::Device(format!("{what}: the CUDA library lacks a function this build calls")))
}

pub(crate) fn dev_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> KernelError + '_ {
    move |e| KernelError::Device(format!("{what}: {e:?}"))
}

impl Gpu {
    fn open() -> Result<Self> {
        if !driver_present() {
            return Err(no_driver("no CUDA driver (libcuda.so.1 not found)"));
        }
        if !compile::nvrtc_present() {
            return Err(no_driver("no NVRTC library (libnvrtc.so) found: the kernels are compiled at run time"));
        }
        let ctx =
            guarded("cuInit", || CudaContext::new(0))?.map_err(|e| no_driver(format!("no CUDA device: {e:?}")))?;
        let (major, minor) = ctx.compute_capability().map_err(dev_err("compute capability"))?;
        let sm = u32::try_from(major * 10 + minor).map_err(|_| KernelError::Device("bad compute capability".into()))?;
        let name = ctx.name().unwrap_or_else(|_| "NVIDIA GPU".into());
        // One stream per lane (`lane`); every launch and copy of a lane goes through its stream,
        // in order, so the driver's per-buffer event tracking is not needed. A stream of its
        // own, not the legacy default one, so that a run can be captured as a CUDA graph.
        // SAFETY: a buffer written on one stream is used on another only after that stream was
        // synchronized (weights shared by the lanes of one model: `Device::load`); every
        // other buffer stays on the lane that made it.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(dev_err("stream"))?;
        let nvrtc = compile::nvrtc_version()?;
        let tuning = crate::Tuning::host()?;
        let compiled = compile::compile_with(sm, compile::MmaConfig::from_tuning(tuning)?)?;
        let module = ctx.load_module(Ptx::from_binary(compiled.cubin.clone())).map_err(dev_err("load module"))?;
        let funcs = load_funcs(&module, sm, &compiled)?;
        let sm_count = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(dev_err("multiprocessor count"))?;
        let workspace = stream.alloc_zeros(SPLIT_K_WORKSPACE).map_err(dev_err("split-K workspace"))?;
        Ok(Self {
            ctx,
            stream,
            name,
            sm,
            sm_count: sm_count.max(1) as usize,
            workspace,
            tuning,
            nvrtc,
            funcs: Arc::new(funcs),
            compiled: Arc::new(compiled),
        })
    }

    /// A lane of this GPU: its own stream and split-K workspace over the same context, kernels
    /// and memory, so that work issued on different lanes (sessions in different threads)
    /// overlaps on the device. A buffer written on one lane may be read on another once the
    /// writing lane was synchronized.
    pub fn lane(&self) -> Result<Arc<Gpu>> {
        let stream = self.ctx.new_stream().map_err(dev_err("stream"))?;
        let workspace = stream.alloc_zeros(SPLIT_K_WORKSPACE).map_err(dev_err("split-K workspace"))?;
        Ok(Arc::new(Gpu {
            ctx: Arc::clone(&self.ctx),
            stream,
            name: self.name.clone(),
            sm: self.sm,
            sm_count: self.sm_count,
            workspace,
            tuning: self.tuning,
            nvrtc: self.nvrtc,
            funcs: Arc::clone(&self.funcs),
            compiled: Arc::clone(&self.compiled),
        }))
    }

    /// The device's name (`NVIDIA H100 80GB HBM3`, `Xavier`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Compute capability as `sm_XX`'s number.
    pub fn sm(&self) -> u32 {
        self.sm
    }

    /// NVRTC's version.
    pub fn nvrtc_version(&self) -> (i32, i32) {
        self.nvrtc
    }

    /// Whether f16 GEMMs can use a tensor-core kernel.
    pub fn has_mma(&self) -> bool {
        self.funcs.f16_mma.is_some()
    }

    /// The tensor-core kernel f16 GEMMs of up to 128 columns run on: `mma.sync`, `wmma`, or
    /// `none` (f16 storage on the CUDA cores).
    pub fn tensor_core_kernel(&self) -> &'static str {
        self.funcs.f16_mma.as_ref().map_or("none", |t| t.name)
    }

    /// Whether f16 GEMMs wider than 128 columns run on Hopper's warpgroup MMA (`wgmma`).
    pub fn has_wgmma(&self) -> bool {
        self.funcs.f16_wgmma.is_some()
    }

    /// The ptxas report of the loaded kernels.
    pub fn kernel_stats(&self) -> &[compile::KernelStats] {
        &self.compiled.kernels
    }

    /// The stream every call is issued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for every issued call.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(dev_err("synchronize"))
    }

    /// Copies f32 values to the device.
    pub fn upload_f32(&self, v: &[f32]) -> Result<CudaSlice<f32>> {
        self.stream.clone_htod(v).map_err(dev_err("upload"))
    }

    /// Copies values to device storage of precision `p` (rounding to f16 on the host).
    pub(crate) fn upload_buf(&self, v: &[f32], p: Precision) -> Result<DeviceBuf> {
        Ok(match p {
            Precision::F32 => DeviceBuf::F32(self.upload_f32(v)?),
            Precision::F16 => {
                let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
                DeviceBuf::F16(self.stream.clone_htod(&h).map_err(dev_err("upload"))?)
            }
        })
    }

    /// Copies values to a device tensor of precision `p` (rounding to f16 on the host).
    pub fn upload(&self, v: &[f32], p: Precision) -> Result<DeviceTensor> {
        Ok(DeviceTensor { buf: self.upload_buf(v, p)?, len: v.len() })
    }

    /// Overwrites a device tensor with `v` (same length; rounded to f16 on the host if the
    /// tensor is f16).
    pub fn write(&self, v: &[f32], t: &mut DeviceTensor) -> Result<()> {
        if v.len() != t.len {
            return Err(KernelError::Shape(format!("upload of {} values into {}", v.len(), t.len)));
        }
        if v.is_empty() {
            return Ok(());
        }
        match &mut t.buf {
            DeviceBuf::F32(s) => self.stream.memcpy_htod(v, &mut s.slice_mut(..v.len())).map_err(dev_err("upload")),
            DeviceBuf::F16(s) => {
                let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
                self.stream.memcpy_htod(&h, &mut s.slice_mut(..v.len())).map_err(dev_err("upload"))
            }
        }
    }

    /// A device tensor of `len` elements, zeroed.
    pub fn zeros(&self, len: usize, p: Precision) -> Result<DeviceTensor> {
        // At least one element, so every tensor has a real address.
        let n = len.max(1);
        let buf = match p {
            Precision::F32 => DeviceBuf::F32(self.stream.alloc_zeros(n).map_err(dev_err("alloc"))?),
            Precision::F16 => DeviceBuf::F16(self.stream.alloc_zeros(n).map_err(dev_err("alloc"))?),
        };
        Ok(DeviceTensor { buf, len })
    }

    /// Copies a device tensor back into `out` (converting f16 to f32).
    pub fn download(&self, t: &DeviceTensor, out: &mut [f32]) -> Result<()> {
        if out.len() != t.len {
            return Err(KernelError::Shape(format!("download of {} values into {}", t.len, out.len())));
        }
        if t.len == 0 {
            return Ok(());
        }
        match &t.buf {
            DeviceBuf::F32(s) => self.stream.memcpy_dtoh(&s.slice(..t.len), out).map_err(dev_err("download")),
            DeviceBuf::F16(s) => {
                let mut h = vec![f16::ZERO; t.len];
                self.stream.memcpy_dtoh(&s.slice(..t.len), &mut h).map_err(dev_err("download"))?;
                out.iter_mut().zip(&h).for_each(|(o, v)| *o = v.to_f32());
                Ok(())
            }
        }
    }

    /// A page-locked host buffer of `len` f32 values, zeroed: copies between it and the device
    /// run at the bus's full rate, without the driver's staging copy of pageable memory.
    pub fn pinned(&self, len: usize) -> Result<PinnedBuf> {
        // SAFETY: the allocation is zeroed below, before anything reads it; flags 0 (not
        // write-combined) keep host reads of downloaded outputs at cached speed.
        let mut host =
            unsafe { self.ctx.alloc_pinned_with_flags::<f32>(len.max(1), 0) }.map_err(dev_err("pinned alloc"))?;
        host.as_mut_slice().map_err(dev_err("pinned alloc"))?.fill(0.0);
        Ok(PinnedBuf { host, len })
    }

    /// Queues the copy of a page-locked buffer into an f32 device tensor of its length (the
    /// buffer is not written again until the copy is done: [`PinnedBuf::as_mut_slice`] waits).
    pub fn write_pinned(&self, src: &PinnedBuf, t: &mut DeviceTensor) -> Result<()> {
        match &mut t.buf {
            DeviceBuf::F32(s) if t.len == src.len => {
                self.stream.memcpy_htod(&src.host, &mut s.slice_mut(..src.len)).map_err(dev_err("upload"))
            }
            _ => Err(KernelError::Shape(format!(
                "upload of {} f32 values into {} {:?} values",
                src.len,
                t.len,
                t.precision()
            ))),
        }
    }

    /// Queues the copy of an f32 device tensor into a page-locked buffer of its length
    /// ([`PinnedBuf::as_slice`] waits for it).
    pub fn read_pinned(&self, t: &DeviceTensor, dst: &mut PinnedBuf) -> Result<()> {
        match &t.buf {
            DeviceBuf::F32(s) if t.len == dst.len => {
                self.stream.memcpy_dtoh(&s.slice(..dst.len), &mut dst.host).map_err(dev_err("download"))
            }
            _ => Err(KernelError::Shape(format!(
                "download of {} {:?} values into {} f32 values",
                t.len,
                t.precision(),
                dst.len
            ))),
        }
    }

    /// The device address of a buffer (for argument blocks; the stream orders every use).
    pub(crate) fn addr<T>(&self, s: &CudaSlice<T>) -> u64 {
        let (ptr, _sync) = s.device_ptr(&self.stream);
        ptr
    }

    /// Context, for allocations outside this module (benchmarks' cuBLAS).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
}

/// Page-locked host memory of f32 values ([`Gpu::pinned`]): where a caller writes inputs and
/// reads outputs so that the copies to and from the device are single DMA transfers.
#[derive(Debug)]
pub struct PinnedBuf {
    host: PinnedHostSlice<f32>,
    len: usize,
}

impl PinnedBuf {
    /// Values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values, once every queued copy from the device into them is done.
    pub fn as_slice(&self) -> Result<&[f32]> {
        Ok(&self.host.as_slice().map_err(dev_err("pinned read"))?[..self.len])
    }

    /// The values, writable, once every queued copy out of them is done.
    pub fn as_mut_slice(&mut self) -> Result<&mut [f32]> {
        let len = self.len;
        Ok(&mut self.host.as_mut_slice().map_err(dev_err("pinned write"))?[..len])
    }
}

/// Device storage of one precision.
#[derive(Debug)]
pub enum DeviceBuf {
    /// f32 values.
    F32(CudaSlice<f32>),
    /// f16 values.
    F16(CudaSlice<f16>),
}

impl DeviceBuf {
    /// The storage precision.
    pub fn precision(&self) -> Precision {
        match self {
            DeviceBuf::F32(_) => Precision::F32,
            DeviceBuf::F16(_) => Precision::F16,
        }
    }

    pub(crate) fn addr(&self, gpu: &Gpu) -> u64 {
        match self {
            DeviceBuf::F32(s) => gpu.addr(s),
            DeviceBuf::F16(s) => gpu.addr(s),
        }
    }
}

/// A dense tensor on the device (shape kept by the caller).
#[derive(Debug)]
pub struct DeviceTensor {
    buf: DeviceBuf,
    len: usize,
}

impl DeviceTensor {
    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Storage precision.
    pub fn precision(&self) -> Precision {
        self.buf.precision()
    }

    /// The storage.
    pub fn buf(&self) -> &DeviceBuf {
        &self.buf
    }

    /// The storage, writable (for peers such as cuBLAS writing into it).
    pub fn buf_mut(&mut self) -> &mut DeviceBuf {
        &mut self.buf
    }

    pub(crate) fn addr(&self, gpu: &Gpu) -> u64 {
        self.buf.addr(gpu)
    }
}

/// A second [`DeviceTensor`] over the first `len` elements of another's storage (a value in
/// a slot of the memory plan), which frees nothing when dropped.
#[derive(Debug)]
pub(crate) struct Alias(Option<DeviceTensor>);

impl Alias {
    /// The first `len` elements of `of`.
    ///
    /// # Safety
    /// `of` outlives the alias and is not moved or reallocated meanwhile (the alias names its
    /// device address); the stream orders every use of both.
    pub(crate) unsafe fn new(gpu: &Gpu, of: &DeviceTensor, len: usize) -> Result<Self> {
        if len > of.len.max(1) {
            return Err(KernelError::Shape(format!("a view of {len} values of a buffer of {}", of.len)));
        }
        let ptr = of.addr(gpu);
        let buf = match of.buf {
            // SAFETY: `ptr` is the live allocation of `of`, of at least `len` elements
            // (checked above); `Drop` leaks the alias instead of freeing it (the caller's
            // contract keeps `of` alive for as long).
            DeviceBuf::F32(_) => DeviceBuf::F32(unsafe { gpu.stream.upgrade_device_ptr(ptr, len.max(1)) }),
            // SAFETY: as above.
            DeviceBuf::F16(_) => DeviceBuf::F16(unsafe { gpu.stream.upgrade_device_ptr(ptr, len.max(1)) }),
        };
        Ok(Self(Some(DeviceTensor { buf, len })))
    }

    /// The view.
    pub(crate) fn get(&self) -> &DeviceTensor {
        self.0.as_ref().expect("present until dropped")
    }

    /// The view, writable.
    pub(crate) fn get_mut(&mut self) -> &mut DeviceTensor {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            // The storage belongs to the tensor aliased: release the handle, not the memory.
            match t.buf {
                DeviceBuf::F32(s) => {
                    s.leak();
                }
                DeviceBuf::F16(s) => {
                    s.leak();
                }
            }
        }
    }
}

/// The kernels of `module` (compiled for `sm` as `compiled` says): the f32/f16 GEMM and
/// convolution pairs, the tensor-core ones this GPU and build have (wgmma, mma.sync or wmma),
/// with their dynamic shared memory limits raised, and the element-wise ops.
fn load_funcs(module: &Arc<cudarc::driver::CudaModule>, sm: u32, compiled: &Compiled) -> Result<Funcs> {
    let f = |n: &str| module.load_function(n).map_err(dev_err("load function"));
    let pair = |d: &str, c: &str| -> Result<GemmPair> { Ok(GemmPair { dense: f(d)?, conv: f(c)? }) };
    // The tensor-core kernels take their pipelines' shared memory dynamically, beyond the
    // default 48 KiB: raise each one's limit to what it is launched with.
    let dynamic = |d: &str, c: &str, smem: u32| -> Result<GemmPair> {
        let p = pair(d, c)?;
        for f in [&p.dense, &p.conv] {
            f.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                smem as i32,
            )
            .map_err(dev_err("tensor-core kernel shared memory"))?;
        }
        Ok(p)
    };
    let mma = compiled.mma;
    let with_mma = sm >= compile::MMA_MIN_SM && !mma.force_wmma;
    // An mma.sync kernel of `bn`-column tiles, whose split-K form is `split` (or itself).
    let mma_sync = |names: [&str; 2], split: Option<[&str; 2]>, bn: u32| -> Result<TensorCores> {
        let smem = mma.smem_bytes_for(bn);
        let pair = dynamic(names[0], names[1], smem)?;
        let split_pair = match split {
            Some([d, c]) => dynamic(d, c, smem)?,
            None => pair.clone(),
        };
        let split_k = Some((split_pair, mma.bk as usize));
        Ok(TensorCores { pair, name: "mma.sync", tile_n: bn as usize, smem, threads: 256, split_k })
    };
    Ok(Funcs {
        f32: pair("gemm_f32", "conv_f32")?,
        f16: pair("gemm_f16", "conv_f16")?,
        f32_sk: pair("gemm_f32_sk", "conv_f32_sk")?,
        f16_sk: pair("gemm_f16_sk", "conv_f16_sk")?,
        f32_n32: pair("gemm_f32_n32", "conv_f32_n32")?,
        f16_n32: pair("gemm_f16_n32", "conv_f16_n32")?,
        splitk_reduce: super::ops::PerPrecision { f32: f("splitk_reduce_f32")?, f16: f("splitk_reduce_f16")? },
        f16_mma: if with_mma {
            let split = ["gemm_f16_mma_sk", "conv_f16_mma_sk"];
            Some(mma_sync(["gemm_f16_mma", "conv_f16_mma"], Some(split), mma.bn)?)
        } else if sm >= compile::WMMA_MIN_SM {
            let pair = pair("gemm_f16_wmma", "conv_f16_wmma")?;
            Some(TensorCores { pair, name: "wmma", tile_n: 128, smem: 0, threads: 256, split_k: None })
        } else {
            None
        },
        f16_mma_n64: match with_mma {
            true => Some(mma_sync(["gemm_f16_mma_n64", "conv_f16_mma_n64"], None, 64)?),
            false => None,
        },
        f16_wgmma: match (compiled.wgmma, mma.wgmma_stages, mma.wgmma_specialized) {
            (true, Some(stages), ws) => {
                let (d, c) =
                    if ws { ("gemm_f16_wgmma_ws", "conv_f16_wgmma_ws") } else { ("gemm_f16_wgmma", "conv_f16_wgmma") };
                let smem = compile::MmaConfig::wgmma_smem_bytes(stages);
                let pair = dynamic(d, c, smem)?;
                let threads = mma.wgmma_threads();
                Some(TensorCores { pair, name: "wgmma", tile_n: 256, smem, threads, split_k: None })
            }
            _ => None,
        },
        depthwise_f32: f("depthwise_f32")?,
        depthwise_f16: f("depthwise_f16")?,
        ops: super::ops::OpFuncs::load(f)?,
    })
}
