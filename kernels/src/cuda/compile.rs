//! Run-time compilation of the CUDA C kernels with NVRTC, to a CUBIN for one `sm_XX`, with
//! ptxas's per-kernel register, spill and shared-memory report.

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::{result as nvrtc, sys};

use crate::error::{KernelError, Result};

const COMMON: &str = include_str!("kernels/common.cuh");
const GEMM: &str = include_str!("kernels/gemm.cu");
const DEPTHWISE: &str = include_str!("kernels/depthwise.cu");
const OPS: &str = include_str!("kernels/ops.cu");
const MMA: &str = include_str!("kernels/mma.cu");
const WGMMA: &str = include_str!("kernels/wgmma.cu");
const WMMA: &str = include_str!("kernels/wmma.cu");

/// Oldest architecture with `mma.sync.m16n8k16`, `ldmatrix` and `cp.async` (the tensor-core
/// kernel); older ones with tensor cores run the `wmma` kernel.
pub const MMA_MIN_SM: u32 = 80;

/// Oldest architecture with tensor cores (`wmma.m16n16k16`: Volta, Jetson Xavier's sm_72).
pub const WMMA_MIN_SM: u32 = 70;

/// The architecture with warpgroup MMA (`wgmma`, Hopper): its module is compiled for the
/// architecture-specific `sm_90a`, which runs on sm_90 devices only.
pub const WGMMA_SM: u32 = 90;

/// Oldest NVRTC that targets `sm_90a`; older ones build sm_90 without the wgmma kernel.
pub const WGMMA_NVRTC: (i32, i32) = (12, 0);

/// Geometry of the tensor-core kernels (passed to NVRTC as `-D`): the `mma.sync` kernel's block
/// tile 128 × `bn`, K step `bk` and pipeline depth `stages` (shared memory
/// `stages·(128 + bn)·bk·2` bytes), and the Hopper `wgmma` kernel's pipeline depth (its tile is
/// 128 × 256, its K step 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmaConfig {
    /// Block tile columns: 128 (two blocks per SM) or 256 (one).
    pub bn: u32,
    /// K step: 32 or 64.
    pub bk: u32,
    /// cp.async stages, 2..=6.
    pub stages: u32,
    /// The wgmma kernel's stages (3 or 4), or `None` to build sm_90 without it.
    pub wgmma_stages: Option<u32>,
    /// Whether f16 GEMMs run the warp-specialized wgmma kernel (a copying warpgroup and two
    /// multiplying ones, 384 threads) instead of the one whose 256 threads all do both.
    pub wgmma_specialized: bool,
    /// Whether the `wmma` kernel (sm_70+) replaces the `mma.sync` one on sm_80+
    /// (`EDGEPACK_MMA=wmma`: how it is tested on a newer GPU than Xavier).
    pub force_wmma: bool,
}

impl Default for MmaConfig {
    /// The best measured (docs/performance.md): the mma.sync geometry on an H100, the wgmma
    /// pipeline (4 stages, every thread copying) on an H200; mma.sync on sm_80+.
    fn default() -> Self {
        Self { bn: 128, bk: 64, stages: 2, wgmma_stages: Some(4), wgmma_specialized: false, force_wmma: false }
    }
}

impl MmaConfig {
    /// Largest dynamic shared memory a block may have on the architectures the set supports.
    const MAX_SMEM: u32 = 99 * 1024;

    /// Largest dynamic shared memory a Hopper block may have (227 KiB).
    const MAX_SMEM_SM90: u32 = 227 * 1024;

    /// The default, or the tuning knobs `EDGEPACK_MMA=bn,bk,stages|wmma` and
    /// `EDGEPACK_WGMMA=[ws]stages|off` ([`crate::Tuning`]; for benchmarks and tests).
    pub fn from_tuning(t: &crate::Tuning) -> Result<Self> {
        let mut c = match &t.mma {
            None => Self::default(),
            Some(v) => Self::parse(v)?,
        };
        if let Some(v) = &t.wgmma {
            (c.wgmma_stages, c.wgmma_specialized) = Self::parse_wgmma(v)?;
        }
        Ok(c)
    }

