//! edgepack's kernels: the only door to hardware.
//!
//! A [`Target`] (from the packaging configuration, or [`Target::host`]) names a [`KernelSetId`];
//! [`select`] turns it into a runnable [`KernelSet`] — or an error when this machine cannot
//! execute that instruction set, never an illegal instruction. Every set implements the same
//! operations: f32 GEMM with a fused [`Epilogue`], and weight packing ([`PackedB`]) that
//! serializes into a package.
//!
//! ```
//! use kernels::{select, Target, MatRef, MatMut, BOperand, Epilogue, Activation, Parallelism};
//! let set = select(&Target::host()).unwrap();
//! let a = [1.0, 2.0, 3.0, 4.0]; // 2x2
//! let b = [1.0, 0.0, 0.0, 1.0]; // identity
//! let mut c = [f32::NAN; 4];
//! let epi = Epilogue { activation: Activation::Relu, ..Epilogue::none() };
//! set.gemm(MatRef::row_major(&a, 2, 2).unwrap(), BOperand::Matrix(MatRef::row_major(&b, 2, 2).unwrap()),
//!          MatMut::row_major(&mut c, 2, 2).unwrap(), &epi, Parallelism::Sequential).unwrap();
//! assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
//! ```

mod aligned;
#[cfg(target_arch = "aarch64")]
mod arm;
mod blocking;
mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
mod epilogue;
mod error;
mod gemm;
mod mat;
mod math;
mod pack;
mod packer;
mod pool;
mod rows;
mod scalar;
mod simd;
mod target;
pub mod threads;
mod tuning;
mod vector;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(feature = "emulated")]
#[doc(hidden)]
pub mod emulated;

/// Register tiles `(MR, NR)`: the one table that microkernels, weight packing and the emulated
/// test sets read.
pub(crate) const SCALAR_TILE: (usize, usize) = (4, 8);
pub(crate) const AVX2_TILE: (usize, usize) = (6, 16);
/// AVX2's second tile, for convolution outputs of 24, 72, 120, … channels, where the 6×16
/// tile leaves a one-vector tile (6 accumulator chains, too few to hide FMA latency) on every
/// row panel and reads A twice. 3×24 has 9 chains, 3 B vectors and 1 broadcast in 13 ymm
/// registers; 4×24 needs all 16 and the compiler spills an accumulator (measured 35 against
/// 68 GFLOP/s on the detector's 96→24 convolution).
pub(crate) const AVX2_WIDE_TILE: (usize, usize) = (3, 24);
pub(crate) const AVX512_TILE: (usize, usize) = (12, 32);
/// AVX-512's second tile, for convolution outputs of 24, 72, 120, … channels: 6 rows × 24
/// columns on 256-bit vectors (18 accumulators, 3 B vectors, a broadcast; AVX-512VL gives
/// 256-bit instructions 32 registers), where the 12×32 tile computes a quarter of padding.
/// Where 256-bit FMAs run at the 512-bit peak (Zen 4), 24-channel outputs ran faster on 6×24
/// than on 12×32, 8×24 or 9×24 (figures: `docs/perf-log/2026-11-28-design-figures.md`).
pub(crate) const AVX512_WIDE_TILE: (usize, usize) = (6, 24);
pub(crate) const NEON_TILE: (usize, usize) = (8, 12);

use std::fmt;
use std::marker::PhantomData;

pub use aligned::AlignedBuf;
pub use blocking::{Blocking, CacheSizes};
pub use conv::winograd::ERROR_GROWTH as WINOGRAD_ERROR_GROWTH;
pub use conv::{ConvAlgorithm, ConvKind, ConvParams, ImageMut, ImageRef, PackedConv};
pub use epilogue::{Activation, Bias, Epilogue};
pub use error::{KernelError, Result};
pub use mat::{MatMut, MatRef};
pub use math::Unary;
pub use pack::{PackedB, PanelWidths};
pub use packer::{can_run, pack_only, packer};
pub use pool::{PoolMode, PoolParams};
pub use rows::{Channels, RowNorm};
pub use target::{Accelerator, Arch, CpuIsa, NvidiaOptions, Os, Target};
pub use tuning::{Tuning, KNOBS as TUNING_KNOBS};

/// Target vocabulary lists (supported `mcpu`, `mattr`, `gpu-code` values), for messages and docs.
pub mod vocabulary {
    pub use crate::target::{
        ARM64_CPUS, ARM64_FEATURES, DEVICES, GPU_CODES, X86_AVX2_CPUS, X86_AVX512_CPUS, X86_FEATURES, X86_PORTABLE_CPUS,
    };
}

