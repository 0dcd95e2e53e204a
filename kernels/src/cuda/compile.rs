//! Run-time compilation of the CUDA C kernels with NVRTC, to a CUBIN for one `sm_XX`, with
//! ptxas's per-kernel register, spill and shared-memory report.

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::{result as nvrtc, sys};

use crate::error::{KernelError, Result};

const COMMON: &str = include_str!("kernels/common.cuh");
const GEMM: &str = include_str!("kernels/gemm.cu");
const DEPTHWISE: &str = include_str!("kernels/depthwise.cu");
const MMA: &str = include_str!("kernels/mma.cu");

/// Oldest architecture with `mma.sync.m16n8k16`, `ldmatrix` and `cp.async` (the tensor-core
/// kernel); older ones run f16 storage on the CUDA cores.
pub const MMA_MIN_SM: u32 = 80;

/// Geometry of the tensor-core kernel: block tile 128 × `bn`, K step `bk`, pipeline depth
/// `stages` (passed to NVRTC as `-D`; shared memory `stages·(128 + bn)·bk·2` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmaConfig {
    /// Block tile columns: 128 (two blocks per SM) or 256 (one).
    pub bn: u32,
    /// K step: 32 or 64.
    pub bk: u32,
    /// cp.async stages, 2..=6.
    pub stages: u32,
}

impl Default for MmaConfig {
    /// The best measured on an H100 (docs/performance.md, "CUDA").
    fn default() -> Self {
        Self { bn: 128, bk: 64, stages: 2 }
    }
}

impl MmaConfig {
    /// Largest dynamic shared memory a block may have on the architectures the set supports.
    const MAX_SMEM: u32 = 99 * 1024;

    /// The default, or `EDGEPACK_MMA=bn,bk,stages` (a tuning knob for benchmarks).
    pub fn from_env() -> Result<Self> {
        match std::env::var("EDGEPACK_MMA") {
            Err(_) => Ok(Self::default()),
            Ok(v) => Self::parse(&v),
        }
    }

    /// Parses `bn,bk,stages` and checks it.
    pub fn parse(v: &str) -> Result<Self> {
        let bad = || {
            KernelError::Device(format!("EDGEPACK_MMA=`{v}`: expected bn,bk,stages with bn 128|256, bk 32|64, stages 2..=6 and at most 99 KiB of shared memory"))
        };
        let n: Vec<u32> = v.split(',').map(|x| x.trim().parse().map_err(|_| bad())).collect::<Result<_>>()?;
        let [bn, bk, stages] = n[..] else { return Err(bad()) };
        let c = Self { bn, bk, stages };
        if ![128, 256].contains(&bn)
            || ![32, 64].contains(&bk)
            || !(2..=6).contains(&stages)
            || c.smem_bytes() > Self::MAX_SMEM
        {
            return Err(bad());
        }
        Ok(c)
    }

    /// Dynamic shared memory per block, bytes.
    pub fn smem_bytes(self) -> u32 {
        self.stages * (128 + self.bn) * self.bk * 2
    }

    fn defines(self) -> [String; 3] {
        [format!("-DMM_BN={}", self.bn), format!("-DMM_BK={}", self.bk), format!("-DMM_STAGES={}", self.stages)]
    }
}

/// The kernels built for `sm`, by entry-point name.
pub fn kernel_names(sm: u32) -> Vec<&'static str> {
    let mut names = vec!["gemm_f32", "gemm_f16", "conv_f32", "conv_f16", "depthwise_f32", "depthwise_f16"];
    if sm >= MMA_MIN_SM {
        names.extend(["gemm_f16_mma", "conv_f16_mma"]);
    }
    names
}

/// The one translation unit compiled for `sm`.
pub fn source(sm: u32) -> String {
    let mut src = [COMMON, GEMM, DEPTHWISE].join("\n");
    if sm >= MMA_MIN_SM {
        src.push('\n');
        src.push_str(MMA);
    }
    src
}

/// What ptxas reported for one kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Entry point.
    pub name: String,
    /// Registers per thread.
    pub registers: u32,
    /// Bytes of register spill stores.
    pub spill_stores: u32,
    /// Bytes of register spill loads.
    pub spill_loads: u32,
    /// Stack frame bytes.
    pub stack: u32,
    /// Static shared memory bytes.
    pub smem: u32,
}

/// A compiled module.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// `sm_XX` as a number (72, 87, 90, …).
    pub sm: u32,
    /// The CUBIN, loadable with `cuModuleLoadData`.
    pub cubin: Vec<u8>,
    /// Per-kernel ptxas figures, in [`kernel_names`] order.
    pub kernels: Vec<KernelStats>,
    /// NVRTC's whole log.
    pub log: String,
    /// The tensor-core kernel's geometry.
    pub mma: MmaConfig,
}

/// Whether the NVRTC library can be opened (nothing else is called before this says yes).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library under its known names.
    unsafe { sys::is_culib_present() }
}

fn no_nvrtc() -> KernelError {
    KernelError::Unavailable {
        set: "cuda".into(),
        reason: "no NVRTC library (libnvrtc.so) found: install CUDA's NVRTC or put it on LD_LIBRARY_PATH".into(),
    }
}