    /// Parses the wgmma kernel's choice: `off`, or its stages (3 or 4), prefixed with `ws` for
    /// the warp-specialized kernel.
    pub fn parse_wgmma(v: &str) -> Result<(Option<u32>, bool)> {
        let v = v.trim();
        if v == "off" {
            return Ok((None, false));
        }
        let (specialized, stages) = match v.strip_prefix("ws") {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        match stages.parse() {
            Ok(n @ 3..=4) => Ok((Some(n), specialized)),
            _ => Err(KernelError::Tuning(format!(
                "EDGEPACK_WGMMA=`{v}`: expected the wgmma pipeline's stages (3 or 4), `ws3`/`ws4` for the warp-specialized kernel, or `off`"
            ))),
        }
    }

    /// Threads per block of the wgmma kernel this configuration launches.
    pub fn wgmma_threads(self) -> u32 {
        if self.wgmma_specialized {
            384
        } else {
            256
        }
    }

    /// Parses `bn,bk,stages` (the mma.sync kernel's geometry) or `wmma`, and checks it.
    pub fn parse(v: &str) -> Result<Self> {
        if v.trim() == "wmma" {
            return Ok(Self { force_wmma: true, ..Self::default() });
        }
        let bad = || {
            KernelError::Tuning(format!("EDGEPACK_MMA=`{v}`: expected `wmma`, or bn,bk,stages with bn 128|256, bk 32|64, stages 2..=6 and at most 99 KiB of shared memory"))
        };
        let n: Vec<u32> = v.split(',').map(|x| x.trim().parse().map_err(|_| bad())).collect::<Result<_>>()?;
        let [bn, bk, stages] = n[..] else { return Err(bad()) };
        let c = Self { bn, bk, stages, ..Self::default() };
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
        self.smem_bytes_for(self.bn)
    }

    /// Dynamic shared memory per block of the mma.sync kernel with `bn`-column tiles, bytes.
    pub fn smem_bytes_for(self, bn: u32) -> u32 {
        self.stages * (128 + bn) * self.bk * 2
    }

    /// Dynamic shared memory per block of the wgmma kernel with `stages` stages, bytes (the
    /// 1 KiB over the stages lets the kernel align them for the 128-byte swizzle).
    pub fn wgmma_smem_bytes(stages: u32) -> u32 {
        let bytes = stages * (128 + 256) * 64 * 2 + 1024;
        debug_assert!(bytes <= Self::MAX_SMEM_SM90);
        bytes
    }

    fn defines(self) -> Vec<String> {
        let mut d = vec![
            format!("-DMM_BN={}", self.bn),
            format!("-DMM_BK={}", self.bk),
            format!("-DMM_STAGES={}", self.stages),
        ];
        if let Some(s) = self.wgmma_stages {
            d.push(format!("-DWG_STAGES={s}"));
        }
        d
    }
}

/// Entry points of `ops.cu`.
const OP_NAMES: [&str; 22] = [
    "map_f32",
    "map_f16",
    "binary_f32",
    "binary_f16",
    "copy_f32",
    "copy_f16",
    "pool_f32",
    "pool_f16",
    "gap_part_f32",
    "gap_part_f16",
    "gap_f32",
    "gap_f16",
    "resize_f32",
    "resize_f16",
    "softmax_f32",
    "softmax_f16",
    "layernorm_f32",
    "layernorm_f16",
    "matmul_f32",
    "matmul_f16",
    "convert_f32",
    "convert_f16",
];

/// The kernels built for `sm` (with the wgmma kernel when `wgmma`), by entry-point name.
pub fn kernel_names(sm: u32, wgmma: bool) -> Vec<&'static str> {
    let mut names = vec![
        "gemm_f32",
        "gemm_f16",
        "conv_f32",
        "conv_f16",
        "gemm_f32_sk",
        "gemm_f16_sk",
        "conv_f32_sk",
        "conv_f16_sk",
        "gemm_f32_n32",
        "gemm_f16_n32",
        "conv_f32_n32",
        "conv_f16_n32",
        "splitk_reduce_f32",
        "splitk_reduce_f16",
        "depthwise_f32",
        "depthwise_f16",
    ];
    names.extend(OP_NAMES);
    if sm >= WMMA_MIN_SM {
        names.extend(["gemm_f16_wmma", "conv_f16_wmma"]);
    }
    if sm >= MMA_MIN_SM {
        names.extend(["gemm_f16_mma", "conv_f16_mma", "gemm_f16_mma_sk", "conv_f16_mma_sk"]);
        names.extend(["gemm_f16_mma_n64", "conv_f16_mma_n64"]);
    }
    if wgmma {
        names.extend(["gemm_f16_wgmma", "conv_f16_wgmma", "gemm_f16_wgmma_ws", "conv_f16_wgmma_ws"]);
    }
    names
}

