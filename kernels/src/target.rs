//! `Target`: the hardware a package is for, built from the packaging job's configuration.
//!
//! The vocabulary is the packaging API's: a `TargetDevice` (`jetson_xavier`) or a
//! `TargetPlatform` {Os, Arch, Accelerator} plus a `CompilerOptions` JSON string (`mcpu`, `mattr`
//! for CPUs; `gpu-code`, `trt-ver`, `cuda-ver` for NVIDIA). Both quote styles the service's
//! documentation shows (`{"mcpu": "x"}` and `{'mcpu': 'x'}`) are accepted. A target maps to the
//! kernel set that runs its heavy operations ([`Target::kernel_set`]) and the CPU set that runs
//! the rest ([`Target::cpu_kernel_set`]).

use std::fmt;

use serde_json::Value;

use crate::error::{KernelError, Result};
use crate::KernelSetId;

/// Target operating system (the API knows only Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// `LINUX`.
    Linux,
}

/// Target CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `X86_64`.
    X86_64,
    /// `ARM64` (AArch64).
    Arm64,
}

impl Arch {
    /// Greengrass's name for the architecture, as recipes' `Platform.architecture` spell it.
    pub fn greengrass_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "aarch64",
        }
    }
}

/// The CPU instruction set a target's CPU kernels may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuIsa {
    /// No vector extension we target (pre-Haswell x86, or AVX2/FMA switched off).
    Portable,
    /// x86_64 AVX2 with FMA3.
    Avx2Fma,
    /// x86_64 AVX-512F.
    Avx512F,
    /// AArch64 Advanced SIMD (always present on ARMv8-A).
    Neon,
}

/// NVIDIA options (`gpu-code`, `trt-ver`, `cuda-ver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvidiaOptions {
    /// Compute capability as in `sm_72` → 72.
    pub sm: u32,
    /// TensorRT version `x.y.z` as given.
    pub trt_ver: String,
    /// CUDA version `x.y` as given.
    pub cuda_ver: String,
}

/// What runs the heavy operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accelerator {
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU.
    Nvidia(NvidiaOptions),
}

/// The hardware a package is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Set when the target came from a `TargetDevice`.
    pub device: Option<String>,
    /// Operating system.
    pub os: Os,
    /// CPU architecture.
    pub arch: Arch,
    /// CPU micro-architecture (`mcpu`, or the default for the architecture, or `native`).
    pub mcpu: String,
    /// CPU instruction set after `mcpu` and `mattr`.
    pub cpu_isa: CpuIsa,
    /// Accelerator.
    pub accelerator: Accelerator,
}

