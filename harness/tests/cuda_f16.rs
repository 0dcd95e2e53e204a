//! The CUDA set's f16 storage (tensor-core and CUDA-core kernels) against float64.
//!
//! Inputs, weights and residuals are rounded to f16 first and the reference computed from the
//! rounded values, so the bound is the f32-accumulation bound of the tolerance model plus the
//! rounding of the stored f16 output (2^-11 relative). Outputs are poisoned (NaN) on the
//! device before each run. Needs a GPU: reported as skipped here, run by ci/gpu-check.sh.
#![cfg(feature = "cuda")]

use half::f16;
use harness::reference::{self, Reference};
use harness::suite::conv::{algorithm_cases, params_strategy, ConvCase};
use harness::tolerance::gemm_bound;
use kernels::cuda::{gpu, DeviceBias, DeviceConv, DeviceEpilogue, DeviceMatrix, Gpu, Precision};
use kernels::{kernel_set, Activation, Bias, ConvKind, ConvParams, Epilogue, KernelSetId, MatRef};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

/// The GPU, or a failure: these tests only run when asked to (`--ignored`) on a GPU machine.
fn the_gpu() -> std::sync::Arc<Gpu> {
    gpu().unwrap_or_else(|e| panic!("the CUDA tests were run, but: {e}"))
}

fn check(r: &Reference, out: &[f32], what: &str) -> Result<f64, String> {
    let mut worst = 0.0f64;
    for (idx, (&y, &want)) in out.iter().zip(&r.value).enumerate() {
        // Storing to f16 rounds by half an ulp: 2^-11 relative, or 2^-25 absolute below
        // f16's smallest normal (subnormal spacing 2^-24).
        let store = (want.abs() * f64::powi(2.0, -11)).max(f64::powi(2.0, -25));
        let bound = gemm_bound(r.k, r.abs_sum[idx], r.pre[idx], want, r.activation) + store;
        let err = (y as f64 - want).abs();
        if err.is_nan() || err > bound {
            return Err(format!("{what}: element {idx} = {y}, reference {want}, bound {bound:e}"));
        }
        worst = worst.max(err / bound);
    }
    Ok(worst)
}

fn epilogue(g: &Gpu, bias: &Option<Vec<f32>>, act: Activation, per_col: bool) -> DeviceEpilogue {
    let bias = match bias {
        None => DeviceBias::None,
        Some(b) if per_col => DeviceBias::PerCol(g.upload_f32(b).unwrap()),
        Some(b) => DeviceBias::PerRow(g.upload_f32(b).unwrap()),
    };
    DeviceEpilogue { bias, activation: act }
}

/// One f16 GEMM: m × k by k × n with every epilogue part; returns the worst error/bound.
fn gemm_case(g: &Gpu, m: usize, n: usize, k: usize, act: Activation, seed: u64) -> Result<f64, String> {
    let mut rng = harness::rng::SplitMix::new(seed);
    let mut gen = |len: usize| round(&(0..len).map(|_| rng.uniform(-1.0, 1.0)).collect::<Vec<_>>());
    let (a, b, bias, res) = (gen(m * k), gen(k * n), gen(n), gen(m * n));
    let set = kernel_set(KernelSetId::Cuda).map_err(|e| e.to_string())?;
    let packed = set.pack_b(MatRef::row_major(&b, k, n).unwrap());
    let w = DeviceMatrix::upload(g, &packed, Precision::F16).map_err(|e| e.to_string())?;
    let da = g.upload(&a, Precision::F16).unwrap();
    let dr = g.upload(&res, Precision::F16).unwrap();
    let mut dc = g.upload(&vec![f32::NAN; m * n], Precision::F16).unwrap();
    g.gemm(&da, m, &w, &epilogue(g, &Some(bias.clone()), act, true), Some(&dr), &mut dc).map_err(|e| e.to_string())?;
    let mut out = vec![0.0; m * n];
    g.download(&dc, &mut out).unwrap();
    let residual = MatRef::row_major(&res, m, n).unwrap();
    let epi = Epilogue { bias: Bias::PerCol(&bias), residual: Some(residual), activation: act };
    let r = reference::gemm(&MatRef::row_major(&a, m, k).unwrap(), &MatRef::row_major(&b, k, n).unwrap(), &epi);
    check(&r, &out, &format!("f16 gemm {m}x{n}x{k} {act:?}"))
}

/// One f16 convolution; returns the worst error/bound.
fn conv_case(g: &Gpu, case: &ConvCase) -> Result<f64, String> {
    let mut d = case.data(false).map_err(|e| e.to_string())?;
    d.input = round(&d.input);
    d.weights = round(&d.weights);
    let dims = case.output_dims().map_err(|e| e.to_string())?;
    let len: usize = dims.iter().product();
    // The device residual is dense: take the values out of the padded rows, rounded.
    let residual = d.residual.as_ref().map(|(v, rs)| {
        let dense: Vec<f32> = v.chunks(*rs).flat_map(|row| row[..dims[3]].to_vec()).collect();
        round(&dense)
    });
    d.residual = residual.clone().map(|v| (v, dims[3]));
    let set = kernel_set(KernelSetId::Cuda).map_err(|e| e.to_string())?;
    let packed = set.pack_conv(&case.params, &d.weights).map_err(|e| e.to_string())?;
    let w = DeviceConv::upload(g, &packed, Precision::F16).map_err(|e| e.to_string())?;
    let x = g.upload(&d.input, Precision::F16).unwrap();
    let res = residual.as_ref().map(|v| g.upload(v, Precision::F16).unwrap());
    let mut y = g.upload(&vec![f32::NAN; len], Precision::F16).unwrap();
    let in_dims = [case.n, case.h, case.w, case.params.c_in];
    g.conv2d(&x, in_dims, &w, &epilogue(g, &d.bias, case.activation, true), res.as_ref(), &mut y)
        .map_err(|e| e.to_string())?;
    let mut out = vec![0.0; len];
    g.download(&y, &mut out).unwrap();
    let r = case.reference(&d).map_err(|e| e.to_string())?;
    check(&r, &out, &format!("f16 {case:?}"))
}

