//! Every tuning knob of the kernels in one place: the experiments' environment variables, read
//! and checked once per process, shown by the kernel report and by `edgepack run`/`bench`.
//!
//! | variable | what it changes | default |
//! |---|---|---|
//! | `EDGEPACK_BLOCKING=kc,mc,nc` | the CPU sets' GEMM cache blocks | from the host's caches |
//! | `EDGEPACK_MMA=bn,bk,stages` or `wmma` | the CUDA `mma.sync` tile, or `wmma` forced | `128,64,2` |
//! | `EDGEPACK_WGMMA=[ws]3|4` or `off` | Hopper's wgmma pipeline | `4` |
//! | `EDGEPACK_CUDA_SPLIT_K=on|off` | split K for launches of fewer tiles than SMs | `on` |
//! | `EDGEPACK_CUDA_NARROW=on|off` | narrow tiles for outputs of few columns | `on` |
//! | `EDGEPACK_CUDA_DEFINES="-DNAME …"` | extra NVRTC options | none |
//!
//! A malformed value is an error naming the variable (a kernel set is then not built), never
//! silently ignored.

use std::fmt;
use std::sync::OnceLock;

use crate::error::{KernelError, Result};

/// Names of the knobs, in the order [`Tuning::overrides`] lists them.
pub const KNOBS: [&str; 6] = [
    "EDGEPACK_BLOCKING",
    "EDGEPACK_MMA",
    "EDGEPACK_WGMMA",
    "EDGEPACK_CUDA_SPLIT_K",
    "EDGEPACK_CUDA_NARROW",
    "EDGEPACK_CUDA_DEFINES",
];

/// The knobs' values; `Default` is what a build without overrides uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// CPU GEMM cache blocks `(kc, mc, nc)` instead of those derived from the host's caches
    /// (MC and NC are rounded up to whole tiles by each set).
    pub blocking: Option<(usize, usize, usize)>,
    /// The CUDA `mma.sync` geometry or `wmma`, as given (parsed and checked by the CUDA set).
    pub mma: Option<String>,
    /// The wgmma pipeline, as given (parsed and checked by the CUDA set).
    pub wgmma: Option<String>,
    /// CUDA: split the reduction of launches with fewer tiles than the GPU has SMs.
    pub split_k: bool,
    /// CUDA: narrow tiles for outputs of few columns.
    pub narrow_tiles: bool,
    /// CUDA: extra NVRTC options.
    pub cuda_defines: Option<String>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { blocking: None, mma: None, wgmma: None, split_k: true, narrow_tiles: true, cuda_defines: None }
    }
}

impl Tuning {
    /// The process's knobs, read from the environment on first use (the same answer after).
    pub fn host() -> Result<&'static Tuning> {
        static HOST: OnceLock<Result<Tuning>> = OnceLock::new();
        HOST.get_or_init(|| Tuning::from_vars(|k| std::env::var(k).ok())).as_ref().map_err(Clone::clone)
    }

    /// The knobs from `get` (a variable's value, if set), each checked.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Tuning> {
        let mut t = Tuning::default();
        if let Some(v) = get("EDGEPACK_BLOCKING") {
            t.blocking = Some(parse_blocking(&v)?);
        }
        t.mma = get("EDGEPACK_MMA");
        t.wgmma = get("EDGEPACK_WGMMA");
        #[cfg(feature = "cuda")]
        {
            if let Some(v) = &t.mma {
                crate::cuda::compile::MmaConfig::parse(v)?;
            }
            if let Some(v) = &t.wgmma {
                crate::cuda::compile::MmaConfig::parse_wgmma(v)?;
            }
        }
        t.split_k = on_off("EDGEPACK_CUDA_SPLIT_K", get("EDGEPACK_CUDA_SPLIT_K").as_deref())?;
        t.narrow_tiles = on_off("EDGEPACK_CUDA_NARROW", get("EDGEPACK_CUDA_NARROW").as_deref())?;
        t.cuda_defines = get("EDGEPACK_CUDA_DEFINES").filter(|d| !d.trim().is_empty());
        Ok(t)
    }

    /// The knobs that differ from the defaults, as `NAME=value`.
    pub fn overrides(&self) -> Vec<String> {
        let d = Tuning::default();
        let mut o = Vec::new();
        if let Some((kc, mc, nc)) = self.blocking {
            o.push(format!("EDGEPACK_BLOCKING={kc},{mc},{nc}"));
        }
        if let Some(v) = &self.mma {
            o.push(format!("EDGEPACK_MMA={v}"));
        }
        if let Some(v) = &self.wgmma {
            o.push(format!("EDGEPACK_WGMMA={v}"));
        }
        let word = |b: bool| if b { "on" } else { "off" };
        if self.split_k != d.split_k {
            o.push(format!("EDGEPACK_CUDA_SPLIT_K={}", word(self.split_k)));
        }
        if self.narrow_tiles != d.narrow_tiles {
            o.push(format!("EDGEPACK_CUDA_NARROW={}", word(self.narrow_tiles)));
        }
        if let Some(v) = &self.cuda_defines {
            o.push(format!("EDGEPACK_CUDA_DEFINES={v}"));
        }
        o
    }
}

