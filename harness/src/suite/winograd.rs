//! Winograd F(4×4, 3×3) checks every CPU kernel set must pass (instantiated in
//! `harness/tests/kernel_sets.rs`): parity with float64 under the widened bound, exact
//! impulses, thread-count independence, and packed-weight round trips.
//!
//! The bound. The direct sum's error is at most `(k+2)·eps·Σ|x·w|`. Winograd's transforms mix
//! every input pixel of a tile's 6×6 patch into every output of the tile (with coefficients up
//! to 5 forward and 8 back), so its error scales with `Σ_c P_c·W_c,o` instead, where `P_c` is
//! the largest |input| of channel `c` in the patch and `W_c,o` the sum of |weights| from `c` to
//! output channel `o`; [`kernels::WINOGRAD_ERROR_GROWTH`] is the factor on top.

use kernels::{Activation, ConvAlgorithm, ConvParams, KernelSet, KernelSetId, Parallelism};

use crate::reference::Reference;
use crate::suite::conv::{self, ConvCase, ConvData};

/// Output tile side of F(4×4, 3×3).
const TILE: usize = 4;
/// `576 = 24²`: weights that are multiples of it have integer transforms.
const EXACT_WEIGHT_UNIT: f32 = 576.0;

/// Adds the Winograd term to `r`'s per-element error scale (see the module's notes).
pub fn widen_bound(case: &ConvCase, d: &ConvData, r: &mut Reference) {
    let p = &case.params;
    let [n, oh, ow, c_out] = case.output_dims().expect("checked by the run");
    let (c_in, h, w) = (p.c_in, case.h as isize, case.w as isize);
    // W[c][o] = Σ_taps |w[o][c][tap]|.
    let wsum: Vec<f64> = (0..c_in * c_out)
        .map(|i| {
            let (c, o) = (i / c_out, i % c_out);
            d.weights[(o * c_in + c) * 9..][..9].iter().map(|v| v.abs() as f64).sum()
        })
        .collect();
    for img in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                // P[c]: the largest |input| of channel c in this pixel's tile patch.
                let (y0, x0) = (
                    (oy / TILE * TILE) as isize - p.pads[0] as isize,
                    (ox / TILE * TILE) as isize - p.pads[1] as isize,
                );
                let mut patch = vec![0.0f64; c_in];
                for y in (y0..y0 + 6).filter(|y| (0..h).contains(y)) {
                    for x in (x0..x0 + 6).filter(|x| (0..w).contains(x)) {
                        let at = ((img * case.h + y as usize) * case.w + x as usize) * c_in;
                        for (c, m) in patch.iter_mut().enumerate() {
                            *m = m.max(d.input[at + c].abs() as f64);
                        }
                    }
                }
                let row = (img * oh + oy) * ow + ox;
                for o in 0..c_out {
                    let term: f64 = (0..c_in).map(|c| patch[c] * wsum[c * c_out + o]).sum();
                    r.abs_sum[row * c_out + o] += kernels::WINOGRAD_ERROR_GROWTH * term;
                }
            }
        }
    }
}

/// Cases that run as Winograd on every CPU set: partial tiles at the bottom and right,
/// channel counts that end in partial vectors and partial register tiles, no padding and
/// asymmetric padding, several images, a map just large enough, a last block with a remainder
/// of less than a panel.
pub fn cases() -> Vec<(&'static str, ConvCase)> {
    let conv = |c_in, c_out, pads| ConvParams { pads, ..ConvParams::new(c_in, c_out, [3, 3]) };
    let case = |p, n, h, w| ConvCase { sized: true, ..ConvCase::plain(p, n, h, w) };
    vec![
        ("16 to 16 on 9x9 (the smallest map)", case(conv(16, 16, [1; 4]), 1, 9, 9)),
        ("17 to 40, partial tiles, two images", case(conv(17, 40, [1; 4]), 2, 25, 26)),
        ("24 to 24 unpadded", case(conv(24, 24, [0; 4]), 1, 30, 29)),
        ("32 to 20, asymmetric pads", case(conv(32, 20, [0, 2, 1, 0]), 1, 27, 25)),
        ("64 to 96 on 24x24", case(conv(64, 96, [1; 4]), 1, 24, 24)),
        // 49 tiles: in panels of 12, the last tile joins the block before it.
        ("32 to 128 on 27x27", case(conv(32, 128, [1; 4]), 1, 27, 27)),
    ]
}

