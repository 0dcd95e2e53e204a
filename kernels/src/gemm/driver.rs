//! The BLIS loops around the microkernel, written once for every instruction set.
//!
//! ```text
//! for jc in 0..n step NC            B block columns
//!   for pc in 0..k step KC          one pass over K; B packed (or taken pre-packed)
//!     parallel for (ic, jr-chunk)   A block MC × KC packed per work item, per thread
//!       for jr in chunk step NR     B micro-panel, stays in L1
//!         for ir in 0..MC step MR   microkernel on one MR × NR tile of C
//! ```
//! The epilogue is fused into the last K pass. Every output element is owned by exactly one
//! work item and summed in the same order whatever the thread count, so results are identical
//! for any number of threads. Edge tiles (and outputs without unit column stride) go through a
//! small buffer so that the microkernel only ever sees full tiles: no reads or writes outside
//! the caller's matrices.

use std::cell::RefCell;

use super::{ASource, Microkernel, RowPointers, TileEpilogue, TileOut};
use crate::aligned::AlignedBuf;
use crate::blocking::{Blocking, CacheSizes};
use crate::epilogue::{Bias, Epilogue};
use crate::error::{KernelError, Result};
use crate::mat::{MatMut, MatRef};
use crate::pack::{pack_b_panels, PackedB};
pub(crate) use crate::threads::SharedMut;
use crate::{threads, BOperand, Parallelism};

/// Largest tile (`MR·NR` values) the edge buffers hold.
const MAX_TILE: usize = 512;
/// Largest `MR` or `NR`.
const MAX_DIM: usize = 64;
/// Multiply-adds below which a product runs on the calling thread only.
const PARALLEL_MIN_MACS: usize = 1 << 16;
/// For kernels with [`Microkernel::A_IN_PLACE_UP_TO_L2`], a row-major A is read in place
/// instead of packed when one work item's B panels (`kc` rows of them) take at most this
/// share of L2 (in quarters): every row panel then sweeps them, they stay in L2, and nothing
/// is copied. Measured on Zen 4 (docs/performance.md): pointwise 672→160 @20×20 79 → 90 % of
/// the FMA peak (AVX-512), 77 → 91 % (AVX2); a 1024³ GEMM, whose B block fills L2 (AVX-512)
/// or twice that (AVX2), runs 3–5 % faster packed. Per item, not per block: items that split
/// a block's columns between threads each packed all of A for their one or two panels
/// (960→320 on a 7×7 map, two threads: 140 → 209 GFLOP/s read in place).
const DIRECT_A_MAX_L2_QUARTERS: usize = 3;
/// For the other kernels, products whose B spans at most this many `NR`-wide panels read a
/// row-major A in place.
const DIRECT_A_MAX_PANELS: usize = 4;
/// A work item whose B panels take at most this many bytes runs row panel by row panel (all
/// B panels per row panel) instead of B panel by B panel (measured on the pointwise
/// convolutions with 16–24 input channels, docs/performance.md).
const ROW_OUTER_MAX_B_BYTES: usize = 48 << 10;

thread_local! {
    static A_PANEL: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
    /// Where each row panel of the current block reads A, and the pass's runs and segments.
    static RUNS: RefCell<RunTable> = const { RefCell::new(RunTable::new()) };
}

/// How the row panels of one block of an implicit GEMM read A in place.
struct RunTable {
    /// Per row panel: its base in the runs' memory, or where its row pointers start.
    panels: Vec<PanelA>,
    /// The pass's runs, `(offset, length)` (see [`ASource::row_runs`]).
    runs: Vec<(usize, usize)>,
    /// The pass's segment lengths (see [`ASource::segments`]).
    segs: Vec<usize>,
    /// The row pointers of the panels that have them (see [`ASource::row_pointers`]).
    ptrs: RowPointers,
}

impl RunTable {
    const fn new() -> Self {
        Self { panels: Vec::new(), runs: Vec::new(), segs: Vec::new(), ptrs: RowPointers::new() }
    }
}

/// Where one row panel reads A from, when A is an implicit GEMM's.
#[derive(Clone, Copy)]
enum PanelA {
    /// Runs from this base (every row a pixel of one output row, no padding).
    Base(usize),
    /// Row pointers from this index of [`RunTable::ptrs`].
    Pointers(usize),
}

