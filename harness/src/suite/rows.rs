//! The row-normalisation checks every kernel set must pass (instantiated in
//! `harness/tests/kernel_sets.rs`): softmax, layer norm and group norm against float64, with a bound that
//! grows with the row length, exact cases that catch row and column indexing, outputs
//! poisoned with a marked NaN before each run.

use kernels::{Channels, KernelSet, Parallelism, RowNorm};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::error::{Error, Result};
use crate::rng::SplitMix;
use crate::suite::gemm::POISON_BITS;

/// Runs the set's row kernel into a poisoned output.
fn run(set: &dyn KernelSet, norm: RowNorm<'_>, x: &[f32], len: usize, par: Parallelism) -> Result<Vec<f32>> {
    let mut out = vec![f32::from_bits(POISON_BITS); x.len()];
    set.normalize_rows(norm, x, len, &mut out, par)?;
    Ok(out)
}

/// Float64 softmax of each row, with each output's bound `(len + 8 + |x − max|)·eps·value`:
/// the sum's rounding grows with the row, and `x − max` is rounded in float32 (half an ulp
/// of a shift of 38 is a relative error of 2e-6 in its exponential).
fn softmax_reference(x: &[f32], len: usize) -> Vec<(f64, f64)> {
    x.chunks(len)
        .flat_map(|row| {
            let max = row.iter().map(|&v| v as f64).fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<(f64, f64)> = row.iter().map(|&v| ((v as f64 - max).exp(), max - v as f64)).collect();
            let sum: f64 = e.iter().map(|p| p.0).sum();
            let eps = f32::EPSILON as f64;
            e.into_iter()
                .map(move |(v, shift)| (v / sum, (len as f64 + 8.0 + shift) * eps * (v / sum) + f64::MIN_POSITIVE))
        })
        .collect()
}