use conv::ConvKernel;
use gemm::Microkernel;
use vector::VectorKernels;

/// The kernel sets edgepack has or plans, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelSetId {
    /// Portable Rust; runs anywhere.
    Scalar,
    /// x86_64 AVX2 + FMA.
    Avx2,
    /// x86_64 AVX-512F.
    Avx512,
    /// AArch64 NEON.
    Neon,
    /// NVIDIA CUDA.
    Cuda,
}

impl KernelSetId {
    /// Every set, fastest-first within each architecture.
    pub const ALL: [KernelSetId; 5] =
        [KernelSetId::Avx512, KernelSetId::Avx2, KernelSetId::Neon, KernelSetId::Cuda, KernelSetId::Scalar];

    /// The set's name as it appears in packages and reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelSetId::Scalar => "scalar",
            KernelSetId::Avx2 => "avx2",
            KernelSetId::Avx512 => "avx512",
            KernelSetId::Neon => "neon",
            KernelSetId::Cuda => "cuda",
        }
    }

    /// The instruction set, in words.
    pub fn isa(self) -> &'static str {
        match self {
            KernelSetId::Scalar => "portable Rust (compiler-vectorised)",
            KernelSetId::Avx2 => "x86_64 AVX2+FMA",
            KernelSetId::Avx512 => "x86_64 AVX-512F",
            KernelSetId::Neon => "AArch64 NEON",
            KernelSetId::Cuda => "NVIDIA CUDA",
        }
    }

    /// Register-tile geometry `(MR, NR)` of the CPU sets that exist in this build.
    pub fn geometry(self) -> Option<(usize, usize)> {
        match self {
            KernelSetId::Scalar => Some(SCALAR_TILE),
            KernelSetId::Avx2 => Some(AVX2_TILE),
            KernelSetId::Avx512 => Some(AVX512_TILE),
            KernelSetId::Neon => Some(NEON_TILE),
            KernelSetId::Cuda => None,
        }
    }

    /// The set's second register tile `(MR, NR)`, if it has one (see [`PanelWidths`]).
    pub fn wide_geometry(self) -> Option<(usize, usize)> {
        match self {
            KernelSetId::Avx2 => Some(AVX2_WIDE_TILE),
            KernelSetId::Avx512 => Some(AVX512_WIDE_TILE),
            _ => None,
        }
    }
}

impl fmt::Display for KernelSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The right-hand GEMM operand: a plain matrix, packed on the fly, or weights packed ahead of
/// time by the same kernel set.
#[derive(Debug, Clone, Copy)]
pub enum BOperand<'a> {
    /// A `k × n` view, packed while the GEMM runs.
    Matrix(MatRef<'a>),
    /// Weights packed ahead of time with [`KernelSet::pack_b`].
    Packed(&'a PackedB),
}

/// How a kernel call may use threads. Results are bitwise identical either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// Only the calling thread.
    Sequential,
    /// The current thread team ([`threads::Team::install`]), or outside one the current rayon
    /// pool (run inside `rayon::ThreadPool::install` to pick its size).
    Threads,
}

/// What a kernel set says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelInfo {
    /// Which set.
    pub id: KernelSetId,
    /// Name used in packed weights and reports (`avx2`, …).
    pub name: &'static str,
    /// Instruction set, in words.
    pub isa: &'static str,
    /// Rows of the GEMM register tile.
    pub mr: usize,
    /// Columns of the GEMM register tile.
    pub nr: usize,
    /// The second register tile `(MR, NR)` that convolution weights use where its columns
    /// fit them better (see [`PanelWidths`]), if the set has one.
    pub wide: Option<(usize, usize)>,
    /// Cache blocking in use on this machine.
    pub blocking: Blocking,
    /// Floating-point operations per iteration of [`KernelSet::fma_loop`]; `None` for sets on
    /// portable vectors (the scalar and emulated sets), whose probe is no instruction set's
    /// ceiling. See [`fma_peak_gflops`].
    pub peak_flops_per_iter: Option<usize>,
}

impl KernelInfo {
    /// The panel widths the set packs convolution weights at: its tile's, and its wide tile's.
    pub fn panel_widths(&self) -> PanelWidths {
        PanelWidths { nr: self.nr, wide: self.wide.map(|(_, nr)| nr), half_width_wide: self.id == KernelSetId::Avx512 }
    }
}

