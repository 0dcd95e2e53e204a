//! The register tile, generic over the vector type: `MR` rows × `NV` vectors of accumulators
//! live in registers for the whole `k` loop; the epilogue runs on them before the one store.

use super::{TileEpilogue, TileOut};
use crate::simd::{load_n, store_n, SimdF32};

/// k steps per trip of the loop over a packed A panel. A loop over A read in place (rows
/// `a_rs` apart) takes one step per trip: unrolled, LLVM loads all `MR·K_UNROLL` broadcasts
/// of a trip ahead of the FMAs (one address per row and step, few general registers) and
/// spills them; the AVX-512 12×32 tile then ran a dense 3×3 convolution at 54 % of the FMA
/// peak instead of 85 % (Zen 4), while AVX2's 6×16 tile measured the same either way.
const K_UNROLL: usize = 4;

/// A k loop shorter than this does not prefetch the C tile it only writes (see
/// [`prefetch_c`]).
const SHORT_K: usize = 64;

/// How far ahead (in values) the k loop prefetches the packed A panel.
const A_PREFETCH: usize = 128;

/// One `MR × (NV·LANES)` tile; see [`super::Microkernel::tile`] for the contract. The
/// packed B panel is `BNV·LANES` values wide (`BNV ≥ NV`): a narrow tile (`NV < BNV`)
/// computes only the panel's first columns, for edge tiles that are mostly padding.
///
/// A is read packed (`PACKED_A`: element `(i, p)` at `a[p·MR + i]`) or straight from a
/// row-major matrix (element `(i, p)` at `a[i·lda + p]`), for products whose A would be
/// reused by too few B panels to repay packing it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn tile<V: SimdF32, const MR: usize, const NV: usize, const BNV: usize, const PACKED_A: bool>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    out: &TileOut,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    debug_assert!(out.rows <= MR && out.cols <= NV * V::LANES && NV <= BNV);
    let (a_rs, a_step) = if PACKED_A { (1, MR) } else { (lda, 1) };
    // SAFETY: the caller guarantees V's features and the extents of a, b, c and the epilogue.
    unsafe {
        if accumulate || k >= SHORT_K {
            prefetch_c::<V>(out);
        }
        let mut acc = [[V::splat(0.0); NV]; MR];
        k_loop::<V, MR, NV, BNV, PACKED_A>(&mut acc, k, a, a_rs, a_step, b);
        store_tile::<V, MR, NV>(acc, out, accumulate, epi);
    }
}

/// [`tile`] with A read in place from several runs of columns: run `r` holds `runs[r].1`
/// columns of row 0 at `a + runs[r].0`, each row `lda` after the previous; B continues from
/// one run to the next. The accumulators stay in registers across runs (an implicit GEMM
/// whose rows are read where they lie, nothing packed).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn tile_runs<V: SimdF32, const MR: usize, const NV: usize, const BNV: usize>(
    a: *const f32,
    runs: &[(usize, usize)],
    lda: usize,
    b: *const f32,
    out: &TileOut,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    debug_assert!(out.rows <= MR && out.cols <= NV * V::LANES && NV <= BNV);
    // SAFETY: the caller guarantees V's features, MR rows of each run, `Σ len · BNV·LANES`
    // values at b, and the extents of c and the epilogue.
    unsafe {
        prefetch_c::<V>(out);
        let mut acc = [[V::splat(0.0); NV]; MR];
        let mut b = b;
        for &(at, len) in runs {
            k_loop::<V, MR, NV, BNV, false>(&mut acc, len, a.add(at), lda, 1, b);
            b = b.add(len * BNV * V::LANES);
        }
        store_tile::<V, MR, NV>(acc, out, accumulate, epi);
    }
}

/// [`tile`] with A read through row pointers: segment `s` holds `segs[s]` columns, row `i`'s
/// at `ptrs[s·MR + i]`; B continues from one segment to the next. The indirect form of the
/// implicit GEMM, for row panels that straddle output rows or touch the padding (whose
/// pointers lead to zeros), so that no row is copied.
#[inline(always)]
pub(crate) unsafe fn tile_rows<V: SimdF32, const MR: usize, const NV: usize, const BNV: usize>(
    ptrs: *const *const f32,
    segs: &[usize],
    b: *const f32,
    out: &TileOut,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    debug_assert!(out.rows <= MR && out.cols <= NV * V::LANES && NV <= BNV);
    let nr = BNV * V::LANES;
    // SAFETY: the caller guarantees V's features, `segs.len()·MR` pointers at ptrs, each
    // covering its segment's length, `Σ len · BNV·LANES` values at b, and the extents of c
    // and the epilogue.
    unsafe {
        prefetch_c::<V>(out);
        let mut acc = [[V::splat(0.0); NV]; MR];
        let mut b = b;
        for (s, &len) in segs.iter().enumerate() {
            let rows: [*const f32; MR] = std::array::from_fn(|i| *ptrs.add(s * MR + i));
            for p in 0..len {
                step::<V, MR, NV>(&mut acc, |i| *rows[i].add(p), b.add(p * nr));
            }
            b = b.add(len * nr);
        }
        store_tile::<V, MR, NV>(acc, out, accumulate, epi);
    }
}