/// NVRTC's version `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_present() {
        return Err(no_nvrtc());
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; both pointers are valid for the call.
    let status = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| KernelError::Device(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// Compiles every kernel for `sm_<sm>` to a CUBIN, with the default tensor-core geometry.
pub fn compile(sm: u32) -> Result<Compiled> {
    compile_with(sm, MmaConfig::default())
}

/// Compiles every kernel for `sm_<sm>` to a CUBIN.
pub fn compile_with(sm: u32, mma: MmaConfig) -> Result<Compiled> {
    if !nvrtc_present() {
        return Err(no_nvrtc());
    }
    // NVRTC runs ptxas in-process and needs far more stack than a test thread has.
    std::thread::Builder::new()
        .name(format!("nvrtc-sm_{sm}"))
        .stack_size(256 << 20)
        .spawn(move || compile_here(sm, mma))
        .map_err(|e| KernelError::Device(format!("cannot start the NVRTC thread: {e}")))?
        .join()
        .map_err(|_| KernelError::Device(format!("NVRTC panicked compiling for sm_{sm}")))?
}

fn compile_here(sm: u32, mma: MmaConfig) -> Result<Compiled> {
    let src = CString::new(source(sm)).expect("kernel sources hold no NUL");
    let name = CString::new("edgepack.cu").expect("no NUL");
    // (No `-lineinfo`: NVRTC 11.8 crashes with it for sm_90.)
    let mut options = vec![format!("--gpu-architecture=sm_{sm}"), "--ptxas-options=-v".to_owned()];
    options.extend(mma.defines());
    let prog = nvrtc::create_program(&src, Some(&name)).map_err(|e| KernelError::Device(format!("nvrtc: {e:?}")))?;
    let guard = Program(prog);
    // SAFETY: `prog` is a live program; the options are valid C strings.
    let compiled = unsafe { nvrtc::compile_program(guard.0, &options) };
    let log = program_log(guard.0);
    if let Err(e) = compiled {
        return Err(KernelError::Device(format!("NVRTC could not compile the kernels for sm_{sm} ({e:?}):\n{log}")));
    }
    let cubin = cubin(guard.0).map_err(|e| KernelError::Device(format!("sm_{sm}: {e}")))?;
    let mut kernels = parse_ptxas(&log);
    let names = kernel_names(sm);
    kernels.retain(|k| names.contains(&k.name.as_str()));
    kernels.sort_by_key(|k| names.iter().position(|n| *n == k.name));
    if kernels.is_empty() {
        // Some NVRTC releases (13.x) keep ptxas's report out of the program log: the figures
        // are then unknown (zeros), and the module is still good.
        kernels = names.iter().map(|n| KernelStats { name: (*n).to_owned(), ..KernelStats::default() }).collect();
    } else if kernels.len() != names.len() {
        return Err(KernelError::Device(format!(
            "sm_{sm}: ptxas reported {:?}, expected {names:?}:\n{log}",
            kernels.iter().map(|k| &k.name).collect::<Vec<_>>()
        )));
    }
    Ok(Compiled { sm, cubin, kernels, log, mma })
}

/// Destroys the program when dropped.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by `create_program` and destroyed only here.
        let _ = unsafe { nvrtc::destroy_program(self.0) };
    }
}

fn program_log(prog: sys::nvrtcProgram) -> String {
    // SAFETY: `prog` is live; the returned buffer is NUL-terminated.
    match unsafe { nvrtc::get_program_log(prog) } {
        Ok(raw) => {
            // SAFETY: NVRTC wrote a NUL-terminated string into `raw`.
            unsafe { CStr::from_ptr(raw.as_ptr()) }.to_string_lossy().into_owned()
        }
        Err(e) => format!("(no log: {e:?})"),
    }
}

fn cubin(prog: sys::nvrtcProgram) -> std::result::Result<Vec<u8>, String> {
    let mut size = 0usize;
    // SAFETY: `prog` compiled successfully; `size` is a valid out-pointer.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }.result().map_err(|e| format!("nvrtcGetCUBINSize: {e:?}"))?;
    if size == 0 {
        return Err("NVRTC produced no CUBIN (a virtual architecture?)".into());
    }
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds the `size` bytes NVRTC asked for.
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char) }
        .result()
        .map_err(|e| format!("nvrtcGetCUBIN: {e:?}"))?;
    Ok(buf)
}

/// Reads ptxas's `-v` lines: "Compiling entry function 'X'", "N bytes stack frame, N bytes
/// spill stores, N bytes spill loads", "Used N registers, … N bytes smem".
pub fn parse_ptxas(log: &str) -> Vec<KernelStats> {
    let mut out: Vec<KernelStats> = Vec::new();
    let number_before = |line: &str, word: &str| -> Option<u32> {
        let at = line.find(word)?;
        line[..at].split(|c: char| !c.is_ascii_digit()).rfind(|s| !s.is_empty())?.parse().ok()
    };
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default().to_owned();
            out.push(KernelStats { name, ..KernelStats::default() });
            continue;
        }
        let Some(k) = out.last_mut() else { continue };
        if line.contains("bytes stack frame") {
            k.stack = number_before(line, "bytes stack frame").unwrap_or(0);
            k.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            k.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        }
        if line.contains("Used") && line.contains("registers") {
            k.registers = number_before(line, "registers").unwrap_or(0);
            k.smem = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}