/// One implementation of every kernel edgepack runs, for one instruction set.
///
/// A value of this type exists only where its instruction set can execute (see [`select`]), so
/// all methods are safe. Shapes are checked here, once, at the boundary.
pub trait KernelSet: Send + Sync + fmt::Debug {
    /// Name, instruction set, tile geometry and blocking.
    fn info(&self) -> &KernelInfo;

    /// Packs a `k × n` right-hand operand (weights) into this set's layout.
    fn pack_b(&self, b: MatRef<'_>) -> PackedB;

    /// `C = activation(A·B + bias + residual)` for `A: m × k`, `B: k × n`, `C: m × n`.
    ///
    /// C's previous contents are ignored. Errors on mismatched shapes or on weights packed for
    /// another set.
    fn gemm(
        &self,
        a: MatRef<'_>,
        b: BOperand<'_>,
        c: MatMut<'_>,
        epilogue: &Epilogue<'_>,
        par: Parallelism,
    ) -> Result<()>;

    /// Packs ONNX-layout convolution weights (`[c_out, c_in/groups, kh, kw]` for `Conv`,
    /// `[c_in, c_out/groups, kh, kw]` for `ConvTranspose`) into this set's form, once.
    fn pack_conv(&self, params: &ConvParams, weights: &[f32]) -> Result<PackedConv>;

    /// [`KernelSet::pack_conv`] for inputs of `input_hw` rows and columns: a set may then pick
    /// the algorithm the size suits (the CPU sets: Winograd F(4×4, 3×3) for 3×3 stride-1
    /// convolutions on maps of 13×13 and more, 9×9 where the weights are small; the direct
    /// grouped kernel for groups narrower than the register tile). Packing
    /// still depends on the set and the model alone, never on the host. By default, as
    /// `pack_conv`.
    fn pack_conv_for_input(&self, params: &ConvParams, weights: &[f32], input_hw: [usize; 2]) -> Result<PackedConv> {
        let _ = input_hw;
        self.pack_conv(params, weights)
    }

    /// `output = activation(conv(input) + bias + residual)` on NHWC tensors, with the
    /// attributes the weights were packed with. Bias is per output channel
    /// ([`Bias::PerCol`]); the residual is the output-shaped NHWC tensor as an
    /// `(n·oh·ow) × c_out` matrix. Output's previous contents are ignored.
    fn conv2d(
        &self,
        input: ImageRef<'_>,
        weights: &PackedConv,
        output: ImageMut<'_>,
        epilogue: &Epilogue<'_>,
        par: Parallelism,
    ) -> Result<()>;

    /// `output = depthwise(expand(input))` for `convs = [(expand, its epilogue), (depthwise,
    /// its epilogue)]`: a pointwise `expand` (1×1, stride 1, unpadded, one group; its epilogue
    /// without a residual) feeding a depthwise convolution, as in the inverted residual blocks
    /// of mobile CNNs. The CPU sets never write the expanded tensor whole (see
    /// `conv::expand`) and give results bitwise equal to the two [`KernelSet::conv2d`] calls,
    /// which is what this default runs, through a temporary.
    fn conv2d_expand_depthwise(
        &self,
        input: ImageRef<'_>,
        convs: [(&PackedConv, &Epilogue<'_>); 2],
        output: ImageMut<'_>,
        par: Parallelism,
    ) -> Result<()> {
        let [(expand, expand_epilogue), (depthwise, epilogue)] = convs;
        conv::expand::no_expansion_residual(expand_epilogue)?;
        let [n, h, w, _] = input.dims();
        let dims = [n, h, w, expand.params().c_out];
        let len = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let mut mid = vec![0.0; len.ok_or_else(|| KernelError::Shape(format!("expanded tensor {dims:?} overflows")))?];
        self.conv2d(input, expand, ImageMut::new(&mut mid, dims)?, expand_epilogue, par)?;
        self.conv2d(ImageRef::new(&mid, dims)?, depthwise, output, epilogue, par)
    }

    /// Applies `activation` to every element of `data` in place, with the same formulas as the
    /// epilogues (vectorized; the error bounds of the transcendental ones are in the crate's
    /// `math` module). Errors on invalid parameters.
    fn activate(&self, activation: Activation, data: &mut [f32]) -> Result<()>;

    /// Applies `f` to every element of `data` in place (vectorized; see [`Unary`]).
    fn unary(&self, f: Unary, data: &mut [f32]) -> Result<()>;

    /// Max or average pooling of an NHWC image into an NHWC image (see [`PoolParams`]).
    /// Refuses mismatched images and windows that start past the input, naming the problem.
    fn pool2d(&self, input: ImageRef<'_>, output: ImageMut<'_>, params: &PoolParams, par: Parallelism) -> Result<()>;

    /// Softmax or layer normalisation of each `len`-value row of `input` into `out` (see
    /// [`RowNorm`]). Refuses unequal lengths, partial rows and mis-sized scale or bias.
    fn normalize_rows(
        &self,
        norm: RowNorm<'_>,
        input: &[f32],
        len: usize,
        out: &mut [f32],
        par: Parallelism,
    ) -> Result<()>;

    /// Runs the set's FMA throughput probe for `iterations` rounds on this thread; returns a
    /// value to pass to `std::hint::black_box`. Each round is `info().peak_flops_per_iter` flops
    /// (timed for you by [`fma_peak_gflops`]).
    fn fma_loop(&self, iterations: usize) -> f32;

    /// Where this set keeps tensors and runs a model's operations on them ([`device`]): the
    /// GPU's memory for the CUDA set; for a CPU set, host buffers and its own kernels (what
    /// sessions built with `device` run on; ordinary CPU sessions read and write host slices
    /// directly). Errors for a set that only packs weights.
    fn device(&self) -> Result<std::sync::Arc<dyn device::Device>>;
}

/// A CPU kernel set: the generic driver around one microkernel (and its wide tile).
struct CpuSet<K: Microkernel> {
    info: KernelInfo,
    /// Blocking of the wide tile `K::Wide` (multiples of its MR and NR).
    wide_blocking: Blocking,
    _kernel: PhantomData<K>,
}

impl<K: Microkernel> CpuSet<K> {
    /// # Safety
    /// The running CPU supports `K`'s instruction set.
    unsafe fn new_unchecked(id: KernelSetId, name: &'static str) -> Self {
        let info = KernelInfo {
            id,
            name,
            isa: id.isa(),
            mr: K::MR,
            nr: K::NR,
            wide: (K::Wide::NR != K::NR).then_some((K::Wide::MR, K::Wide::NR)),
            blocking: Blocking::for_host(K::MR, K::NR),
            peak_flops_per_iter: K::PEAK_FLOPS_PER_ITER,
        };
        let wide_blocking = Blocking::for_host(K::Wide::MR, K::Wide::NR);
        Self { info, wide_blocking, _kernel: PhantomData }
    }

    fn with_blocking(mut self, blocking: Blocking) -> Result<Self> {
        let Blocking { kc, mc, nc } = blocking;
        if kc == 0 || mc == 0 || nc == 0 || !mc.is_multiple_of(K::MR) || !nc.is_multiple_of(K::NR) {
            return Err(KernelError::Shape(format!(
                "blocking {blocking:?} for `{}`: KC, MC, NC must be positive, MC a multiple of {} and NC of {}",
                self.info.name,
                K::MR,
                K::NR
            )));
        }
        self.info.blocking = blocking;
        // The wide tile crosses the same block boundaries, at multiples of its own tile.
        self.wide_blocking =
            Blocking { kc, mc: mc.next_multiple_of(K::Wide::MR), nc: nc.next_multiple_of(K::Wide::NR) };
        Ok(self)
    }
}

impl<K: Microkernel> Clone for CpuSet<K> {
    fn clone(&self) -> Self {
        Self { info: self.info.clone(), wide_blocking: self.wide_blocking, _kernel: PhantomData }
    }
}

impl<K: Microkernel> fmt::Debug for CpuSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KernelSet({} {}x{})", self.info.name, K::MR, K::NR)
    }
}

impl<K: ConvKernel<Rows: VectorKernels>> KernelSet for CpuSet<K> {
    fn info(&self) -> &KernelInfo {
        &self.info
    }

