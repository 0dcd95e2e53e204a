//! Cache blocking (BLIS's KC, MC, NC) derived from the host's cache sizes.
//!
//! KC is the pass depth: one `KC × NR` panel of B takes an eighth of L2, at most 1024 values
//! deep; a product's K up to 1.5 × KC is one pass, a longer one the fewest passes of at most
//! KC, of equal depth ([`Blocking::for_depth`]). Every extra pass stores the C tiles and reads
//! them back, and deep passes beat the old depth (half of L1 or a 32nd of L2) on every GEMM
//! and convolution measured, AVX-512 and AVX2 alike; the portable kernel measured the same at
//! every depth (figures: `docs/perf-log/2026-11-28-design-figures.md`). MC makes the `MC × KC` block of A a quarter of L2 (the rest holds the B
//! panels streaming through and the C tiles; measured best on Zen 3), at the pass's depth; NC
//! makes the packed `KC × NC` block of B a share of L3. The blocking never changes the order
//! in which one output element's products are summed across threads, so results depend on
//! the pass depths only, which depend on the machine and K, not on the thread count.

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
    /// tuning knob `EDGEPACK_BLOCKING=kc,mc,nc` ([`crate::Tuning`]) overrides them (MC and NC
    /// rounded up to multiples of the tile). A malformed knob is refused where sets are built.
    pub fn for_host(mr: usize, nr: usize) -> Blocking {
        match crate::Tuning::host().ok().and_then(|t| t.blocking) {
            Some((kc, mc, nc)) => Blocking { kc, mc: mc.div_ceil(mr) * mr, nc: nc.div_ceil(nr) * nr },
            None => Blocking::for_caches(CacheSizes::host(), mr, nr),
        }
    }

    /// Blocks for an `mr × nr` microkernel on a machine with these caches.
    pub fn for_caches(caches: CacheSizes, mr: usize, nr: usize) -> Blocking {
        let f = std::mem::size_of::<f32>();
        let kc = ((caches.l1d / 2).max(caches.l2 / 8) / (nr * f)).clamp(64, KC_MAX) / 8 * 8;
        let mc = ((caches.l2 / 4 / (kc * f)).clamp(mr, 1024) / mr * mr).max(mr);
        let l3_share = if caches.l3 == 0 { caches.l2 * 4 } else { caches.l3 / 4 };
        let nc = ((l3_share / (kc * f)).clamp(nr, 8192) / nr * nr).max(nr);
        Blocking { kc, mc, nc }
    }

    /// The blocking of one product with `k` columns of A that come in runs of `unit` (a
    /// convolution's kernel row, contiguous in the input; 1 for a plain GEMM): one pass when
    /// `k` is at most 1.5 × [`Blocking::kc`], else the fewest passes of at most KC, all
    /// rounded to whole runs (at least one run each) and of one depth but the last; MC scaled
    /// so that the `MC × KC` block of A keeps its size (rows of `mr`). A pass that ends inside
    /// a run splits every row panel's in-place reads there; whole runs per pass measured
    /// 10–45 % faster on the detector's 3×3 convolutions. One pass up to 1.5 × KC: K = 1280
    /// and 1440 on Zen 4 (1536 against 1024 deep, square GEMM, interleaved) AVX-512 +2.1 / +2.0
    /// points of peak, AVX2 +0.8 / +1.2; deeper passes over wider products lost (AVX2 3072³
    /// at 1536 deep −3.4 points), so longer K is still cut at KC.
    pub fn for_depth(&self, k: usize, unit: usize, mr: usize) -> Blocking {
        let unit = unit.max(1);
        let units = k.div_ceil(unit);
        let per_pass_max = ((self.kc.max(1) + unit / 2) / unit).max(1);
        let passes = if 2 * units <= 3 * per_pass_max { 1 } else { units.div_ceil(per_pass_max) };
        let kc = (units.div_ceil(passes) * unit).max(1);
        let mr = mr.max(1);
        let scaled = self.mc.saturating_mul(self.kc) / kc;
        let mc = scaled.clamp(self.mc, self.mc.max(MC_MAX)) / mr * mr;
        Blocking { kc, mc: mc.max(mr), nc: self.nc }
    }
}

