//! Input channel scales folded into packed convolution weights
//! ([`kernels::PackedConv::scale_inputs_into`]: a squeeze-excitation gate multiplied into the
//! convolution that reads the gated tensor), checked on every kernel set against the same
//! convolution of the scaled input. The scaled copy is poisoned (scaled by NaN) before each
//! scaling, so a weight it leaves unwritten shows in the output.

use kernels::{ConvParams, KernelSet, PackedConv, Parallelism};

use crate::rng::SplitMix;
use crate::suite::conv::{ConvCase, ConvData};

/// `d`'s input with channel `c` of every pixel multiplied by `scale[c]`.
fn scaled_input(d: &ConvData, scale: &[f32]) -> ConvData {
    let input = d.input.chunks(scale.len()).flat_map(|px| px.iter().zip(scale).map(|(x, s)| x * s)).collect();
    ConvData { input, ..d.clone() }
}

/// `packed` with its input channels scaled into a copy first filled with NaN.
fn scaled_weights(packed: &PackedConv, scale: &[f32], par: Parallelism) -> Result<PackedConv, String> {
    let mut copy = packed.clone();
    packed.scale_inputs_into(&vec![f32::NAN; scale.len()], &mut copy, par).map_err(|e| e.to_string())?;
    packed.scale_inputs_into(scale, &mut copy, par).map_err(|e| e.to_string())?;
    Ok(copy)
}

/// The gated layers of the models (pointwise, with bias, residual and activation; a 3×3
/// implicit GEMM; image counts that put several images in one GEMM), on integer data and
/// integer scales (0 among them): the convolution with scaled weights equals the float64
/// reference of the scaled input exactly; on random data it stays within the tolerance of
/// that reference.
pub fn scaled_inputs_match_reference(set: &dyn KernelSet) {
    let pointwise = |c_in, c_out| ConvParams::new(c_in, c_out, [1, 1]);
    let cases = [
        ("pointwise 40 to 24", ConvCase::plain(pointwise(40, 24), 1, 9, 11)),
        ("pointwise 16 to 72 (wide tiles)", ConvCase::plain(pointwise(16, 72), 1, 6, 7)),
        ("pointwise 3 to 5", ConvCase::plain(pointwise(3, 5), 1, 4, 3)),
        ("dense 3x3", ConvCase::plain(ConvParams { pads: [1; 4], ..ConvParams::new(12, 20, [3, 3]) }, 1, 7, 6)),
        // Weights large enough that the threads share the scaling (and the convolution).
        (
            "pointwise 288 to 96 (threads)",
            ConvCase { par: Parallelism::Threads, ..ConvCase::plain(pointwise(288, 96), 1, 5, 4) },
        ),
    ];
    for (name, base) in cases {
        for (integers, seed) in [(true, 3), (false, 4)] {
            let case =
                ConvCase { bias: true, residual: Some(1), activation: kernels::Activation::Relu, seed, ..base.clone() };
            let d = case.data(integers).expect("data");
            let mut rng = SplitMix::new(seed ^ 0x5ca1e);
            let scale: Vec<f32> =
                (0..case.params.c_in).map(|_| if integers { rng.int(-2, 2) } else { rng.uniform(0.0, 1.0) }).collect();
            let packed = case.pack(set, &d).expect("pack");
            let what = format!("{}: {name} ({})", set.info().name, if integers { "integers" } else { "random" });
            let weights = scaled_weights(&packed, &scale, case.par).unwrap_or_else(|e| panic!("{what}: {e}"));
            let gated = scaled_input(&d, &scale);
            let out = case.run_packed(set, &weights, &d).unwrap_or_else(|e| panic!("{what}: {e}"));
            let reference = case.reference(&gated).expect("reference");
            if integers {
                for (i, (&got, &want)) in out.iter().zip(&reference.value).enumerate() {
                    assert!(got as f64 == want, "{what}: out[{i}] = {got}, exact answer {want}");
                }
            } else {
                let parity = crate::parity::compare(&reference, |i, j| out[i * reference.n + j]);
                if let Some((i, j, got, want, bound)) = parity.first_violation {
                    panic!("{what}: out[{i},{j}] = {got}, reference {want}, bound {bound:e}");
                }
            }
        }
    }
}

/// Weights that cannot take input scales (depthwise, grouped, Winograd, transposed), scales
/// of the wrong length and a copy of other weights are refused with errors that name them.
pub fn bad_scales_are_errors(set: &dyn KernelSet) {
    let dense = ConvParams { pads: [1; 4], ..ConvParams::new(8, 8, [3, 3]) };
    let pack = |p: ConvParams, sized: bool| {
        let w = vec![0.25; p.weight_len()];
        match sized {
            true => set.pack_conv_for_input(&p, &w, [16, 16]),
            false => set.pack_conv(&p, &w),
        }
        .expect("pack")
    };
    let refused = |p: &PackedConv, len: usize, want: &str| {
        let mut copy = p.clone();
        let err = p.scale_inputs_into(&vec![1.0; len], &mut copy, Parallelism::Sequential).expect_err(want).to_string();
        assert!(err.contains(want), "{}: {want}: {err}", set.info().name);
    };
    let plain = pack(dense, false);
    assert!(plain.scales_inputs(), "{}: dense implicit-GEMM weights", set.info().name);
    for (what, p, sized) in [
        ("depthwise", ConvParams { groups: 8, ..dense }, false),
        ("grouped", ConvParams { groups: 2, ..dense }, false),
        ("Winograd", ConvParams { pads: [1; 4], ..ConvParams::new(16, 16, [3, 3]) }, true),
        ("transposed", ConvParams { kind: kernels::ConvKind::Transposed { output_padding: [0, 0] }, ..dense }, false),
    ] {
        let packed = pack(p, sized);
        if what == "Winograd" && packed.algorithm() != kernels::ConvAlgorithm::Winograd {
            // The CUDA set packs every dense convolution for its implicit GEMM, whatever the
            // input; the CPU sets pack this one (16 channels on 16×16) for Winograd.
            assert_eq!(set.info().id, kernels::KernelSetId::Cuda, "{}: 16 channels on 16x16", set.info().name);
            continue;
        }
        assert!(!packed.scales_inputs(), "{}: {what} weights claim to take input scales", set.info().name);
        refused(&packed, p.c_in, "input channel scales need");
    }
    refused(&plain, 7, "7 input channel scales for a convolution of 8");
    let other = pack(ConvParams::new(8, 16, [1, 1]), false);
    let mut copy = other.clone();
    let err = plain
        .scale_inputs_into(&[1.0; 8], &mut copy, Parallelism::Threads)
        .expect_err("a copy of other weights")
        .to_string();
    assert!(err.contains("is not a copy of these weights"), "{}: {err}", set.info().name);
}