/// Where the B panels of one (jc, pc) block are, and how far apart.
#[derive(Clone, Copy)]
struct BPanels<'b> {
    data: &'b [f32],
    /// Index of the first panel's first value for this K pass.
    start: usize,
    /// Distance between consecutive panels.
    stride: usize,
}

/// Where a GEMM writes: `m × n` values at `c + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct RawOut {
    /// Element `(0, 0)`.
    pub c: *mut f32,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
}

/// The output and epilogue, as the loops see them.
struct Output<'e> {
    c: SharedMut,
    rs: usize,
    cs: usize,
    m: usize,
    n: usize,
    epi: &'e Epilogue<'e>,
}

/// Validates operands, then runs `C = epilogue(A·B)` with microkernel `K`.
pub(crate) fn gemm<K: Microkernel>(
    kernel_name: &str,
    blocking: &Blocking,
    a: MatRef<'_>,
    b: BOperand<'_>,
    mut c: MatMut<'_>,
    epi: &Epilogue<'_>,
    par: Parallelism,
) -> Result<()> {
    let (m, n, _) = check_gemm(&a, &b, &c, epi)?;
    if let BOperand::Packed(p) = &b {
        check_packed::<K>(kernel_name, p)?;
    }
    let out = RawOut { c: c.as_mut_ptr(), rs: c.row_stride(), cs: c.col_stride(), m, n };
    // SAFETY: `c` is a validated view we borrow exclusively, so `out` is writable and unshared;
    // A, B and the epilogue were checked against m, n, k above.
    unsafe { run::<K, _>(blocking, 1, 0, &a, b, out, epi, par) };
    Ok(())
}

/// Checks A, B, C and the epilogue against each other, as every kernel set must; returns
/// `(m, n, k)`.
pub(crate) fn check_gemm(
    a: &MatRef<'_>,
    b: &BOperand<'_>,
    c: &MatMut<'_>,
    epi: &Epilogue<'_>,
) -> Result<(usize, usize, usize)> {
    let (m, k) = (a.rows(), a.cols());
    let (bk, n) = match b {
        BOperand::Matrix(bm) => (bm.rows(), bm.cols()),
        BOperand::Packed(p) => (p.k(), p.n()),
    };
    if bk != k {
        return Err(KernelError::Shape(format!("A is {m}x{k} but B has {bk} rows")));
    }
    if c.rows() != m || c.cols() != n {
        return Err(KernelError::Shape(format!("C is {}x{}, A·B is {m}x{n}", c.rows(), c.cols())));
    }
    epi.validate(m, n)?;
    Ok((m, n, k))
}

/// Refuses weights packed for another kernel set or panel width.
pub(crate) fn check_packed<K: Microkernel>(kernel_name: &str, p: &PackedB) -> Result<()> {
    if p.kernel() != kernel_name || p.nr() != K::NR {
        return Err(KernelError::Packed(format!(
            "weights packed for `{}` (nr={}), this is `{kernel_name}` (nr={})",
            p.kernel(),
            p.nr(),
            K::NR
        )));
    }
    Ok(())
}

/// `out = epilogue(A·B)` on operands already checked against each other; A's columns come
/// in runs of `k_unit` that no K pass splits (see [`Blocking::for_depth`]). A's column 0
/// multiplies row `b_k0` of B (packed B only: a convolution whose taps for some output rows
/// all lie in the padding skips them).
///
/// # Safety
/// `out` describes `a.rows() × n` elements that are writable and that nothing else reads or
/// writes during the call, where `n` is B's column count; B has `b_k0 + a.cols()` rows (and,
/// when packed, was packed for `K`; `b_k0` is 0 otherwise); the epilogue was validated for
/// that shape.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run<K: Microkernel, A: ASource>(
    blocking: &Blocking,
    k_unit: usize,
    b_k0: usize,
    a: &A,
    b: BOperand<'_>,
    out: RawOut,
    epi: &Epilogue<'_>,
    par: Parallelism,
) {
    const { assert!(K::MR * K::NR <= MAX_TILE && K::MR <= MAX_DIM && K::NR <= MAX_DIM) };
    let (m, n, k) = (out.m, out.n, a.cols());
    debug_assert_eq!(a.rows(), m, "A and C disagree on m");
    if m == 0 || n == 0 {
        return;
    }
    // Below this much work, splitting costs more than it saves, even on a spinning team.
    // Results are identical either way.
    let par = if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS { Parallelism::Sequential } else { par };
    debug_assert!(b_k0 == 0 || matches!(b, BOperand::Packed(_)), "a B row offset on an unpacked B");
    let out = Output { c: SharedMut(out.c), rs: out.rs, cs: out.cs, m, n, epi };
    let blocking = &blocking.for_depth(k, k_unit, K::MR);
    let k_passes: Vec<(usize, usize)> = if k == 0 {
        vec![(0, 0)]
    } else {
        (0..k).step_by(blocking.kc).map(|p0| (p0, blocking.kc.min(k - p0))).collect()
    };
    let mut b_buf = AlignedBuf::default();
    for jc in (0..n).step_by(blocking.nc) {
        let nc = blocking.nc.min(n - jc);
        for &(p0, kc) in &k_passes {
            let panels = match &b {
                BOperand::Packed(p) => packed_panels::<K>(p, jc, b_k0 + p0),
                BOperand::Matrix(bm) => {
                    pack_b_block::<K>(bm, p0, kc, jc, nc, &mut b_buf, par);
                    BPanels { data: b_buf.as_slice(), start: 0, stride: kc * K::NR }
                }
            };
            run_block::<K, A>(blocking, a, panels, &out, jc, nc, p0, kc, k, par);
        }
    }
}