    fn pack_b(&self, b: MatRef<'_>) -> PackedB {
        PackedB::pack(self.info.name, K::NR, &b)
    }

    fn gemm(
        &self,
        a: MatRef<'_>,
        b: BOperand<'_>,
        c: MatMut<'_>,
        epilogue: &Epilogue<'_>,
        par: Parallelism,
    ) -> Result<()> {
        gemm::driver::gemm::<K>(self.info.name, &self.info.blocking, a, b, c, epilogue, par)
    }

    fn pack_conv(&self, params: &ConvParams, weights: &[f32]) -> Result<PackedConv> {
        PackedConv::pack(self.info.name, self.info.panel_widths(), params, weights, None)
    }

    fn pack_conv_for_input(&self, params: &ConvParams, weights: &[f32], input_hw: [usize; 2]) -> Result<PackedConv> {
        PackedConv::pack(self.info.name, self.info.panel_widths(), params, weights, Some(input_hw))
    }

    fn conv2d(
        &self,
        input: ImageRef<'_>,
        weights: &PackedConv,
        output: ImageMut<'_>,
        epilogue: &Epilogue<'_>,
        par: Parallelism,
    ) -> Result<()> {
        let blocking = [self.info.blocking, self.wide_blocking];
        conv::driver::conv2d::<K>(self.info.name, &blocking, input, weights, output, epilogue, par)
    }

