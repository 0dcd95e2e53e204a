//! The memory budget of imports and packaging jobs: a model whose estimated peak
//! ([`model::memory::estimate`]) is over it is refused before anything large is allocated (a
//! ValidationException at import, a FAILED job naming the figures at packaging).
//!
//! The budget is, first found: [`crate::Settings::memory_budget`]; `EDGEPACK_MEMORY_BUDGET`
//! (bytes, or with a `K`, `M`, `G` or `T` suffix, powers of 1024); three quarters of the
//! memory available to this process when it checks (`MemAvailable`, or what the cgroup's
//! `memory.max` leaves, whichever is less).

use model::memory::{human, MemoryEstimate};

use crate::error::{ApiError, Result};

/// The environment variable that sets the budget.
pub const ENV: &str = "EDGEPACK_MEMORY_BUDGET";

/// A budget and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// Where it came from, for messages.
    pub source: String,
}

/// Parses `512M`, `8G`, `1073741824`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], 10),
        'M' => (&s[..s.len() - 1], 20),
        'G' => (&s[..s.len() - 1], 30),
        'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let v: f64 = num.trim().parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0)?;
    let bytes = v * (1u64 << shift) as f64;
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The budget in force (see the module's documentation).
pub fn resolve(setting: Option<u64>) -> Result<Budget> {
    if let Some(bytes) = setting {
        return Ok(Budget { bytes, source: "the service's setting".into() });
    }
    if let Some(v) = std::env::var_os(ENV) {
        let v = v.to_string_lossy();
        let bytes = parse_bytes(&v).ok_or_else(|| {
            ApiError::validation(format!("{ENV}={v}: expected a size in bytes, or with a K, M, G or T suffix"))
        })?;
        return Ok(Budget { bytes, source: format!("{ENV}={v}") });
    }
    let available = available_memory()
        .ok_or_else(|| ApiError::internal(format!("cannot read the memory available (/proc/meminfo); set {ENV}")))?;
    Ok(Budget { bytes: available / 4 * 3, source: format!("3/4 of the {} available; {ENV} sets it", human(available)) })
}

/// Memory available to this process: `MemAvailable`, less where the cgroup's limit leaves less.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let mut available = kib * 1024;
    if let Some(left) = cgroup_left() {
        available = available.min(left);
    }
    Some(available)
}

/// What this process's cgroup (v2) limit leaves: `memory.max` − `memory.current`.
fn cgroup_left() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim().trim_start_matches('/'));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max" (no limit) does not parse
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// Refuses `estimate` over `budget`: the message names the figures (`what` says for what,
/// e.g. "at input shape [1, 3, 224, 224]").
pub fn check(estimate: &MemoryEstimate, budget: &Budget, what: &str) -> Result<()> {
    if estimate.total() <= budget.bytes {
        return Ok(());
    }
    let uncounted = match estimate.unknown {
        0 => String::new(),
        n => format!(", not counting {n} values sized only at run time"),
    };
    Err(ApiError::validation(format!(
        "model: {what} packaging needs about {} of memory (float64 reference {}, float32 execution {}, largest step widened {}{uncounted}), over the memory budget of {} ({})",
        human(estimate.total()),
        human(estimate.reference),
        human(estimate.execution),
        human(estimate.transient),
        human(budget.bytes),
        budget.source
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("1.5g"), Some(3 << 29));
        assert_eq!(parse_bytes("2T"), Some(2 << 40));
        for bad in ["", "G", "-1G", "0", "lots", "1e40T"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn over_the_budget_is_refused_with_the_figures() {
        let e = MemoryEstimate { reference: 3 << 30, execution: 1 << 30, transient: 0, unknown: 0 };
        let b = Budget { bytes: 2 << 30, source: "a test".into() };
        let err = check(&e, &b, "at input shape [1, 3, 8, 8]").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Validation);
        for s in ["4.1 GiB", "float64 reference 3.0 GiB", "float32 execution 1.0 GiB", "budget of 2.0 GiB (a test)"] {
            assert!(err.message.contains(s), "{s}: {}", err.message);
        }
        assert!(!err.message.contains("run time"), "{}", err.message);
        let dynamic = MemoryEstimate { unknown: 2, ..e };
        let err = check(&dynamic, &b, "").unwrap_err();
        assert!(err.message.contains("not counting 2 values sized only at run time"), "{}", err.message);
        check(&e, &Budget { bytes: e.total(), source: "x".into() }, "").unwrap();
        assert!(available_memory().is_some_and(|a| a > 0), "this machine's available memory reads");
    }
}