fn packed_panels<K: Microkernel>(p: &PackedB, jc: usize, p0: usize) -> BPanels<'_> {
    let stride = p.k() * K::NR;
    BPanels { data: p.data(), start: (jc / K::NR) * stride + p0 * K::NR, stride }
}

fn pack_b_block<K: Microkernel>(
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    buf: &mut AlignedBuf,
    par: Parallelism,
) {
    let panel_len = kc * K::NR;
    buf.resize(nc.div_ceil(K::NR) * panel_len);
    let buf = buf.as_mut_slice();
    if panel_len == 0 {
        return;
    }
    threads::chunks_mut(buf, panel_len, par == Parallelism::Threads, |i, dst| {
        let j0 = jc + i * K::NR;
        pack_b_panels(b, p0, kc, j0, K::NR.min(jc + nc - j0), K::NR, dst);
    });
}

/// One K pass over a `jc` block of columns: split into (MC row block × NR-panel range) work
/// items and run them, in parallel when asked.
#[allow(clippy::too_many_arguments)]
fn run_block<K: Microkernel, A: ASource>(
    blocking: &Blocking,
    a: &A,
    b: BPanels<'_>,
    out: &Output<'_>,
    jc: usize,
    nc: usize,
    p0: usize,
    kc: usize,
    k: usize,
    par: Parallelism,
) {
    let threads = match par {
        Parallelism::Sequential => 1,
        Parallelism::Threads => threads::current_threads(),
    };
    let split = Split::new(blocking, out.m, nc, threads, (K::MR, K::NR));
    // Packing A pays off only when enough B is reused across it (an item's panels); otherwise
    // read row-major A as is.
    let in_place_a = if K::A_IN_PLACE_UP_TO_L2 {
        kc * split.n_panels.div_ceil(split.n_chunks) * K::NR * size_of::<f32>()
            <= CacheSizes::host().l2 / 4 * DIRECT_A_MAX_L2_QUARTERS
    } else {
        out.n.div_ceil(K::NR) <= DIRECT_A_MAX_PANELS
    };
    let row_major = a.direct();
    let direct = row_major.filter(|_| in_place_a);
    let pass = Pass { row_major, direct, rows_a: direct.is_none() && a.reads_rows_in_place(), p0, kc, k, jc };
    let item = |idx: usize| {
        let (rows, panels) = split.item(idx);
        A_PANEL.with(|a_buf| {
            RUNS.with(|table| {
                run_item::<K, A>(a, &pass, b, out, rows, panels, &mut a_buf.borrow_mut(), &mut table.borrow_mut())
            })
        });
    };
    let items = split.m_blocks * split.n_chunks;
    match par {
        Parallelism::Sequential => (0..items).for_each(item),
        Parallelism::Threads => threads::for_each(items, item),
    }
}

/// How one K pass over a `jc` block is cut into work items: `m_blocks` blocks of whole row
/// panels times `n_chunks` chunks of whole column panels, for `m` rows in panels of `mr`.
struct Split {
    m: usize,
    mr: usize,
    m_panels: usize,
    m_blocks: usize,
    n_panels: usize,
    n_chunks: usize,
}

