//! Cache blocking (BLIS's KC, MC, NC) derived from the host's cache sizes.
//!
//! KC is chosen so that one `KC × NR` panel of B takes half of L1 or a 32nd of L2, whichever is
//! larger, while the microkernel streams it (a 1 MiB L2 streams a panel that fills L1 as fast
//! as L1 does: Zen 4, 1024³ GEMM, AVX-512 12×32 81 → 87 % of peak at KC 256 instead of 128,
//! AVX2 6×16 87 → 91 % at 512 instead of 256; with Zen 3's 512 KiB L2 the rule gives the
//! half-of-L1 depth measured best there); MC so that the packed `MC × KC` block of A fills a
//! quarter of L2 (the rest holds the B panels streaming through and the C tiles; measured best
//! on Zen 3); NC so that the packed `KC × NC` block of B uses a share of L3. The blocking never
//! changes the order in which one output element's products are summed across threads, so
//! results depend on KC only, which depends on the machine, not on the thread count.

use std::sync::OnceLock;

/// Data cache sizes in bytes (per core for L1/L2, total for L3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache.
    pub l1d: usize,
    /// Level-2 cache.
    pub l2: usize,
    /// Level-3 cache (0 when absent).
    pub l3: usize,
}

impl CacheSizes {
    /// Sizes assumed when the OS does not say: a common server core.
    pub const FALLBACK: CacheSizes = CacheSizes { l1d: 32 << 10, l2: 512 << 10, l3: 8 << 20 };

    /// The running machine's caches, read once from Linux sysfs, else [`CacheSizes::FALLBACK`].
    pub fn host() -> CacheSizes {
        static HOST: OnceLock<CacheSizes> = OnceLock::new();
        *HOST.get_or_init(|| read_sysfs().unwrap_or(CacheSizes::FALLBACK))
    }
}

fn read_sysfs() -> Option<CacheSizes> {
    let mut sizes = CacheSizes { l1d: 0, l2: 0, l3: 0 };
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok().map(|s| s.trim().to_owned());
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size")) else {
            continue;
        };
        let bytes = parse_size(&size)?;
        match (level.as_str(), kind.as_str()) {
            ("1", "Data") => sizes.l1d = bytes,
            ("2", "Unified") | ("2", "Data") => sizes.l2 = bytes,
            ("3", "Unified") => sizes.l3 = bytes,
            _ => {}
        }
    }
    (sizes.l1d > 0 && sizes.l2 > 0).then_some(sizes)
}

/// Parses sysfs sizes such as `32K`, `1024K`, `32M`.
fn parse_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mult)
}

/// Cache blocks for one microkernel geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// Depth of one pass over K (rows of a B panel).
    pub kc: usize,
    /// Rows of A packed per block (a multiple of MR).
    pub mc: usize,
    /// Columns of B packed per block (a multiple of NR).
    pub nc: usize,
}

impl Blocking {
    /// Blocks for an `mr × nr` microkernel on this machine: from the host's caches, unless the
    /// environment variable `EDGEPACK_BLOCKING=kc,mc,nc` overrides them (for tuning; MC and NC
    /// are rounded to multiples of the tile).
    pub fn for_host(mr: usize, nr: usize) -> Blocking {
        let from_env = std::env::var("EDGEPACK_BLOCKING").ok().and_then(|v| {
            let f: Vec<usize> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            (f.len() == 3 && f.iter().all(|&x| x > 0)).then(|| Blocking {
                kc: f[0],
                mc: f[1].div_ceil(mr) * mr,
                nc: f[2].div_ceil(nr) * nr,
            })
        });
        from_env.unwrap_or_else(|| Blocking::for_caches(CacheSizes::host(), mr, nr))
    }

    /// Blocks for an `mr × nr` microkernel on a machine with these caches.
    pub fn for_caches(caches: CacheSizes, mr: usize, nr: usize) -> Blocking {
        let f = std::mem::size_of::<f32>();
        let kc = ((caches.l1d / 2).max(caches.l2 / 32) / (nr * f)).clamp(64, 512) / 8 * 8;
        let mc = ((caches.l2 / 4 / (kc * f)).clamp(mr, 1024) / mr * mr).max(mr);
        let l3_share = if caches.l3 == 0 { caches.l2 * 4 } else { caches.l3 / 4 };
        let nc = ((l3_share / (kc * f)).clamp(nr, 8192) / nr * nr).max(nr);
        Blocking { kc, mc, nc }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_sizes() {
        assert_eq!(parse_size("32K"), Some(32 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn blocks_are_multiples_of_the_tile() {
        for (mr, nr) in [(6, 16), (12, 32), (4, 8), (8, 12)] {
            for caches in [CacheSizes::FALLBACK, CacheSizes { l1d: 48 << 10, l2: 2 << 20, l3: 0 }] {
                let b = Blocking::for_caches(caches, mr, nr);
                assert!(b.mc.is_multiple_of(mr), "{b:?}");
                assert!(b.nc.is_multiple_of(nr), "{b:?}");
                assert!(b.kc >= 64 && b.kc.is_multiple_of(8), "{b:?}");
                assert!(b.mc * b.kc * 4 <= caches.l2.max(mr * b.kc * 4), "{b:?}");
            }
        }
    }
}