/// `mcpu` values for x86_64 with AVX-512F.
pub const X86_AVX512_CPUS: &[&str] = &[
    "skylake-avx512",
    "cascadelake",
    "cooperlake",
    "cannonlake",
    "icelake-client",
    "icelake-server",
    "tigerlake",
    "rocketlake",
    "sapphirerapids",
    "emeraldrapids",
    "graniterapids",
    "graniterapids-d",
    "znver4",
    "znver5",
    "x86-64-v4",
    "knl",
    "knm",
];
/// `mcpu` values for x86_64 with AVX2 and FMA (the default class).
pub const X86_AVX2_CPUS: &[&str] = &[
    "core-avx2",
    "haswell",
    "broadwell",
    "skylake",
    "alderlake",
    "raptorlake",
    "meteorlake",
    "arrowlake",
    "lunarlake",
    "gracemont",
    "sierraforest",
    "grandridge",
    "znver1",
    "znver2",
    "znver3",
    "bdver4",
    "x86-64-v3",
];
/// `mcpu` values for x86_64 without AVX2+FMA: they get the portable kernels.
pub const X86_PORTABLE_CPUS: &[&str] = &[
    "x86-64",
    "x86-64-v2",
    "core2",
    "nehalem",
    "westmere",
    "sandybridge",
    "ivybridge",
    "silvermont",
    "goldmont",
    "btver2",
];
/// `mcpu` values for ARM64 (all have NEON).
pub const ARM64_CPUS: &[&str] = &[
    "generic",
    "cortex-a53",
    "cortex-a55",
    "cortex-a57",
    "cortex-a72",
    "cortex-a73",
    "cortex-a75",
    "cortex-a76",
    "cortex-a76ae",
    "cortex-a77",
    "cortex-a78",
    "cortex-a78ae",
    "cortex-a78c",
    "cortex-a710",
    "cortex-x1",
    "cortex-x2",
    "neoverse-n1",
    "neoverse-n2",
    "neoverse-v1",
    "neoverse-v2",
    "carmel",
    "apple-m1",
    "apple-m2",
    "ampere1",
    "thunderx2t99",
    "tsv110",
    "a64fx",
];
/// `mattr` features understood on x86_64 (those not named in `CpuIsa` are accepted and have
/// no effect on kernel choice).
pub const X86_FEATURES: &[&str] = &[
    "avx512f",
    "avx2",
    "fma",
    "avx",
    "f16c",
    "avx512bw",
    "avx512dq",
    "avx512cd",
    "avx512vl",
    "avx512vnni",
    "avx512bf16",
    "avx512fp16",
    "avxvnni",
    "sse4.2",
    "sse4.1",
    "ssse3",
    "sse3",
    "sse2",
    "popcnt",
    "bmi",
    "bmi2",
];
/// `mattr` features understood on ARM64 (accepted; NEON cannot be switched off).
pub const ARM64_FEATURES: &[&str] = &[
    "neon", "vfpv4", "fp-armv8", "fp16", "fullfp16", "dotprod", "i8mm", "bf16", "sve", "sve2", "crc", "crypto", "lse",
    "rcpc",
];
/// `gpu-code` values with a CUDA kernel set.
pub const GPU_CODES: &[&str] = &["sm_72", "sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90"];
/// The `TargetDevice` values.
pub const DEVICES: &[&str] = &["jetson_xavier"];

const CPU_KEYS: &[&str] = &["mcpu", "mattr"];
const NVIDIA_KEYS: &[&str] = &["gpu-code", "trt-ver", "cuda-ver"];

fn target_err(msg: impl Into<String>) -> KernelError {
    KernelError::Target(msg.into())
}

impl Target {
    /// A `TargetDevice` (`jetson_xavier`: Carmel ARM64 CPU + Volta GPU, sm_72). Its
    /// `trt-ver`/`cuda-ver` are the original service's tested configuration (JetPack 4.6:
    /// TensorRT 8.2.1, CUDA 10.2) and stay as the API names them; edgepack's CUDA build needs
    /// CUDA 11.4 or newer (cudarc's oldest API level), so on a Xavier it runs on JetPack 5.1
    /// (docs/hil.md: supported JetPack versions).
    pub fn device(name: &str) -> Result<Target> {
        match name {
            "jetson_xavier" => Ok(Target {
                device: Some(name.to_owned()),
                os: Os::Linux,
                arch: Arch::Arm64,
                mcpu: "carmel".into(),
                cpu_isa: CpuIsa::Neon,
                accelerator: Accelerator::Nvidia(NvidiaOptions {
                    sm: 72,
                    trt_ver: "8.2.1".into(),
                    cuda_ver: "10.2".into(),
                }),
            }),
            other => Err(target_err(format!("unknown TargetDevice `{other}`; supported: {}", DEVICES.join(", ")))),
        }
    }