/// The one translation unit compiled for `sm` (with the wgmma kernel when `wgmma`).
pub fn source(sm: u32, wgmma: bool) -> String {
    let mut parts = vec![COMMON, GEMM, DEPTHWISE, OPS];
    if sm >= WMMA_MIN_SM {
        parts.push(WMMA);
    }
    if sm >= MMA_MIN_SM {
        parts.push(MMA);
    }
    if wgmma {
        parts.push(WGMMA);
    }
    parts.join("\n")
}

/// Whether a module for `sm` built by NVRTC `nvrtc` holds the wgmma kernel under `mma`.
pub fn builds_wgmma(sm: u32, nvrtc: (i32, i32), mma: MmaConfig) -> bool {
    sm == WGMMA_SM && nvrtc >= WGMMA_NVRTC && mma.wgmma_stages.is_some()
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
    /// The tensor-core kernels' geometry.
    pub mma: MmaConfig,
    /// Whether the module was built for `sm_90a` and holds the wgmma kernel.
    pub wgmma: bool,
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

/// Compiles every kernel for `sm_<sm>` to a CUBIN, with the default tensor-core geometry (on
/// sm_90 with NVRTC 12 or newer, for `sm_90a` with the wgmma kernel).
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
    let version = nvrtc_version()?;
    let wgmma = builds_wgmma(sm, version, mma);
    let source = source(sm, wgmma);
    let arch = if wgmma { format!("sm_{sm}a") } else { format!("sm_{sm}") };
    // (No `-lineinfo`: NVRTC 11.8 crashes with it for sm_90.)
    let mut options = vec![format!("--gpu-architecture={arch}"), "--ptxas-options=-v".to_owned()];
    options.extend(mma.defines());
    // Extra NVRTC options for experiments (the tuning knob `EDGEPACK_CUDA_DEFINES="-DNAME …"`).
    if let Some(extra) = &crate::Tuning::host()?.cuda_defines {
        options.extend(extra.split_whitespace().map(str::to_owned));
    }
    let cache = std::env::var_os("EDGEPACK_CUDA_CACHE")
        .filter(|d| !d.is_empty())
        .map(|dir| cache_path(std::path::Path::new(&dir), &source, &options, version));
    let (cubin, log) = match cache.as_ref().and_then(|p| read_cache(p)) {
        Some(hit) => hit,
        None => {
            let built = nvrtc_compile(sm, &source, &options)?;
            if let Some(p) = &cache {
                write_cache(p, &built);
            }
            built
        }
    };
    let mut kernels = parse_ptxas(&log);
    let names = kernel_names(sm, wgmma);
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
    Ok(Compiled { sm, cubin, kernels, log, mma, wgmma })
}