/// Float64 layer norm of each row, with each output's bound: the row length times eps on the
/// normalised value and bias, plus the rounding of `x − mean` at the row's magnitude; `param(r,
/// k)` is the scale and bias of value `k` of row `r`.
fn norm_reference(x: &[f32], len: usize, eps: f32, param: impl Fn(usize, usize) -> (f32, f32)) -> Vec<(f64, f64)> {
    let e = f32::EPSILON as f64;
    x.chunks(len)
        .enumerate()
        .flat_map(|(r, row)| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            row.iter()
                .enumerate()
                .map(|(k, &v)| {
                    let (s, b) = param(r, k);
                    let (s, b) = (s as f64, b as f64);
                    let d = (v as f64 - mean) * inv * s;
                    let tol = (len as f64 + 8.0) * e * (d.abs() + b.abs()) + 4.0 * e * mean.abs() * inv * s.abs();
                    (d + b, tol)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// [`norm_reference`] of a layer norm: scale and bias per column.
fn layer_norm_reference(x: &[f32], len: usize, scale: &[f32], bias: Option<&[f32]>, eps: f32) -> Vec<(f64, f64)> {
    norm_reference(x, len, eps, |_, k| (scale[k], bias.map_or(0.0, |b| b[k])))
}

/// [`norm_reference`] of a group norm: scale and bias per channel; in planes, the rows'
/// channels numbered on from one row to the next and wrapping at the scale's length.
fn group_norm_reference(x: &[f32], len: usize, channels: Channels, sb: (&[f32], &[f32])) -> Vec<(f64, f64)> {
    let c = sb.0.len();
    norm_reference(x, len, 1e-5, |r, k| {
        let ch = match channels {
            Channels::Planes(n) => (r * (len / n) + k / n) % c,
            Channels::Interleaved => k % c,
        };
        (sb.0[ch], sb.1[ch])
    })
}

fn compare(what: &str, got: &[f32], want: &[(f64, f64)]) -> Result<()> {
    for (i, (&g, &(v, tol))) in got.iter().zip(want).enumerate() {
        if g.to_bits() == POISON_BITS || (g as f64 - v).abs() > tol {
            return Err(Error::mismatch(what, format!("output {i} = {g}, reference {v} (bound {tol:e})")));
        }
    }
    Ok(())
}

/// Proptest over 1–9 rows of 1–300 values (vector tails, rows shorter than a vector),
/// softmax over scores up to ±30, layer norm over rows centred anywhere up to ±1000 with
/// and without bias, group norm of the same rows in channels, sequential and threaded.
pub fn random_rows_match_reference(set: &dyn KernelSet) {
    let name = set.info().name;
    let strategy = (1usize..=9, 1usize..=300, -1000.0f32..1000.0, any::<bool>(), any::<bool>(), any::<u64>());
    let config = Config { failure_persistence: None, cases: 128, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(rows, len, centre, with_bias, threaded, seed)| {
        let par = if threaded { Parallelism::Threads } else { Parallelism::Sequential };
        let mut rng = SplitMix::new(seed);
        let scores = rng.vec(rows * len, -30.0, 30.0);
        let got = run(set, RowNorm::Softmax, &scores, len, par).map_err(|e| TestCaseError::fail(e.to_string()))?;
        compare(&format!("{name} softmax {rows}×{len}"), &got, &softmax_reference(&scores, len))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let x: Vec<f32> = rng.vec(rows * len, -3.0, 3.0).into_iter().map(|v| v + centre).collect();
        let scale = rng.vec(len, -2.0, 2.0);
        let bias = with_bias.then(|| rng.vec(len, -1.0, 1.0));
        let norm = RowNorm::LayerNorm { scale: &scale, bias: bias.as_deref(), epsilon: 1e-5 };
        let got = run(set, norm, &x, len, par).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = layer_norm_reference(&x, len, &scale, bias.as_deref(), 1e-5);
        compare(&format!("{name} layer norm {rows}×{len} centred at {centre}"), &got, &want)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // The same values as group-norm rows: `len` split into as many whole channels as
        // its smallest factor above one gives (prime lengths: one channel per row), in planes
        // with scales for two or three rows' channels so that rows wrap around them, or
        // interleaved.
        let n = (2..=len).find(|d| len % d == 0).map_or(1, |d| len / d);
        for (channels, c) in [(Channels::Planes(n), (len / n) * (1 + (seed % 3) as usize)), (Channels::Interleaved, n)]
        {
            let (scale, bias) = (rng.vec(c, -2.0, 2.0), rng.vec(c, -1.0, 1.0));
            let norm = RowNorm::GroupNorm { scale: &scale, bias: &bias, channels, epsilon: 1e-5 };
            let got = run(set, norm, &x, len, par).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want = group_norm_reference(&x, len, channels, (&scale, &bias));
            compare(&format!("{name} group norm {rows}×{len} in {channels:?} of {c}"), &got, &want)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Exact answers: a constant row's softmax is `1/len` everywhere; rows `10·r ± 1`
/// (alternating, even length) have mean `10·r` and variance 1, so with `epsilon = 0` layer
/// norm gives exactly `±scale[k] + bias[k]`: integer scales and biases distinct per column
/// catch a wrong row or column.
pub fn exact_rows(set: &dyn KernelSet) {
    let name = set.info().name;
    for len in [1usize, 2, 7, 16, 33, 197, 256] {
        let x = vec![0.25f32; 3 * len];
        let got = run(set, RowNorm::Softmax, &x, len, Parallelism::Sequential).unwrap();
        assert!(got.iter().all(|&v| v == 1.0 / len as f32), "{name}: softmax of a constant row of {len}: {got:?}");
    }
    for len in [2usize, 16, 34, 192, 258] {
        let rows = 5;
        let x: Vec<f32> =
            (0..rows * len).map(|i| 10.0 * (i / len) as f32 + if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let scale: Vec<f32> = (0..len).map(|k| (k % 7) as f32 - 3.0).collect();
        let bias: Vec<f32> = (0..len).map(|k| (k % 5) as f32).collect();
        for par in [Parallelism::Sequential, Parallelism::Threads] {
            let norm = RowNorm::LayerNorm { scale: &scale, bias: Some(&bias), epsilon: 0.0 };
            let got = run(set, norm, &x, len, par).unwrap();
            for (i, &g) in got.iter().enumerate() {
                let k = i % len;
                let want = if i % 2 == 0 { scale[k] } else { -scale[k] } + bias[k];
                assert!(g == want, "{name}: layer norm {rows}×{len}: output {i} = {g}, exact {want}");
            }
        }
    }
    // Group norm of the same rows: channels of even length keep each channel's mean at the
    // row's; the channels (integer scale and bias distinct for each) wrap every two rows. And
    // interleaved: channel `i mod C`, pixels of two values (+1, −1) so each has mean zero.
    for (per, n, interleaved) in [
        (1usize, 2usize, false),
        (1, 34, false),
        (3, 16, false),
        (2, 96, false),
        (4, 6, false),
        (5, 2, true),
        (16, 2, true),
        (11, 2, true),
        (1, 2, true),
    ] {
        let (rows, len) = (5, per * n);
        let x: Vec<f32> =
            (0..rows * len).map(|i| 10.0 * (i / len) as f32 + if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let (channels, c) = match interleaved {
            true => (Channels::Interleaved, per),
            false => (Channels::Planes(n), 2 * per),
        };
        let scale: Vec<f32> = (0..c).map(|c| c as f32 - 3.0).collect();
        let bias: Vec<f32> = (0..c).map(|c| (c * 5) as f32).collect();
        for par in [Parallelism::Sequential, Parallelism::Threads] {
            let norm = RowNorm::GroupNorm { scale: &scale, bias: &bias, channels, epsilon: 0.0 };
            let got = run(set, norm, &x, len, par).unwrap();
            for (i, &g) in got.iter().enumerate() {
                let ch = if interleaved { (i % len) % c } else { (i / n) % c };
                let want = if i % 2 == 0 { scale[ch] } else { -scale[ch] } + bias[ch];
                assert!(g == want, "{name}: group norm {rows}×{len} in {channels:?}: output {i} = {g}, exact {want}");
            }
        }
    }
}

/// Unequal lengths, partial rows, empty rows, mis-sized scale or bias and group-norm rows of
/// partial channels are errors naming the problem.
pub fn bad_rows_are_errors(set: &dyn KernelSet) {
    let x = vec![1.0f32; 12];
    let mut out = vec![0.0f32; 12];
    let seq = Parallelism::Sequential;
    let e = set.normalize_rows(RowNorm::Softmax, &x, 5, &mut out, seq).expect_err("partial row").to_string();
    assert!(e.contains("rows of 5"), "{e}");
    let e = set.normalize_rows(RowNorm::Softmax, &x, 0, &mut out, seq).expect_err("empty rows").to_string();
    assert!(e.contains("len > 0"), "{e}");
    let e = set.normalize_rows(RowNorm::Softmax, &x, 4, &mut out[..8], seq).expect_err("short output").to_string();
    assert!(e.contains("into 8"), "{e}");
    let scale = [1.0f32; 3];
    let norm = RowNorm::LayerNorm { scale: &scale, bias: Some(&scale), epsilon: 1e-5 };
    let e = set.normalize_rows(norm, &x, 4, &mut out, seq).expect_err("short scale").to_string();
    assert!(e.contains("3 scales"), "{e}");
    set.normalize_rows(norm, &x, 3, &mut out, seq).expect("a valid call");
    let group = |scale: &'static [f32], bias: &'static [f32], channels| RowNorm::GroupNorm {
        scale,
        bias,
        channels,
        epsilon: 1e-5,
    };
    for (norm, len) in [
        (group(&[1.0; 2], &[0.0; 2], Channels::Planes(3)), 4), // planes of 3 in rows of 4
        (group(&[1.0; 2], &[0.0; 2], Channels::Planes(2)), 6), // 3 channels a row, 2 scales
        (group(&[1.0; 2], &[0.0; 1], Channels::Planes(2)), 4), // fewer biases than scales
        (group(&[1.0; 2], &[0.0; 2], Channels::Planes(0)), 4), // empty planes
        (group(&[], &[], Channels::Planes(2)), 4),             // no scales
        (group(&[1.0; 3], &[0.0; 3], Channels::Interleaved), 4), // pixels of 3 in rows of 4
        (group(&[], &[], Channels::Interleaved), 4),           // no scales
    ] {
        let e = set.normalize_rows(norm, &x, len, &mut out, seq).expect_err("a bad group norm").to_string();
        assert!(e.contains(&format!("group norm over rows of {len}")), "{e}");
    }
    set.normalize_rows(group(&[1.0; 2], &[0.0; 2], Channels::Interleaved), &x, 4, &mut out, seq)
        .expect("a valid interleaved group norm");
    set.normalize_rows(group(&[1.0; 6], &[0.0; 6], Channels::Planes(2)), &x, 4, &mut out, seq)
        .expect("a valid group norm");
}