/// Partial sums per accumulator vector in [`tile_row`]: one row has only `NV` multiply-add
/// chains, too few to cover the FMA latency (4 cycles × 2 ports); four sets of them do.
const ROW_PARTIALS: usize = 4;

/// One row of C, `c (+)= a·B` over `k`, with A one row of `k` contiguous values: for row
/// panels of one or a few rows (a GEMV: recurrent steps, classifier heads, squeeze-excitation
/// layers), which the `MR`-row tile would compute mostly on zero rows (12 rows for one on
/// AVX-512). `k` is split round-robin over [`ROW_PARTIALS`] partial sums, added in a fixed
/// order at the end, so results do not depend on the thread count.
#[inline(always)]
pub(crate) unsafe fn tile_row<V: SimdF32, const NV: usize, const BNV: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    out: &TileOut,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    debug_assert!(out.rows == 1 && out.cols <= NV * V::LANES && NV <= BNV);
    let nr = BNV * V::LANES;
    // SAFETY: the caller guarantees V's features, k values at a, k·BNV·LANES at b, and the
    // extents of c and the epilogue.
    unsafe {
        let mut part = [[[V::splat(0.0); NV]; 1]; ROW_PARTIALS];
        let (mut a, mut b) = (a, b);
        for _ in 0..k / ROW_PARTIALS {
            V::prefetch(b.wrapping_add(8 * nr));
            for (u, acc) in part.iter_mut().enumerate() {
                step::<V, 1, NV>(acc, |_| *a.add(u), b.add(u * nr));
            }
            a = a.add(ROW_PARTIALS);
            b = b.add(ROW_PARTIALS * nr);
        }
        for (u, acc) in part.iter_mut().enumerate().take(k % ROW_PARTIALS) {
            step::<V, 1, NV>(acc, |_| *a.add(u), b.add(u * nr));
        }
        let mut acc = part[0];
        for p in &part[1..] {
            for (s, v) in acc[0].iter_mut().zip(p[0]) {
                *s = s.add(v);
            }
        }
        store_tile::<V, 1, NV>(acc, out, accumulate, epi);
    }
}

/// Pulls the C tile towards L1 while the k loop runs.
///
/// [`tile`] skips it for a tile that only writes C after a short k loop (the pointwise
/// convolutions of mobile CNNs, 16–32 input channels): there its dozen prefetches cost more
/// than the store misses they save (16 → 96 channels at 112², AVX2 on Zen 3: 43–58 % of the
/// FMA peak with them, 54–60 % without, binaries alternated). Longer k loops keep them: with
/// none anywhere, ResNet-18 read 3 % slower once, which a 5-round rerun did not confirm (1.00),
/// so the change stays where it was measured to help.
#[inline(always)]
unsafe fn prefetch_c<V: SimdF32>(out: &TileOut) {
    // SAFETY: prefetches do not fault; the addresses are C's (the caller's contract).
    unsafe {
        for i in 0..out.rows {
            V::prefetch(out.c.add(i * out.ldc));
            V::prefetch(out.c.add(i * out.ldc + out.cols - 1));
        }
    }
}

/// `acc += A·B` over `k` columns: A element `(i, p)` at `a[i·a_rs + p·a_step]`, B rows
/// `BNV·LANES` apart.
#[inline(always)]
unsafe fn k_loop<V: SimdF32, const MR: usize, const NV: usize, const BNV: usize, const PACKED_A: bool>(
    acc: &mut [[V; NV]; MR],
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_step: usize,
    b: *const f32,
) {
    let nr = BNV * V::LANES;
    // SAFETY: the caller guarantees V's features and the extents of a and b.
    unsafe {
        let (mut a, mut b) = (a, b);
        // K_UNROLL steps per trip over packed A (constant inner loop, fully unrolled), then
        // the remainder; one step per trip over A in place.
        let unroll = if PACKED_A { K_UNROLL } else { 1 };
        for _ in 0..k / unroll {
            if PACKED_A {
                V::prefetch(a.add(A_PREFETCH));
            }
            for u in 0..unroll {
                step::<V, MR, NV>(acc, |i| *a.add(u * a_step + i * a_rs), b.add(u * nr));
            }
            a = a.add(unroll * a_step);
            b = b.add(unroll * nr);
        }
        for _ in 0..k % unroll {
            step::<V, MR, NV>(acc, |i| *a.add(i * a_rs), b);
            a = a.add(a_step);
            b = b.add(nr);
        }
    }
}