/// One NVRTC compilation: the CUBIN and the program log.
fn nvrtc_compile(sm: u32, source: &str, options: &[String]) -> Result<(Vec<u8>, String)> {
    let src = CString::new(source).expect("kernel sources hold no NUL");
    let name = CString::new("edgepack.cu").expect("no NUL");
    let prog = nvrtc::create_program(&src, Some(&name)).map_err(|e| KernelError::Device(format!("nvrtc: {e:?}")))?;
    let guard = Program(prog);
    // SAFETY: `prog` is a live program; the options are valid C strings.
    let compiled = unsafe { nvrtc::compile_program(guard.0, options) };
    let log = program_log(guard.0);
    if let Err(e) = compiled {
        return Err(KernelError::Device(format!("NVRTC could not compile the kernels for sm_{sm} ({e:?}):\n{log}")));
    }
    let cubin = cubin(guard.0, sm)?;
    Ok((cubin, log))
}

/// Where the module for these sources, options and NVRTC is cached, when `EDGEPACK_CUDA_CACHE`
/// names a folder: a compile takes seconds (a dozen for sm_90a), a process starts in
/// milliseconds from the cache. The key is a 64-bit FNV-1a hash of everything NVRTC is given.
fn cache_path(dir: &std::path::Path, source: &str, options: &[String], version: (i32, i32)) -> std::path::PathBuf {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let key = format!("{}.{}\0{}\0{source}", version.0, version.1, options.join("\0"));
    for b in key.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    dir.join(format!("edgepack-{hash:016x}"))
}

/// A cached module: `<key>.cubin` and its log `<key>.log`, or `None` (a miss, or unreadable).
fn read_cache(path: &std::path::Path) -> Option<(Vec<u8>, String)> {
    let cubin = std::fs::read(path.with_extension("cubin")).ok()?;
    let log = std::fs::read_to_string(path.with_extension("log")).ok()?;
    (!cubin.is_empty()).then_some((cubin, log))
}

/// Stores a module in the cache; a failure only costs the next process a compile. Each file is
/// written under a temporary name and renamed, the log first, so that a reader that finds the
/// CUBIN also finds its log.
fn write_cache(path: &std::path::Path, (cubin, log): &(Vec<u8>, String)) {
    let put = |ext: &str, bytes: &[u8]| -> std::io::Result<()> {
        let tmp = path.with_extension(format!("{ext}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path.with_extension(ext))
    };
    let _ = path.parent().map(std::fs::create_dir_all);
    if put("log", log.as_bytes()).and_then(|_| put("cubin", cubin)).is_err() {
        eprintln!("edgepack: cannot write the CUDA module cache at {}", path.display());
    }
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

/// The CUBIN NVRTC compiled for `sm`.
fn cubin(prog: sys::nvrtcProgram, sm: u32) -> Result<Vec<u8>> {
    let device = |what: String| KernelError::Device(format!("sm_{sm}: {what}"));
    let mut size = 0usize;
    // SAFETY: `prog` compiled successfully; `size` is a valid out-pointer.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }
        .result()
        .map_err(|e| device(format!("nvrtcGetCUBINSize: {e:?}")))?;
    if size == 0 {
        return Err(device("NVRTC produced no CUBIN (a virtual architecture?)".into()));
    }
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds the `size` bytes NVRTC asked for.
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char) }
        .result()
        .map_err(|e| device(format!("nvrtcGetCUBIN: {e:?}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_cache_keys_on_everything_nvrtc_is_given_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("edgepack-cuda-cache-{}", std::process::id()));
        let opts = |d: &str| vec!["--gpu-architecture=sm_90a".to_owned(), d.to_owned()];
        let key = cache_path(&dir, "src", &opts("-DWG_STAGES=4"), (12, 8));
        assert_eq!(key, cache_path(&dir, "src", &opts("-DWG_STAGES=4"), (12, 8)));
        for other in [
            cache_path(&dir, "src2", &opts("-DWG_STAGES=4"), (12, 8)),
            cache_path(&dir, "src", &opts("-DWG_STAGES=3"), (12, 8)),
            cache_path(&dir, "src", &opts("-DWG_STAGES=4"), (13, 0)),
        ] {
            assert_ne!(key, other);
        }
        assert_eq!(read_cache(&key), None, "a miss before anything is written");
        let module = (vec![1u8, 2, 3], "ptxas info    : Used 8 registers".to_owned());
        write_cache(&key, &module);
        assert_eq!(read_cache(&key), Some(module));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