    /// A `TargetPlatform` with optional `Accelerator` and `CompilerOptions` JSON string.
    pub fn platform(os: &str, arch: &str, accelerator: Option<&str>, compiler_options: Option<&str>) -> Result<Target> {
        let os = match os {
            "LINUX" => Os::Linux,
            other => return Err(target_err(format!("TargetPlatform.Os `{other}` is not supported; supported: LINUX"))),
        };
        let arch = match arch {
            "X86_64" => Arch::X86_64,
            "ARM64" => Arch::Arm64,
            other => {
                return Err(target_err(format!(
                    "TargetPlatform.Arch `{other}` is not supported; supported: X86_64, ARM64"
                )))
            }
        };
        let nvidia = match accelerator {
            None => false,
            Some("NVIDIA") => true,
            Some(other) => {
                return Err(target_err(format!(
                    "TargetPlatform.Accelerator `{other}` is not supported; supported: NVIDIA (or none for CPU)"
                )))
            }
        };
        let options = match compiler_options {
            Some(s) => parse_options(s)?,
            None => serde_json::Map::new(),
        };
        let allowed: Vec<&str> = if nvidia { [CPU_KEYS, NVIDIA_KEYS].concat() } else { CPU_KEYS.to_vec() };
        for key in options.keys() {
            if !allowed.contains(&key.as_str()) {
                let why = if NVIDIA_KEYS.contains(&key.as_str()) { " (it needs Accelerator NVIDIA)" } else { "" };
                return Err(target_err(format!(
                    "CompilerOptions key `{key}` is not valid here{why}; supported: {}",
                    allowed.join(", ")
                )));
            }
        }
        let (mcpu, cpu_isa) = cpu_choice(arch, &options)?;
        let accelerator = if nvidia { Accelerator::Nvidia(nvidia_options(&options)?) } else { Accelerator::Cpu };
        Ok(Target { device: None, os, arch, mcpu, cpu_isa, accelerator })
    }

    /// The Greengrass configuration's target fields as JSON: `{"TargetDevice": "jetson_xavier"}`
    /// or `{"TargetPlatform": {"Os": .., "Arch": .., "Accelerator": ..}, "CompilerOptions": ".."}`.
    /// Other keys of the configuration (component name, output location, …) are ignored here.
    pub fn from_configuration(json: &str) -> Result<Target> {
        let v: Value =
            serde_json::from_str(json).map_err(|e| target_err(format!("configuration is not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| target_err("configuration must be a JSON object"))?;
        let str_field = |o: &serde_json::Map<String, Value>, k: &str| -> Result<Option<String>> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(target_err(format!("{k} must be a string, got {other}"))),
            }
        };
        let device = str_field(obj, "TargetDevice")?;
        let options = str_field(obj, "CompilerOptions")?;
        match (device, obj.get("TargetPlatform")) {
            (Some(_), Some(_)) => Err(target_err("TargetDevice and TargetPlatform are mutually exclusive; give one")),
            (None, None) => Err(target_err("one of TargetDevice or TargetPlatform is required")),
            (Some(_), None) if options.is_some() => {
                Err(target_err("CompilerOptions cannot be given with TargetDevice"))
            }
            (Some(d), None) => Target::device(&d),
            (None, Some(p)) => {
                let p = p.as_object().ok_or_else(|| target_err("TargetPlatform must be an object"))?;
                let os = str_field(p, "Os")?.ok_or_else(|| target_err("TargetPlatform.Os is required"))?;
                let arch = str_field(p, "Arch")?.ok_or_else(|| target_err("TargetPlatform.Arch is required"))?;
                let acc = str_field(p, "Accelerator")?;
                Target::platform(&os, &arch, acc.as_deref(), options.as_deref())
            }
        }
    }

    /// The machine this process runs on, with the best CPU instruction set it supports.
    pub fn host() -> Target {
        #[cfg(target_arch = "x86_64")]
        let (arch, cpu_isa) = (
            Arch::X86_64,
            if crate::x86::avx512::detected() {
                CpuIsa::Avx512F
            } else if crate::x86::avx2::detected() {
                CpuIsa::Avx2Fma
            } else {
                CpuIsa::Portable
            },
        );
        #[cfg(target_arch = "aarch64")]
        let (arch, cpu_isa) = (Arch::Arm64, CpuIsa::Neon);
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        compile_error!("edgepack targets x86_64 and aarch64");
        Target { device: None, os: Os::Linux, arch, mcpu: "native".into(), cpu_isa, accelerator: Accelerator::Cpu }
    }

    /// The kernel set for the CPU side of this target.
    pub fn cpu_kernel_set(&self) -> KernelSetId {
        match self.cpu_isa {
            CpuIsa::Portable => KernelSetId::Scalar,
            CpuIsa::Avx2Fma => KernelSetId::Avx2,
            CpuIsa::Avx512F => KernelSetId::Avx512,
            CpuIsa::Neon => KernelSetId::Neon,
        }
    }

    /// The kernel set for the heavy operations (CUDA on NVIDIA targets, else the CPU set).
    pub fn kernel_set(&self) -> KernelSetId {
        match self.accelerator {
            Accelerator::Nvidia(_) => KernelSetId::Cuda,
            Accelerator::Cpu => self.cpu_kernel_set(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.device {
            write!(f, "{d} = ")?;
        }
        let arch = match self.arch {
            Arch::X86_64 => "X86_64",
            Arch::Arm64 => "ARM64",
        };
        write!(f, "LINUX/{arch} mcpu={} ({:?})", self.mcpu, self.cpu_isa)?;
        if let Accelerator::Nvidia(o) = &self.accelerator {
            write!(f, " + NVIDIA sm_{} trt {} cuda {}", o.sm, o.trt_ver, o.cuda_ver)?;
        }
        Ok(())
    }
}

/// Parses the CompilerOptions string, in either quote style, into an object.
fn parse_options(s: &str) -> Result<serde_json::Map<String, Value>> {
    let v: Value =
        json5::from_str(s).map_err(|e| target_err(format!("CompilerOptions `{s}` is not a JSON object: {e}")))?;
    match v {
        Value::Object(o) => Ok(o),
        _ => {
            Err(target_err(format!("CompilerOptions `{s}` must be a JSON object such as {{\"mcpu\": \"core-avx2\"}}")))
        }
    }
}

fn string_option<'a>(options: &'a serde_json::Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match options.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(target_err(format!("CompilerOptions `{key}` must be a string, got {other}"))),
    }
}

/// `mattr` as a list of (enable, feature) pairs; accepts a list or a comma-separated string.
fn mattr(options: &serde_json::Map<String, Value>) -> Result<Vec<(bool, String)>> {
    let items: Vec<String> = match options.get("mattr") {
        None => return Ok(vec![]),
        Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| target_err(format!("mattr entries must be strings, got {v}")))
            })
            .collect::<Result<_>>()?,
        Some(other) => return Err(target_err(format!("mattr must be a list like ['+avx512f'], got {other}"))),
    };
    let mut out: Vec<(bool, String)> = Vec::new();
    for item in items {
        let (on, name) = match item.split_at_checked(1) {
            Some(("+", rest)) => (true, rest),
            Some(("-", rest)) => (false, rest),
            _ => return Err(target_err(format!("mattr entry `{item}` must start with + or -"))),
        };
        if out.iter().any(|(o, n)| n == name && *o != on) {
            return Err(target_err(format!("mattr both enables and disables `{name}`")));
        }
        out.push((on, name.to_owned()));
    }
    Ok(out)
}