#[test]
#[ignore = "skipped: no CUDA device (ci/gpu-check.sh runs these on a GPU machine)"]
fn f16_gemm_matches_reference_on_both_kernels() {
    let g = the_gpu();
    eprintln!("{} sm_{} tensor cores: {}, wgmma: {}", g.name(), g.sm(), g.tensor_core_kernel(), g.has_wgmma());
    // k % 8 == 0 runs a tensor-core kernel (mma.sync on sm_80+, wmma on sm_70+ or with
    // EDGEPACK_MMA=wmma), other k the CUDA-core f16 kernel; m and n cross the 128 tile and the
    // warp/fragment edges.
    let mut seed = 1;
    for (m, n, k) in [
        (1, 1, 1),
        (128, 128, 32),
        (129, 130, 64),
        (200, 72, 40),
        (77, 300, 8),
        (64, 64, 33),
        (300, 17, 100),
        (256, 256, 1024),
        // Wider than 128 columns: Hopper's wgmma kernel (128 × 256 tiles) where it is built;
        // column tails inside the 256 tile, a one-row M, K below one step and several steps.
        (1, 257, 8),
        (130, 300, 72),
        (260, 600, 520),
    ] {
        for act in kernels::epilogue_activations(kernels::KernelSetId::Cuda) {
            seed += 1;
            gemm_case(&g, m, n, k, act, seed).unwrap();
        }
    }
}

#[test]
#[ignore = "skipped: no CUDA device (ci/gpu-check.sh runs these on a GPU machine)"]
fn f16_conv_algorithms_match_reference() {
    let g = the_gpu();
    for (name, case) in algorithm_cases() {
        for act in [Activation::Identity, Activation::HardSwish] {
            let c = ConvCase { bias: true, residual: Some(0), activation: act, ..case.clone() };
            let worst = conv_case(&g, &c).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("f16 {name} {act:?}: worst error/bound {worst:.3}");
        }
    }
}

#[test]
#[ignore = "skipped: no CUDA device (ci/gpu-check.sh runs these on a GPU machine)"]
fn f16_wide_convs_match_reference() {
    let g = the_gpu();
    // More than 128 output channels per group: the wgmma kernel's implicit GEMM on Hopper.
    let conv = |c_in, c_out, k, s, pad, groups| ConvParams {
        strides: [s, s],
        pads: [pad; 4],
        groups,
        ..ConvParams::new(c_in, c_out, [k, k])
    };
    let cases = [
        ("3x3 16->264", conv(16, 264, 3, 1, 1, 1), 1, 10, 9),
        ("pointwise 64->300", conv(64, 300, 1, 1, 0, 1), 2, 7, 5),
        ("3x3/2 grouped 2x(16->264)", conv(32, 528, 3, 2, 1, 2), 1, 9, 8),
        ("5x5 8->136 unpadded", conv(8, 136, 5, 1, 0, 1), 2, 12, 11),
        (
            "transposed 3x3/2 24->260",
            ConvParams { kind: ConvKind::Transposed { output_padding: [1, 1] }, ..conv(24, 260, 3, 2, 1, 1) },
            1,
            6,
            5,
        ),
    ];
    for (name, params, n, h, w) in cases {
        for act in [Activation::Identity, Activation::Relu] {
            let c = ConvCase { bias: true, residual: Some(0), activation: act, ..ConvCase::plain(params, n, h, w) };
            let worst = conv_case(&g, &c).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("f16 {name} {act:?}: worst error/bound {worst:.3}");
        }
    }
}

#[test]
#[ignore = "skipped: no CUDA device (ci/gpu-check.sh runs these on a GPU machine)"]
fn f16_random_convs_match_reference() {
    let g = the_gpu();
    // The suite's attribute space, with channel counts scaled by 8 half the time so that the
    // tensor-core convolution (8-channel chunks) is drawn as often as the CUDA-core one.
    let strategy = (params_strategy(), any::<bool>(), (1usize..=2, 1usize..=24, 1usize..=24), any::<u64>(), 0usize..6)
        .prop_map(|(p, wide, (n, h, w), seed, act)| {
            let scale = if wide && p.groups == 1 { 8 } else { 1 };
            let params = ConvParams { c_in: p.c_in * scale, c_out: p.c_out * scale, ..p };
            let mut case = ConvCase::plain(params, n, h, w);
            case.bias = seed % 2 == 0;
            case.residual = (seed % 3 == 0).then_some(0);
            case.activation = kernels::epilogue_activations(kernels::KernelSetId::Cuda)[act];
            case.seed = seed;
            while case.output_dims().is_err() {
                case.h += 1;
                case.w += 1;
            }
            case
        });
    let mut runner = TestRunner::new(Config { cases: 128, failure_persistence: None, ..Config::default() });
    runner.run(&strategy, |case| conv_case(&g, &case).map(|_| ()).map_err(TestCaseError::fail)).unwrap();
}