impl Split {
    /// The split of an `m × nc` block for an `mr × nr` register tile.
    fn new(blocking: &Blocking, m: usize, nc: usize, threads: usize, (mr, nr): (usize, usize)) -> Split {
        // Enough items to keep every thread busy: M blocks first, then N chunks.
        let want = if threads > 1 { 4 * threads } else { 1 };
        // M blocks of whole row panels, as equal as possible (sizes differ by one panel at
        // most): their number rounded up to a multiple of the thread count so that no thread
        // idles at the end; an M of fewer than `want` blocks is cut into `want` blocks where it
        // has that many panels, so that each item packs (or reads) only its own rows of A,
        // once, instead of every item of an N split packing all of them (2 threads, pointwise
        // 672→160 @20×20: 62 → 154 GFLOP/s). Blocks never exceed MC, which does not change the
        // summation order, so results stay identical.
        let blocks = m.div_ceil(blocking.mc);
        let m_panels = m.div_ceil(mr);
        let m_blocks = match threads > 1 {
            true if blocks < want && m_panels >= want => want,
            true if blocks >= threads => blocks.next_multiple_of(threads).min(m_panels),
            _ => blocks,
        };
        let n_panels = nc.div_ceil(nr);
        // N chunks of whole column panels, as equal as possible (10 panels in 8 chunks: 1 or 2
        // each, not 2 in five chunks and three chunks empty).
        let n_chunks = if m_blocks >= want { 1 } else { want.div_ceil(m_blocks).min(n_panels) };
        // Few column panels too (a 7×7 map's 576→96 projection: one row block, three column
        // chunks, so one thread ran two of three): cut the rows again until there are `want`
        // items or every row panel is a block.
        let m_blocks = match m_blocks * n_chunks < want {
            true => want.div_ceil(n_chunks).min(m_panels).max(m_blocks),
            false => m_blocks,
        };
        Split { m, mr, m_panels, m_blocks, n_panels, n_chunks }
    }

    /// Item `idx`'s first row and row count, and its column panels.
    fn item(&self, idx: usize) -> ((usize, usize), std::ops::Range<usize>) {
        let (ib, chunk) = (idx / self.n_chunks, idx % self.n_chunks);
        let first = ib * self.m_panels / self.m_blocks * self.mr;
        let mc = ((ib + 1) * self.m_panels / self.m_blocks * self.mr).min(self.m) - first;
        let panels = chunk * self.n_panels / self.n_chunks..(chunk + 1) * self.n_panels / self.n_chunks;
        // At most as many blocks and chunks as panels: none is empty.
        debug_assert!(!panels.is_empty() && mc > 0, "an empty GEMM item");
        ((first, mc), panels)
    }
}