fn cpu_choice(arch: Arch, options: &serde_json::Map<String, Value>) -> Result<(String, CpuIsa)> {
    let mcpu = string_option(options, "mcpu")?;
    let attrs = mattr(options)?;
    match arch {
        Arch::Arm64 => {
            let mcpu = mcpu.unwrap_or("generic");
            if !ARM64_CPUS.contains(&mcpu) {
                let hint = if is_x86_cpu(mcpu) { " (that is an x86_64 CPU; Arch is ARM64)" } else { "" };
                return Err(target_err(format!(
                    "unknown ARM64 mcpu `{mcpu}`{hint}; supported: {}",
                    ARM64_CPUS.join(", ")
                )));
            }
            for (on, name) in &attrs {
                if !ARM64_FEATURES.contains(&name.as_str()) {
                    return Err(target_err(format!(
                        "mattr `{name}` is not an ARM64 feature; supported: {}",
                        ARM64_FEATURES.join(", ")
                    )));
                }
                if !on && name == "neon" {
                    return Err(target_err("mattr `-neon` is contradictory: every ARM64 CPU has NEON"));
                }
            }
            Ok((mcpu.to_owned(), CpuIsa::Neon))
        }
        Arch::X86_64 => {
            let mcpu = mcpu.unwrap_or("core-avx2");
            let (mut avx512f, mut avx2, mut fma) = if X86_AVX512_CPUS.contains(&mcpu) {
                (true, true, true)
            } else if X86_AVX2_CPUS.contains(&mcpu) {
                (false, true, true)
            } else if X86_PORTABLE_CPUS.contains(&mcpu) {
                (false, false, false)
            } else {
                let hint = if ARM64_CPUS.contains(&mcpu) { " (that is an ARM64 CPU; Arch is X86_64)" } else { "" };
                let all = [X86_AVX512_CPUS, X86_AVX2_CPUS, X86_PORTABLE_CPUS].concat();
                return Err(target_err(format!("unknown X86_64 mcpu `{mcpu}`{hint}; supported: {}", all.join(", "))));
            };
            for (_, name) in &attrs {
                if !X86_FEATURES.contains(&name.as_str()) {
                    let hint = if ARM64_FEATURES.contains(&name.as_str()) { " (it is an ARM64 feature)" } else { "" };
                    return Err(target_err(format!(
                        "mattr `{name}` is not an X86_64 feature{hint}; supported: {}",
                        X86_FEATURES.join(", ")
                    )));
                }
            }
            let enabled = |f: &str| attrs.iter().any(|(on, n)| *on && n == f);
            let disabled = |f: &str| attrs.iter().any(|(on, n)| !*on && n == f);
            for dep in ["avx2", "fma"] {
                if enabled("avx512f") && disabled(dep) {
                    return Err(target_err(format!(
                        "mattr `+avx512f` with `-{dep}` is contradictory: AVX-512F implies {dep}"
                    )));
                }
            }
            if enabled("avx512f") {
                (avx512f, avx2, fma) = (true, true, true);
            }
            avx2 |= enabled("avx2");
            fma |= enabled("fma");
            if disabled("avx512f") {
                avx512f = false;
            }
            if disabled("avx2") || disabled("fma") {
                (avx512f, avx2, fma) = (false, avx2 && !disabled("avx2"), fma && !disabled("fma"));
            }
            let isa = if avx512f {
                CpuIsa::Avx512F
            } else if avx2 && fma {
                CpuIsa::Avx2Fma
            } else {
                CpuIsa::Portable
            };
            Ok((mcpu.to_owned(), isa))
        }
    }
}