    fn conv2d_expand_depthwise(
        &self,
        input: ImageRef<'_>,
        convs: [(&PackedConv, &Epilogue<'_>); 2],
        output: ImageMut<'_>,
        par: Parallelism,
    ) -> Result<()> {
        let blocking = [self.info.blocking, self.wide_blocking];
        conv::expand::expand_depthwise::<K>(self.info.name, &blocking, input, convs, output, par)
    }

    fn activate(&self, activation: Activation, data: &mut [f32]) -> Result<()> {
        activation.validate()?;
        // SAFETY: a CpuSet<K> is only constructed after checking the CPU supports K.
        unsafe { K::Rows::activate(activation, data) };
        Ok(())
    }

    fn unary(&self, f: Unary, data: &mut [f32]) -> Result<()> {
        // SAFETY: a CpuSet<K> is only constructed after checking the CPU supports K.
        unsafe { K::Rows::unary(f, data) };
        Ok(())
    }

    fn pool2d(&self, input: ImageRef<'_>, output: ImageMut<'_>, params: &PoolParams, par: Parallelism) -> Result<()> {
        let g = pool::check(&input, &output, params)?;
        // A CpuSet<K> is only constructed after checking the CPU supports K.
        match g.is_global_average() {
            true => pool::run_global(&g, &input, output, par, K::Rows::pool_sum),
            false => pool::run(&g, &input, output, par, K::Rows::pool_rows),
        }
        Ok(())
    }

    fn normalize_rows(
        &self,
        norm: RowNorm<'_>,
        input: &[f32],
        len: usize,
        out: &mut [f32],
        par: Parallelism,
    ) -> Result<()> {
        rows::check(&norm, input, len, out)?;
        // A CpuSet<K> is only constructed after checking the CPU supports K.
        rows::run(&norm, input, len, out, par, K::Rows::norm_rows);
        Ok(())
    }

    fn fma_loop(&self, iterations: usize) -> f32 {
        // SAFETY: a CpuSet<K> is only constructed after checking the CPU supports K.
        unsafe { K::fma_loop(iterations) }
    }

    fn device(&self) -> Result<std::sync::Arc<dyn device::Device>> {
        Ok(std::sync::Arc::new(device::host::HostDevice::new(std::sync::Arc::new(self.clone()))))
    }
}

/// The kernel set `id`, if this machine and build can run it.
pub fn kernel_set(id: KernelSetId) -> Result<Box<dyn KernelSet>> {
    build_set(id, Build::default())
}

/// The kernel set `id` with explicit cache blocking instead of the host's: for tuning, for
/// benchmarks that need a frozen reference, and for tests that cross every block boundary
/// with small matrices. MC must be a multiple of MR and NC of NR.
pub fn kernel_set_with_blocking(id: KernelSetId, blocking: Blocking) -> Result<Box<dyn KernelSet>> {
    build_set(id, Build { blocking: Some(blocking), ..Build::default() })
}

/// The kernel set `id` without its wide tile: weights are packed at the main tile's width
/// whatever their shape. For benchmarks that compare the two tiles in one process.
#[doc(hidden)]
pub fn kernel_set_main_tile_only(id: KernelSetId) -> Result<Box<dyn KernelSet>> {
    build_set(id, Build { main_tile_only: true, ..Build::default() })
}

/// How a set is built: the host's blocking or the one given; with or without its wide tile.
#[derive(Debug, Clone, Copy, Default)]
struct Build {
    blocking: Option<Blocking>,
    main_tile_only: bool,
}

fn boxed<K: ConvKernel<Rows: VectorKernels>>(set: CpuSet<K>, build: Build) -> Result<Box<dyn KernelSet>> {
    // A malformed tuning knob refuses the set (its blocking fell back to the host's caches).
    Tuning::host()?;
    let mut set = match build.blocking {
        Some(b) => set.with_blocking(b)?,
        None => set,
    };
    if build.main_tile_only {
        set.info.wide = None;
    }
    Ok(Box::new(set))
}

fn build_set(id: KernelSetId, build: Build) -> Result<Box<dyn KernelSet>> {
    let unavailable = |reason: &str| KernelError::Unavailable { set: id.name().into(), reason: reason.into() };
    match id {
        // SAFETY: the portable kernel uses no optional instructions.
        KernelSetId::Scalar => boxed(unsafe { CpuSet::<scalar::ScalarF32_4x8>::new_unchecked(id, id.name()) }, build),
        #[cfg(target_arch = "x86_64")]
        KernelSetId::Avx2 if x86::avx2::detected() => {
            // SAFETY: AVX2 and FMA were detected at run time.
            boxed(unsafe { CpuSet::<x86::avx2::Avx2F32_6x16>::new_unchecked(id, id.name()) }, build)
        }
        #[cfg(target_arch = "x86_64")]
        KernelSetId::Avx512 if x86::avx512::detected() => {
            // SAFETY: AVX-512F was detected at run time.
            boxed(unsafe { CpuSet::<x86::avx512::Avx512F32_12x32>::new_unchecked(id, id.name()) }, build)
        }
        KernelSetId::Avx2 | KernelSetId::Avx512 if cfg!(target_arch = "x86_64") => {
            Err(unavailable(&format!("this CPU lacks {} (host: {})", id.isa(), host_cpu_name())))
        }
        KernelSetId::Avx2 | KernelSetId::Avx512 => Err(unavailable("x86_64 kernels need an x86_64 host")),
        #[cfg(target_arch = "aarch64")]
        KernelSetId::Neon if arm::neon::detected() => {
            // SAFETY: NEON was detected at run time.
            boxed(unsafe { CpuSet::<arm::neon::NeonF32_8x12>::new_unchecked(id, id.name()) }, build)
        }
        KernelSetId::Neon if cfg!(target_arch = "aarch64") => Err(unavailable("this CPU lacks NEON")),
        KernelSetId::Neon => {
            Err(unavailable("NEON kernels need an AArch64 host (the test suite runs them under qemu-aarch64)"))
        }
        #[cfg(feature = "cuda")]
        KernelSetId::Cuda => match build.blocking {
            None => Ok(Box::new(cuda::set::CudaSet::new()?)),
            Some(_) => Err(unavailable("the CUDA set has no CPU cache blocking to set")),
        },
        #[cfg(not(feature = "cuda"))]
        KernelSetId::Cuda => Err(unavailable("this build has no CUDA support (build with `--features cuda`)")),
    }
}

/// The activations kernel set `id` fuses into its GEMM and convolution epilogues: every one
/// on the CPU sets; the first six on the CUDA set (see `cuda/args.rs`).
pub fn epilogue_activations(id: KernelSetId) -> Vec<Activation> {
    let all = Activation::all();
    match id {
        KernelSetId::Cuda => all[..6].to_vec(),
        _ => all.to_vec(),
    }
}

/// Panel width (`NR`) of the CUDA set's packed weights: its GEMM kernels' N tile.
pub const CUDA_NR: usize = 128;

/// The kernel set for a target's heavy operations, if this machine can run it.
pub fn select(target: &Target) -> Result<Box<dyn KernelSet>> {
    kernel_set(target.kernel_set())
}

/// Every kernel set this machine can run, fastest first, and why each other set cannot run.
pub fn host_kernel_sets() -> (Vec<Box<dyn KernelSet>>, Vec<KernelError>) {
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for id in KernelSetId::ALL {
        match kernel_set(id) {
            Ok(set) => ok.push(set),
            Err(e) => refused.push(e),
        }
    }
    (ok, refused)
}

/// One core's FMA peak for `set` in GFLOP/s, from `iterations` rounds of its probe on this
/// thread; `None` when the set has no meaningful ceiling (portable vectors).
pub fn fma_peak_gflops(set: &dyn KernelSet, iterations: usize) -> Option<f64> {
    let flops = set.info().peak_flops_per_iter?;
    let start = std::time::Instant::now();
    std::hint::black_box(set.fma_loop(iterations));
    Some((iterations * flops) as f64 / start.elapsed().as_secs_f64() / 1e9)
}

/// The host CPU's model name (Linux), for messages and reports.
pub fn host_cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