/// The epilogue on the accumulators and the one store of the tile: a full tile with every
/// count a constant (the accumulators stay in registers, no lane tests), an edge tile with
/// masked loads and stores.
#[inline(always)]
unsafe fn store_tile<V: SimdF32, const MR: usize, const NV: usize>(
    acc: [[V; NV]; MR],
    out: &TileOut,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        if out.rows == MR && out.cols == NV * V::LANES {
            store::<V, MR, NV, true>(acc, out, accumulate, epi)
        } else {
            store::<V, MR, NV, false>(acc, out, accumulate, epi)
        }
    }
}

/// [`store_tile`]'s two forms: `FULL` asserts `out.rows == MR` and `out.cols == NV·LANES`.
#[inline(always)]
unsafe fn store<V: SimdF32, const MR: usize, const NV: usize, const FULL: bool>(
    mut acc: [[V; NV]; MR],
    out: &TileOut,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    let TileOut { c, ldc, rows, cols } = *out;
    let rows = if FULL { MR } else { rows };
    // SAFETY: the caller guarantees V's features and the extents of c and the epilogue.
    unsafe {
        // Store phase: each test and the activation's dispatch happen once per tile, each pass
        // a fully unrolled sweep over the register tile. Rows past `rows` and columns past
        // `cols` are neither read nor written (partial vectors use masked loads and stores).
        // Every loop runs over all `MR` rows and leaves at `rows` (no `take(rows)`): with a
        // runtime trip count the edge form indexed the tile dynamically, and the compiler
        // kept the accumulators of every tile, full ones included, on the stack (24 stores
        // and 24 loads per AVX-512 tile).
        let width = |j: usize| if FULL { V::LANES } else { cols.saturating_sub(j * V::LANES) };
        if accumulate {
            for (i, row) in acc.iter_mut().enumerate() {
                if i == rows {
                    break;
                }
                for (j, v) in row.iter_mut().enumerate() {
                    *v = v.add(load_n(c.add(i * ldc + j * V::LANES), width(j)));
                }
            }
        }
        if let Some(e) = epi {
            if !e.bias_row.is_null() {
                for (i, row) in acc.iter_mut().enumerate() {
                    if i == rows {
                        break;
                    }
                    let bias = V::splat(*e.bias_row.add(i));
                    for v in row.iter_mut() {
                        *v = v.add(bias);
                    }
                }
            }
            if !e.bias_col.is_null() {
                // A loop, not `array::from_fn`: a closure does not inherit the caller's
                // `#[target_feature]`s, so its loads would be calls.
                let mut bias = [V::splat(0.0); NV];
                for (j, b) in bias.iter_mut().enumerate() {
                    *b = load_n(e.bias_col.add(j * V::LANES), width(j));
                }
                for row in acc.iter_mut() {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v = v.add(b);
                    }
                }
            }
            if !e.residual.is_null() {
                for (i, row) in acc.iter_mut().enumerate() {
                    if i == rows {
                        break;
                    }
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = v.add(load_n(e.residual.add(i * e.residual_ld + j * V::LANES), width(j)));
                    }
                }
            }
            e.activation.apply_tile(&mut acc);
        }
        for (i, row) in acc.iter().enumerate() {
            if i == rows {
                break;
            }
            for (j, v) in row.iter().enumerate() {
                store_n(*v, c.add(i * ldc + j * V::LANES), width(j));
            }
        }
        if let Some(e) = epi.filter(|e| !e.activation.in_registers()) {
            e.activation.apply_rows::<V, NV>(c, ldc, rows, if FULL { NV * V::LANES } else { cols });
        }
    }
}

/// One rank-1 update of the accumulators: `acc += a(i) ⊗ b[0..NR]` for i < MR.
#[inline(always)]
unsafe fn step<V: SimdF32, const MR: usize, const NV: usize>(
    acc: &mut [[V; NV]; MR],
    a: impl Fn(usize) -> f32,
    b: *const f32,
) {
    // SAFETY: the caller guarantees V's features and NV·LANES values at b.
    unsafe {
        let bv: [V; NV] = std::array::from_fn(|j| V::load(b.add(j * V::LANES)));
        for (i, row) in acc.iter_mut().enumerate() {
            let av = V::splat(a(i));
            for (acc, bv) in row.iter_mut().zip(bv) {
                *acc = av.mul_add(bv, *acc);
            }
        }
    }
}

/// `CHAINS` independent multiply-add chains, `iterations` rounds. Enough chains cover FMA
/// latency × ports (4 cycles × 2 ports on current cores) while all fit in registers.
#[inline(always)]
pub(crate) unsafe fn fma_loop<V: SimdF32, const CHAINS: usize>(iterations: usize) -> f32 {
    // SAFETY: the caller guarantees V's features.
    unsafe {
        let x = V::splat(std::hint::black_box(0.999_999_9));
        let y = V::splat(std::hint::black_box(1e-7));
        let mut acc = [V::splat(1.0); CHAINS];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = a.mul_add(x, y);
            }
        }
        let mut out = [0.0f32; 64];
        let mut sum = 0.0;
        for a in acc {
            a.store(out.as_mut_ptr());
            sum += out[..V::LANES].iter().sum::<f32>();
        }
        sum
    }
}