/// What every item of one K pass shares: how A is read, and where the pass lies.
struct Pass<'a> {
    /// A as a row-major matrix, where it is one.
    row_major: Option<(&'a [f32], usize)>,
    /// The same, where this pass reads it in place.
    direct: Option<(&'a [f32], usize)>,
    /// A read in place through the source's runs and row pointers.
    rows_a: bool,
    p0: usize,
    kc: usize,
    k: usize,
    jc: usize,
}

/// One work item: rows `i0..i0 + mc` of the output, against B's column `panels`.
#[allow(clippy::too_many_arguments)]
fn run_item<K: Microkernel, A: ASource>(
    a: &A,
    pass: &Pass<'_>,
    b: BPanels<'_>,
    out: &Output<'_>,
    (i0, mc): (usize, usize),
    panels: std::ops::Range<usize>,
    a_buf: &mut AlignedBuf,
    table: &mut RunTable,
) {
    let (p0, kc) = (pass.p0, pass.kc);
    let direct_a = pass.direct.is_some();
    let full_panels = mc / K::MR;
    // A trailing panel of a few rows of a row-major A runs one row tile per row (no MR-row
    // tile mostly computing zero rows, nothing packed).
    let row_tail = match (pass.row_major, mc % K::MR) {
        (Some(_), tail) if tail <= K::MR / 4 => tail,
        _ => 0,
    };
    // Direct A: only a trailing partial row panel is packed (zero-padded), at the start.
    let (packed_rows, pack_from) = match (direct_a, pass.rows_a) {
        (true, _) => (mc % K::MR - row_tail, i0 + full_panels * K::MR),
        (false, true) => (0, i0),
        (false, false) => (mc - row_tail, i0),
    };
    let len = packed_rows.div_ceil(K::MR) * kc * K::MR;
    if a_buf.as_slice().len() < len {
        a_buf.resize(len);
    }
    let a_buf = a_buf.as_mut_slice();
    table.panels.clear();
    let in_place = match pass.rows_a {
        true => row_sources::<K, A>(a, p0, kc, (i0, mc), table),
        false => {
            K::pack_a(a, pack_from, packed_rows, p0, kc, a_buf);
            None
        }
    };
    let RunTable { panels: sources, runs, segs, ptrs } = &*table;
    let (first, last) = (p0 == 0, p0 + kc == pass.k);
    // B panel outer, so that it stays in L1 while A streams from L2; row panel outer when A
    // is read in place or all of the item's B fits in L1 anyway (short K), so that each
    // output row is written whole, in order, and A is read once.
    let (row_panels, b_panels) = (mc.div_ceil(K::MR), panels.len());
    let row_outer = direct_a || b_panels * kc * K::NR * size_of::<f32>() <= ROW_OUTER_MAX_B_BYTES;
    for t in 0..row_panels * b_panels {
        let (jp, ip) = match row_outer {
            true => (panels.start + t % b_panels, t / b_panels),
            false => (panels.start + t / row_panels, t % row_panels),
        };
        let b_panel = &b.data[b.start + jp * b.stride..][..kc * K::NR];
        let (i, j) = (i0 + ip * K::MR, pass.jc + jp * K::NR);
        if let (Some((data, lda)), true) = (pass.row_major, row_tail > 0 && ip == full_panels) {
            for r in i..i + row_tail {
                run_tile::<K>(ATile::Row(&data[r * lda + p0..][..kc]), b_panel, out, r, j, kc, !first, last);
            }
            continue;
        }
        let a_tile = match (in_place, sources.get(ip).copied()) {
            (Some((data, lda)), Some(PanelA::Base(base))) => ATile::Runs { data: &data[base..], runs, lda },
            (_, Some(PanelA::Pointers(at))) => ATile::Rows { ptrs: &ptrs.as_slice()[at..][..segs.len() * K::MR], segs },
            _ if !direct_a => ATile::Packed(&a_buf[ip * kc * K::MR..][..kc * K::MR]),
            _ => match pass.direct {
                Some((data, lda)) if ip < full_panels => ATile::Direct { a: &data[i * lda + p0..], lda },
                _ => ATile::Packed(&a_buf[..kc * K::MR]),
            },
        };
        run_tile::<K>(a_tile, b_panel, out, i, j, kc, !first, last);
    }
}

/// Where each row panel of rows `i0..i0 + mc` reads A in place: panels whose rows the source
/// can hand over in place are read there (one set of runs for the pass, a base per panel);
/// the others (rows across two output rows, or touching the padding) through row pointers,
/// one per row and segment (the rows past `mc` read zeros, their results never stored).
/// Nothing is copied but the segments of rows that are partly padding. Returns the runs'
/// memory and stride, where there are runs.
fn row_sources<'a, K: Microkernel, A: ASource>(
    a: &'a A,
    p0: usize,
    kc: usize,
    (i0, mc): (usize, usize),
    table: &mut RunTable,
) -> Option<(&'a [f32], usize)> {
    let RunTable { panels: sources, runs, segs, ptrs } = table;
    let in_place = a.row_runs(p0, kc, runs);
    a.segments(p0, kc, segs);
    ptrs.clear();
    for ip in 0..mc.div_ceil(K::MR) {
        let (i, rows) = (i0 + ip * K::MR, (mc - ip * K::MR).min(K::MR));
        let base = in_place.and_then(|_| a.panel_base(i, K::MR)).filter(|_| rows == K::MR);
        sources.push(match base {
            Some(base) => PanelA::Base(base),
            None => {
                let at = ptrs.as_slice().len();
                a.row_pointers(i, rows, K::MR, p0, segs, ptrs);
                PanelA::Pointers(at)
            }
        });
    }
    ptrs.finish();
    in_place
}