impl fmt::Display for Tuning {
    /// `defaults`, or the overrides separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.overrides() {
            o if o.is_empty() => f.write_str("defaults"),
            o => f.write_str(&o.join(" ")),
        }
    }
}

fn parse_blocking(v: &str) -> Result<(usize, usize, usize)> {
    let bad = || KernelError::Tuning(format!("EDGEPACK_BLOCKING=`{v}`: expected kc,mc,nc (three positive integers)"));
    let f: Vec<usize> = v.split(',').map(|x| x.trim().parse().map_err(|_| bad())).collect::<Result<_>>()?;
    match f[..] {
        [kc, mc, nc] if kc > 0 && mc > 0 && nc > 0 => Ok((kc, mc, nc)),
        _ => Err(bad()),
    }
}

/// An on/off rule: on unless `value` is `off`.
fn on_off(var: &str, value: Option<&str>) -> Result<bool> {
    match value.map(str::trim) {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(v) => Err(KernelError::Tuning(format!("{var}=`{v}`: expected `on` or `off`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{Tuning, KNOBS};

    fn with(vars: &[(&str, &str)]) -> crate::Result<Tuning> {
        Tuning::from_vars(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn no_variable_is_the_defaults() {
        let t = with(&[]).unwrap();
        assert_eq!(t, Tuning::default());
        assert!(t.split_k && t.narrow_tiles && t.blocking.is_none());
        assert_eq!(t.to_string(), "defaults");
    }

    #[test]
    fn every_knob_is_read_and_shown() {
        let t = with(&[
            ("EDGEPACK_BLOCKING", "64, 126,8192"),
            ("EDGEPACK_CUDA_SPLIT_K", "off"),
            ("EDGEPACK_CUDA_NARROW", "on"),
            ("EDGEPACK_CUDA_DEFINES", "-DMM_BK=32"),
        ])
        .unwrap();
        assert_eq!(t.blocking, Some((64, 126, 8192)));
        assert!(!t.split_k && t.narrow_tiles);
        assert_eq!(
            t.to_string(),
            "EDGEPACK_BLOCKING=64,126,8192 EDGEPACK_CUDA_SPLIT_K=off EDGEPACK_CUDA_DEFINES=-DMM_BK=32"
        );
        for o in t.overrides() {
            assert!(KNOBS.iter().any(|k| o.starts_with(&format!("{k}="))), "{o} is not a listed knob");
        }
    }

    #[test]
    fn malformed_values_are_errors_naming_the_variable() {
        for (var, value) in [
            ("EDGEPACK_BLOCKING", "64,126"),
            ("EDGEPACK_BLOCKING", "0,126,8192"),
            ("EDGEPACK_BLOCKING", "a,b,c"),
            ("EDGEPACK_CUDA_SPLIT_K", "0"),
            ("EDGEPACK_CUDA_NARROW", "yes"),
        ] {
            let e = with(&[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(&format!("{var}=`{value}`")), "{var}={value}: {e}");
        }
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_geometry_knobs_are_checked_when_read() {
        assert!(with(&[("EDGEPACK_MMA", "128,32,4")]).is_ok());
        assert!(with(&[("EDGEPACK_MMA", "96,64,3")]).unwrap_err().to_string().contains("EDGEPACK_MMA"));
        assert!(with(&[("EDGEPACK_WGMMA", "ws4")]).is_ok());
        assert!(with(&[("EDGEPACK_WGMMA", "5")]).unwrap_err().to_string().contains("EDGEPACK_WGMMA"));
    }
}