/// Whether `set` packs Winograd weights: the CPU sets do, the CUDA set packs direct ones
/// (these checks then hold it to the direct bound).
fn packs_winograd(set: &dyn KernelSet) -> bool {
    set.info().id != KernelSetId::Cuda
}

/// Packs `case` for `set` and asserts it chose Winograd where the set has it (the cases are
/// meant to).
fn assert_winograd(set: &dyn KernelSet, name: &str, case: &ConvCase, d: &ConvData) {
    let packed = case.pack(set, d).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = if packs_winograd(set) { ConvAlgorithm::Winograd } else { ConvAlgorithm::ImplicitGemm };
    assert_eq!(packed.algorithm(), want, "{}: {name}: packed for the wrong algorithm", set.info().name);
}

/// Most the Winograd error may exceed the direct sum's on the same operands (both against
/// float64, largest over a case): F(4×4, 3×3) costs about five bits, measured 19–35× on the
/// x86 and portable sets.
const MAX_ERROR_VS_DIRECT: f64 = 64.0;

/// Every case × activation (the largest case every third activation), alternately plain and
/// with bias and residual, sequential and threaded, within the widened bound of float64, and
/// within [`MAX_ERROR_VS_DIRECT`] times the direct sum's error.
pub fn winograd_convs_match_reference(set: &dyn KernelSet) {
    let (mut worst_bound, mut worst_direct) = (0.0f64, 0.0f64);
    let cases = cases();
    let largest = cases.len() - 1;
    for (k, (name, base)) in cases.into_iter().enumerate() {
        assert_winograd(set, name, &base, &base.data(false).expect("data"));
        // The largest case (as much work as the other four together, most of this test's time
        // under emulation) takes every third activation: still plain and fused, sequential and
        // threaded (i mod 4 = 0, 3, 2, 1); the others take every activation.
        let activations = kernels::epilogue_activations(set.info().id).into_iter().enumerate();
        for (i, activation) in activations.filter(|(i, _)| k != largest || i % 3 == 0) {
            let (bias, residual) = if i % 2 == 0 { (false, None) } else { (true, Some(1)) };
            let par = if i % 4 < 2 { Parallelism::Sequential } else { Parallelism::Threads };
            let case = ConvCase { bias, residual, activation, par, seed: i as u64, ..base.clone() };
            // One float64 reference for both packings of the same data.
            let d = case.data(false).expect("data");
            let r = case.reference(&d).expect("reference");
            let parity = case.check_against(set, &d, r.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let direct =
                ConvCase { sized: false, ..case }.check_against(set, &d, r).unwrap_or_else(|e| panic!("{name}: {e}"));
            let vs_direct = parity.max_abs_err / direct.max_abs_err.max(f64::MIN_POSITIVE);
            assert!(
                vs_direct <= MAX_ERROR_VS_DIRECT || parity.max_abs_err <= 1e-6,
                "{}: {name} ({activation:?}): error {:e} is {vs_direct:.1}x the direct sum's",
                set.info().name,
                parity.max_abs_err
            );
            worst_bound = worst_bound.max(parity.max_bound_ratio);
            worst_direct = worst_direct.max(vs_direct);
        }
    }
    println!(
        "{}: Winograd error: at most {worst_bound:.2e} of the bound, {worst_direct:.2}x the direct sum's",
        set.info().name
    );
}

/// One nonzero input value (at corners, edges and inside, in the first and last channel) and
/// weights that are multiples of 576 in −576..=576: every transform is then an integer below
/// 2^24, so the output must equal the direct correlation exactly, which shows any misplaced
/// tap, pixel or channel.
pub fn winograd_impulses_are_exact(set: &dyn KernelSet) {
    let (name, base) = &cases()[1];
    let base = ConvCase { bias: true, residual: Some(0), activation: Activation::Relu, ..base.clone() };
    let mut d = base.data(true).expect("data");
    for v in &mut d.weights {
        *v = v.signum() * EXACT_WEIGHT_UNIT;
    }
    assert_winograd(set, name, &base, &d);
    let c_in = base.params.c_in;
    let last = base.n * base.h * base.w - 1;
    for (pixel, channel) in [(0, 0), (base.w - 1, c_in - 1), (last, 3), (base.w * 5 + 7, 0), (base.w * 12, c_in - 1)] {
        let mut impulse = d.clone();
        impulse.input.fill(0.0);
        impulse.input[pixel * c_in + channel] = 1.0;
        let out = base.run(set, &impulse).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = base.reference(&impulse).expect("reference");
        for (i, (&got, &want)) in out.iter().zip(&r.value).enumerate() {
            assert!(
                got as f64 == want,
                "{}: {name}: impulse at pixel {pixel} channel {channel}: out[{i}] = {got}, exact {want}",
                set.info().name
            );
        }
    }
}

/// The cases sequentially and with 1..=4 threads: identical bits.
pub fn winograd_results_do_not_depend_on_thread_count(set: &dyn KernelSet) {
    // A map of many blocks, which threads take whole (each in its own scratch) rather than
    // splitting each block's passes.
    let conv = ConvParams { pads: [1; 4], ..ConvParams::new(16, 24, [3, 3]) };
    let large = ("16 to 24 on 64x64, two images", ConvCase { sized: true, ..ConvCase::plain(conv, 2, 64, 64) });
    // 64 tiles of 64 channels: with a 1 MiB L2, two threads run one block each (36 and 28
    // tiles, the second ending in a partial panel), three run the three shared blocks whole,
    // four split each shared block.
    let conv = ConvParams { pads: [1; 4], ..ConvParams::new(64, 64, [3, 3]) };
    let one_each = ("64 to 64 on 32x32", ConvCase { sized: true, ..ConvCase::plain(conv, 1, 32, 32) });
    // SiLU where the set's epilogue has it (the CUDA epilogue does not: HardSwish there).
    let fused = kernels::epilogue_activations(set.info().id);
    let activation = if fused.contains(&Activation::Silu) { Activation::Silu } else { Activation::HardSwish };
    for (name, base) in cases().into_iter().chain([large, one_each]) {
        let case = ConvCase { bias: true, residual: Some(0), activation, ..base };
        conv::assert_same_bits_on_any_thread_count(set, name, &case);
    }
}

/// Winograd weights survive serialization (same bits out); a blob claiming Winograd weights
/// for a convolution they do not suit, or an unknown algorithm, is refused; a map too small
/// packs the direct way.
pub fn winograd_round_trip(set: &dyn KernelSet) {
    let (name, case) = &cases()[0];
    let d = case.data(false).expect("data");
    let packed = case.pack(set, &d).expect("pack");
    let bytes = packed.to_bytes();
    let back = kernels::PackedConv::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(back, packed, "{name}: round trip");
    let (a, b) = (case.run_packed(set, &packed, &d).expect("run"), case.run_packed(set, &back, &d).expect("run"));
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}: deserialized weights differ");
    if !packs_winograd(set) {
        return;
    }
    // The algorithm word (word 16 of the attributes, after magic, version and name).
    let at = 12 + set.info().name.len() + 16 * 8;
    let mut unknown = bytes.clone();
    unknown[at..at + 8].copy_from_slice(&3u64.to_le_bytes());
    assert!(kernels::PackedConv::from_bytes(&unknown).is_err(), "{name}: unknown algorithm accepted");
    let mut strided = bytes.clone();
    let strides = 12 + set.info().name.len() + 7 * 8;
    strided[strides..strides + 8].copy_from_slice(&2u64.to_le_bytes());
    let err = kernels::PackedConv::from_bytes(&strided).expect_err("Winograd weights for a stride-2 conv accepted");
    assert!(err.to_string().contains("Winograd"), "{name}: {err}");
    let small = ConvCase { h: 8, w: 8, ..case.clone() };
    let direct = small.pack(set, &small.data(false).expect("data")).expect("pack");
    assert_eq!(direct.algorithm(), ConvAlgorithm::ImplicitGemm, "an 8x8 map (4 tiles) packed for Winograd");
}