/// Where a tile's A comes from.
#[derive(Clone, Copy)]
enum ATile<'a> {
    /// A packed `kc × MR` panel.
    Packed(&'a [f32]),
    /// `MR` full rows of at least `kc` values each, `lda` apart, starting at `a[0]` (a
    /// validated row-major view guarantees the extent).
    Direct { a: &'a [f32], lda: usize },
    /// `MR` rows read in place: run `(at, len)` is `len` values at `data[at + i·lda]` for
    /// row `i` (checked by the source, see [`ASource::panel_base`]).
    Runs { data: &'a [f32], runs: &'a [(usize, usize)], lda: usize },
    /// `MR` rows read through pointers: segment `s` is `segs[s]` values at `ptrs[s·MR + i]`
    /// for row `i` (each pointer covers its segment: [`ASource::row_pointers`]' contract).
    Rows { ptrs: &'a [*const f32], segs: &'a [usize] },
    /// One row of `kc` values: the tile computes that row only.
    Row(&'a [f32]),
}

/// Calls the packed or the direct microkernel.
///
/// # Safety
/// As [`Microkernel::tile`] / [`Microkernel::tile_direct`]: `a` as `ATile` describes, `b` a
/// `kc × NR` packed panel, `out` writable.
unsafe fn call_tile<K: Microkernel>(
    a: ATile<'_>,
    b: &[f32],
    kc: usize,
    out: &TileOut,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match a {
            ATile::Packed(p) if out.cols <= K::NARROW && K::NARROW < K::NR => {
                K::tile_narrow(kc, p.as_ptr(), b.as_ptr(), out, accumulate, epi)
            }
            ATile::Packed(p) => K::tile(kc, p.as_ptr(), b.as_ptr(), out, accumulate, epi),
            ATile::Direct { a, lda } if out.cols <= K::NARROW && K::NARROW < K::NR => {
                K::tile_direct_narrow(kc, a.as_ptr(), lda, b.as_ptr(), out, accumulate, epi)
            }
            ATile::Direct { a, lda } => K::tile_direct(kc, a.as_ptr(), lda, b.as_ptr(), out, accumulate, epi),
            ATile::Runs { data, runs, lda } => K::tile_runs(data.as_ptr(), runs, lda, b.as_ptr(), out, accumulate, epi),
            ATile::Rows { ptrs, segs } => K::tile_rows(ptrs.as_ptr(), segs, b.as_ptr(), out, accumulate, epi),
            ATile::Row(a) => K::tile_row(kc, a.as_ptr(), b.as_ptr(), out, accumulate, epi),
        }
    }
}

/// Runs the microkernel on the tile at `(i, j)`: in place (edge tiles with masked stores) when
/// C's and the residual's columns are contiguous, else through a buffer.
#[allow(clippy::too_many_arguments)]
fn run_tile<K: Microkernel>(
    a: ATile<'_>,
    b: &[f32],
    out: &Output<'_>,
    i: usize,
    j: usize,
    kc: usize,
    accumulate: bool,
    last: bool,
) {
    // A row tile computes row `i` only.
    let tile_rows = if matches!(a, ATile::Row(_)) { 1 } else { K::MR };
    let (mr, nr) = ((out.m - i).min(tile_rows), (out.n - j).min(K::NR));
    let residual = out.epi.residual.filter(|_| last);
    let in_place = out.cs == 1 && residual.is_none_or(|r| r.col_stride() == 1);
    if in_place {
        let epi = last.then(|| TileEpilogue {
            bias_row: match out.epi.bias {
                Bias::PerRow(v) => v[i..i + mr].as_ptr(),
                _ => std::ptr::null(),
            },
            bias_col: match out.epi.bias {
                Bias::PerCol(v) => v[j..j + nr].as_ptr(),
                _ => std::ptr::null(),
            },
            residual: residual.map_or(std::ptr::null(), |r| r.data()[i * r.row_stride() + j..].as_ptr()),
            residual_ld: residual.map_or(0, |r| r.row_stride()),
            activation: out.epi.activation,
        });
        // `wrapping_add` keeps this safe; the offset is inside C (validated view).
        let dst = TileOut { c: out.c.0.wrapping_add(i * out.rs + j), ldc: out.rs, rows: mr, cols: nr };
        // SAFETY: a covers the tile's A (see `ATile`) and b holds kc·NR packed values; the
        // mr × nr corner at (i, j) lies inside C (unit column stride, C validated) and is all
        // the microkernel touches; the bias slices are mr/nr long and the residual view covers
        // the corner with unit column stride; each tile is written by one work item only.
        unsafe { call_tile::<K>(a, b, kc, &dst, accumulate, epi.as_ref()) };
        return;
    }
    let mut tile = [0.0f32; MAX_TILE];
    let mut res = [0.0f32; MAX_TILE];
    let mut bias_row = [0.0f32; MAX_DIM];
    let mut bias_col = [0.0f32; MAX_DIM];
    let at = |r: usize, c: usize| (i + r) * out.rs + (j + c) * out.cs;
    if accumulate {
        for r in 0..mr {
            for c in 0..nr {
                // SAFETY: (i+r, j+c) is inside C, which this work item owns.
                tile[r * K::NR + c] = unsafe { *out.c.0.add(at(r, c)) };
            }
        }
    }
    let epi = last.then(|| {
        if let Some(rv) = residual {
            for r in 0..mr {
                for c in 0..nr {
                    res[r * K::NR + c] = rv.at(i + r, j + c);
                }
            }
        }
        match out.epi.bias {
            Bias::PerRow(v) => bias_row[..mr].copy_from_slice(&v[i..i + mr]),
            Bias::PerCol(v) => bias_col[..nr].copy_from_slice(&v[j..j + nr]),
            Bias::None => {}
        }
        TileEpilogue {
            bias_row: if matches!(out.epi.bias, Bias::PerRow(_)) { bias_row.as_ptr() } else { std::ptr::null() },
            bias_col: if matches!(out.epi.bias, Bias::PerCol(_)) { bias_col.as_ptr() } else { std::ptr::null() },
            residual: if residual.is_some() { res.as_ptr() } else { std::ptr::null() },
            residual_ld: K::NR,
            activation: out.epi.activation,
        }
    });
    let dst = TileOut { c: tile.as_mut_ptr(), ldc: K::NR, rows: tile_rows, cols: K::NR };
    // SAFETY: a covers the tile's A (see `ATile`), b is a full packed panel; `tile` holds MR
    // rows of NR values (MR·NR ≤ MAX_TILE, checked at compile time) and so do the epilogue
    // buffers.
    unsafe { call_tile::<K>(a, b, kc, &dst, accumulate, epi.as_ref()) };
    for r in 0..mr {
        for c in 0..nr {
            // SAFETY: (i+r, j+c) is inside C, which this work item owns.
            unsafe { *out.c.0.add(at(r, c)) = tile[r * K::NR + c] };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Split;
    use crate::Blocking;

    /// Every item's rows and column panels, checked to cover the block exactly once.
    fn items(split: &Split, m: usize) -> Vec<(usize, usize)> {
        let mut seen = vec![0u8; m * split.n_panels];
        let sizes = (0..split.m_blocks * split.n_chunks)
            .map(|i| {
                let ((first, rows), panels) = split.item(i);
                assert_eq!(first % split.mr, 0, "item {i} starts inside a row panel");
                for r in first..first + rows {
                    panels.clone().for_each(|p| seen[r * split.n_panels + p] += 1);
                }
                (rows.div_ceil(split.mr), panels.len())
            })
            .collect();
        assert!(seen.iter().all(|&s| s == 1), "rows × panels not covered exactly once");
        sizes
    }

    #[test]
    fn small_blocks_split_into_enough_items_for_every_thread() {
        let blocking = Blocking { kc: 1024, mc: 60, nc: 2048 };
        // A 7×7 map's 576 → 96 projection on two threads (tile 12 × 32): five row panels and
        // three column panels. Three column chunks alone left one thread two of three items;
        // the rows are cut too, into at least 8 items.
        let split = Split::new(&blocking, 49, 96, 2, (12, 32));
        let sizes = items(&split, 49);
        assert!(sizes.len() >= 8, "{} items", sizes.len());
        assert!(sizes.iter().all(|&(r, p)| r <= 2 && p == 1), "{sizes:?}");
        // Large blocks and one thread are unchanged: row blocks of at most MC, one column chunk.
        let split = Split::new(&blocking, 3136, 64, 2, (12, 32));
        assert_eq!((split.m_blocks, split.n_chunks), (54, 1));
        items(&split, 3136);
        let split = Split::new(&blocking, 49, 96, 1, (12, 32));
        assert_eq!((split.m_blocks, split.n_chunks), (1, 1));
        // One row panel: column chunks only; one column panel: row blocks only.
        for (m, nc) in [(1, 1000), (12, 256), (200, 8), (49, 16)] {
            for threads in 2..=4 {
                let split = Split::new(&blocking, m, nc, threads, (12, 32));
                let n = items(&split, m).len();
                assert!(n >= (4 * threads).min(split.m_panels * split.n_panels), "{m}×{nc} on {threads}: {n} items");
            }
        }
    }
}