fn is_x86_cpu(mcpu: &str) -> bool {
    [X86_AVX512_CPUS, X86_AVX2_CPUS, X86_PORTABLE_CPUS].iter().any(|l| l.contains(&mcpu))
}

fn nvidia_options(options: &serde_json::Map<String, Value>) -> Result<NvidiaOptions> {
    let missing: Vec<&str> = NVIDIA_KEYS.iter().copied().filter(|k| !options.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err(target_err(format!(
            "Accelerator NVIDIA needs CompilerOptions {}; missing: {}",
            NVIDIA_KEYS.join(", "),
            missing.join(", ")
        )));
    }
    let gpu = string_option(options, "gpu-code")?.unwrap_or_default();
    if !GPU_CODES.contains(&gpu) {
        return Err(target_err(format!("gpu-code `{gpu}` is not supported; supported: {}", GPU_CODES.join(", "))));
    }
    let sm = gpu[3..].parse().map_err(|_| target_err(format!("gpu-code `{gpu}` is malformed")))?;
    let trt = string_option(options, "trt-ver")?.unwrap_or_default();
    if !is_version(trt, 3) {
        return Err(target_err(format!("trt-ver `{trt}` must look like 8.2.1 (x.y.z)")));
    }
    let cuda = string_option(options, "cuda-ver")?.unwrap_or_default();
    if !is_version(cuda, 2) {
        return Err(target_err(format!("cuda-ver `{cuda}` must look like 10.2 (x.y)")));
    }
    Ok(NvidiaOptions { sm, trt_ver: trt.to_owned(), cuda_ver: cuda.to_owned() })
}

/// `parts` dot-separated non-empty decimal numbers.
fn is_version(s: &str, parts: usize) -> bool {
    let fields: Vec<&str> = s.split('.').collect();
    fields.len() == parts
        && fields.iter().all(|f| !f.is_empty() && f.len() <= 4 && f.bytes().all(|b| b.is_ascii_digit()))
}
