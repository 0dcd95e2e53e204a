//! The register tile, generic over the vector type: `MR` rows × `NV` vectors of accumulators
//! live in registers for the whole `k` loop; the epilogue runs on them before the one store.

use super::TileEpilogue;
use crate::simd::SimdF32;

/// Independent FMA chains in the peak probe: enough to cover FMA latency × ports on current
/// cores (4 cycles × 2 ports) with room to spare, while fitting 16 vector registers.
pub(crate) const PEAK_CHAINS: usize = 12;

/// k steps per trip of the unrolled loop.
const K_UNROLL: usize = 4;

/// How far ahead (in values) the k loop prefetches the packed A panel.
const A_PREFETCH: usize = 128;

/// One `MR × (NV·LANES)` tile; see [`super::Microkernel::tile`] for the contract.
#[inline(always)]
pub(crate) unsafe fn tile<V: SimdF32, const MR: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    let nr = NV * V::LANES;
    // SAFETY: the caller guarantees V's features and the extents of a, b, c and the epilogue.
    unsafe {
        // Pull the C tile towards L1 while the k loop runs.
        for i in 0..MR {
            V::prefetch(c.add(i * ldc));
            V::prefetch(c.add(i * ldc + nr - 1));
        }
        let mut acc = [[V::splat(0.0); NV]; MR];
        let (mut a, mut b) = (a, b);
        // Four k steps per trip (constant inner loop, fully unrolled), then the remainder.
        for _ in 0..k / K_UNROLL {
            V::prefetch(a.add(A_PREFETCH));
            for u in 0..K_UNROLL {
                step::<V, MR, NV>(&mut acc, a.add(u * MR), b.add(u * nr));
            }
            a = a.add(K_UNROLL * MR);
            b = b.add(K_UNROLL * nr);
        }
        for _ in 0..k % K_UNROLL {
            step::<V, MR, NV>(&mut acc, a, b);
            a = a.add(MR);
            b = b.add(nr);
        }
        for (i, row) in acc.into_iter().enumerate() {
            for (j, mut v) in row.into_iter().enumerate() {
                let dst = c.add(i * ldc + j * V::LANES);
                if accumulate {
                    v = v.add(V::load(dst));
                }
                if let Some(e) = epi {
                    if !e.bias_row.is_null() {
                        v = v.add(V::splat(*e.bias_row.add(i)));
                    }
                    if !e.bias_col.is_null() {
                        v = v.add(V::load(e.bias_col.add(j * V::LANES)));
                    }
                    if !e.residual.is_null() {
                        v = v.add(V::load(e.residual.add(i * e.residual_ld + j * V::LANES)));
                    }
                    v = e.activation.apply(v);
                }
                v.store(dst);
            }
        }
    }
}

/// One rank-1 update of the accumulators: `acc += a[0..MR] ⊗ b[0..NR]`.
#[inline(always)]
unsafe fn step<V: SimdF32, const MR: usize, const NV: usize>(acc: &mut [[V; NV]; MR], a: *const f32, b: *const f32) {
    // SAFETY: the caller guarantees V's features, MR values at a and NV·LANES values at b.
    unsafe {
        let bv: [V; NV] = std::array::from_fn(|j| V::load(b.add(j * V::LANES)));
        for (i, row) in acc.iter_mut().enumerate() {
            let av = V::splat(*a.add(i));
            for (acc, bv) in row.iter_mut().zip(bv) {
                *acc = av.mul_add(bv, *acc);
            }
        }
    }
}

/// [`PEAK_CHAINS`] independent multiply-add chains, `iterations` rounds.
#[inline(always)]
pub(crate) unsafe fn fma_loop<V: SimdF32>(iterations: usize) -> f32 {
    // SAFETY: the caller guarantees V's features.
    unsafe {
        let x = V::splat(std::hint::black_box(0.999_999_9));
        let y = V::splat(std::hint::black_box(1e-7));
        let mut acc = [V::splat(1.0); PEAK_CHAINS];
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