/// Largest KC (values); a product whose K is at most 1.5 × KC runs it in one pass.
const KC_MAX: usize = 1024;
/// Largest MC that [`Blocking::for_depth`] scales up to.
const MC_MAX: usize = 1024;

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

    #[test]
    fn k_is_cut_into_the_fewest_equal_passes_of_whole_runs() {
        let b = Blocking { kc: 1024, mc: 60, nc: 2048 };
        // (k, unit) -> pass depth: one pass up to 1.5 × KC, then passes of at most KC.
        for (k, unit, kc) in [
            (1, 1, 1),
            (864, 1, 864),
            (1024, 1, 1024),
            (1440, 1, 1440),
            (1536, 1, 1536),
            (1537, 1, 769),
            (2048, 1, 1024),
            (2500, 1, 834),
        ] {
            assert_eq!(b.for_depth(k, unit, 12).kc, kc, "k={k} unit={unit}");
        }
        // 3×3 convolutions over 96 and 160 channels (runs of 288 and 480): one pass each.
        assert_eq!(b.for_depth(864, 288, 12).kc, 864);
        assert_eq!(b.for_depth(1440, 480, 12).kc, 1440);
        // 256 channels (runs of 768, K = 2304): three passes of one run, not two of 1152,
        // which would split a run.
        assert_eq!(b.for_depth(2304, 768, 12).kc, 768);
        // A run longer than KC: one run per pass.
        assert_eq!(b.for_depth(9 * 3000, 3000, 12).kc, 3000);
        for k in [1, 7, 100, 1023, 1024, 1025, 1600, 3000, 5000] {
            for unit in [1, 3, 48, 288, 480] {
                let d = b.for_depth(k, unit, 12);
                let passes = k.div_ceil(d.kc);
                let per_pass_max = ((b.kc + unit / 2) / unit).max(1);
                assert!(d.kc.is_multiple_of(unit), "k={k} unit={unit} {d:?}");
                match passes {
                    1 => assert!(2 * k.div_ceil(unit) <= 3 * per_pass_max, "k={k} unit={unit} {d:?}"),
                    _ => assert!(d.kc <= per_pass_max * unit, "k={k} unit={unit} {d:?}"),
                }
                assert!(passes <= k.div_ceil(unit).div_ceil(per_pass_max), "k={k} unit={unit}");
                assert!(d.mc.is_multiple_of(12) && d.mc >= b.mc && d.mc <= MC_MAX, "k={k} unit={unit} {d:?}");
                assert_eq!(d.nc, b.nc);
            }
        }
        // MC grows as the passes get shallower, keeping the A block's size.
        assert_eq!(b.for_depth(256, 1, 12).mc, 240);
        assert_eq!(b.for_depth(16, 1, 12).mc, MC_MAX / 12 * 12);
        // With a 256-deep KC: 3×3 over 96 channels, one 288-value kernel row per pass instead
        // of 256 values; 24 channels (72-value rows), three passes of three rows.
        let shallow = Blocking { kc: 256, mc: 252, nc: 8192 };
        assert_eq!(shallow.for_depth(864, 288, 12).kc, 288);
        assert_eq!(shallow.for_depth(648, 72, 12).kc, 216);
        assert_eq!(shallow.for_depth(7, 10, 12).kc, 10);
        assert_eq!(shallow.for_depth(300, 0, 12).kc, 300);
        assert_eq!(shallow.for_depth(400, 0, 12).kc, 200);
        // k = 0 still gives a usable (non-zero) depth.
        assert!(b.for_depth(0, 1, 12).kc >= 1);
    }
}
