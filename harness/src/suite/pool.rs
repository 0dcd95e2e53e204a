//! The pooling checks every kernel set must pass, written once (instantiated in
//! `harness/tests/kernel_sets.rs`): max and average pools against a float64 reference that
//! tests every tap's bounds (independent of the kernels' tap ranges), outputs poisoned with a
//! marked NaN before each run.

use kernels::{ImageMut, ImageRef, KernelSet, Parallelism, PoolMode, PoolParams};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::error::{Error, Result};
use crate::rng::SplitMix;
use crate::suite::gemm::POISON_BITS;

/// One pooling test case.
#[derive(Debug, Clone)]
pub struct PoolCase {
    /// Window, strides, dilations, pads and mode.
    pub params: PoolParams,
    /// Ceil mode: the output takes the last partial window (its start inside the input or
    /// its top/left pad).
    pub ceil: bool,
    /// Input dims, NHWC.
    pub dims: [usize; 4],
    /// Threads allowed.
    pub par: Parallelism,
    /// Data seed.
    pub seed: u64,
}

/// Output length along one axis, as ONNX's floor and ceil modes define it.
pub fn output_len(
    len: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: [usize; 2],
    ceil: bool,
) -> Option<usize> {
    let eff = (kernel - 1) * dilation + 1;
    let span = (len + pads[0] + pads[1]).checked_sub(eff)?;
    if !ceil {
        return Some(span / stride + 1);
    }
    let o = span.div_ceil(stride) + 1;
    Some(if (o - 1) * stride >= len + pads[0] { o - 1 } else { o })
}

impl PoolCase {
    /// `[n, oh, ow, c]`, or `None` when the window does not fit the padded input.
    pub fn output_dims(&self) -> Option<[usize; 4]> {
        let [n, h, w, c] = self.dims;
        let p = &self.params;
        let oh = output_len(h, p.kernel[0], p.strides[0], p.dilations[0], [p.pads[0], p.pads[2]], self.ceil)?;
        let ow = output_len(w, p.kernel[1], p.strides[1], p.dilations[1], [p.pads[1], p.pads[3]], self.ceil)?;
        Some([n, oh, ow, c])
    }

    /// The input: integers in [-50, 50] (exact sums) or uniform values in [-4, 4].
    pub fn input(&self, integers: bool) -> Vec<f32> {
        let mut rng = SplitMix::new(self.seed);
        let len = self.dims.iter().product();
        (0..len).map(|_| if integers { rng.int(-50, 50) } else { rng.uniform(-4.0, 4.0) }).collect()
    }

    /// Runs the set's pool into a poisoned output.
    pub fn run(&self, set: &dyn KernelSet, input: &[f32]) -> Result<Vec<f32>> {
        let od = self.output_dims().ok_or_else(|| Error::case(format!("{self:?}"), "the window does not fit"))?;
        let mut out = vec![f32::from_bits(POISON_BITS); od.iter().product()];
        let x = ImageRef::new(input, self.dims)?;
        let y = ImageMut::new(&mut out, od)?;
        set.pool2d(x, y, &self.params, self.par)?;
        Ok(out)
    }

    /// Float64 reference: per output value, every tap tested against the input and the
    /// padded input. Returns `(value, Σ|taps| / divisor)`.
    pub fn reference(&self, input: &[f32]) -> Vec<(f64, f64)> {
        let [n, h, w, c] = self.dims;
        let [_, oh, ow, _] = self.output_dims().expect("a fitting window");
        let p = &self.params;
        let mut out = Vec::with_capacity(n * oh * ow * c);
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let (mut best, mut sum, mut abs, mut inside, mut padded) = (f64::NEG_INFINITY, 0.0, 0.0, 0, 0);
                        for ky in 0..p.kernel[0] {
                            for kx in 0..p.kernel[1] {
                                let iy = (oy * p.strides[0] + ky * p.dilations[0]) as isize - p.pads[0] as isize;
                                let ix = (ox * p.strides[1] + kx * p.dilations[1]) as isize - p.pads[1] as isize;
                                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                    if iy < (h + p.pads[2]) as isize && ix < (w + p.pads[3]) as isize {
                                        padded += 1;
                                    }
                                    continue;
                                }
                                let v = input[((b * h + iy as usize) * w + ix as usize) * c + ch] as f64;
                                best = best.max(v);
                                sum += v;
                                abs += v.abs();
                                inside += 1;
                            }
                        }
                        out.push(match p.mode {
                            PoolMode::Max => (best, best.abs()),
                            PoolMode::Average { count_include_pad } => {
                                let d = if count_include_pad { inside + padded } else { inside.max(1) } as f64;
                                (sum / d, abs / d)
                            }
                        });
                    }
                }
            }
        }
        out
    }

    /// Runs the case and compares: max exactly; average within `(taps + 2)·eps·Σ|taps|/d`.
    pub fn check(&self, set: &dyn KernelSet, integers: bool) -> Result<()> {
        let input = self.input(integers);
        let got = self.run(set, &input)?;
        let want = self.reference(&input);
        let taps = (self.params.kernel[0] * self.params.kernel[1]) as f64;
        for (i, (&g, &(v, scale))) in got.iter().zip(&want).enumerate() {
            let exact = matches!(self.params.mode, PoolMode::Max) || integers;
            let tol = if exact { 0.0 } else { (taps + 2.0) * f32::EPSILON as f64 * scale };
            if g.to_bits() == POISON_BITS || !((g as f64 - v).abs() <= tol || g as f64 == v) {
                return Err(Error::mismatch(
                    format!("{}: {self:?}", set.info().name),
                    format!("output {i} = {g}, reference {v} (tolerance {tol:e})"),
                ));
            }
        }
        Ok(())
    }
}

fn mode() -> impl Strategy<Value = PoolMode> {
    prop_oneof![
        Just(PoolMode::Max),
        Just(PoolMode::Average { count_include_pad: false }),
        Just(PoolMode::Average { count_include_pad: true })
    ]
}

/// Proptest over windows 1–4, strides 1–3, dilations 1–2, pads below the window, floor and
/// ceil mode, 1–70 channels (vector tails), 1–3 images, sequential and threaded.
pub fn random_pools_match_reference(set: &dyn KernelSet) {
    let strategy = (
        ([1usize..=4, 1usize..=4], [1usize..=3, 1usize..=3], [1usize..=2, 1usize..=2], mode()),
        ([0usize..4, 0usize..4, 0usize..4, 0usize..4], any::<bool>()),
        (1usize..=3, 1usize..=20, 1usize..=20, prop_oneof![1usize..=70, Just(64)]),
        (any::<bool>(), any::<u64>()),
    )
        .prop_map(|((kernel, strides, dilations, mode), (pads, ceil), (n, h, w, c), (threaded, seed))| {
            // Pads below the window, as ONNX requires.
            let pads = [pads[0] % kernel[0], pads[1] % kernel[1], pads[2] % kernel[0], pads[3] % kernel[1]];
            PoolCase {
                params: PoolParams { kernel, strides, dilations, pads, mode },
                ceil,
                dims: [n, h, w, c],
                par: if threaded { Parallelism::Threads } else { Parallelism::Sequential },
                seed,
            }
        })
        .prop_filter("the window fits the padded input", |case| case.output_dims().is_some());
    let config = Config { failure_persistence: None, cases: 200, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |case| case.check(set, false).map_err(|e| TestCaseError::fail(e.to_string())));
    if let Err(e) = result {
        panic!("{}: {e}", set.info().name);
    }
}

/// The pools real models use: max is exact, and so is (on integer inputs) an average whose
/// divisor is a power of two; the others within the bound.
pub fn model_pools_are_exact(set: &dyn KernelSet) {
    let cases = [
        // ResNet's stem pool: 3×3/2, pad 1, 64 channels (four whole vectors).
        ([3, 3], [2, 2], [1, 1, 1, 1], PoolMode::Max, false, [1, 112, 112, 64]),
        // ShuffleNet's stem pool: 24 channels (three vectors of 8 in one pass, or 1.5 of 16).
        ([3, 3], [2, 2], [1, 1, 1, 1], PoolMode::Max, false, [1, 56, 56, 24]),
        // 60 channels: a whole group of 32 on AVX2, then 28 (four vectors, the last partial).
        ([2, 2], [2, 2], [0; 4], PoolMode::Average { count_include_pad: false }, false, [1, 14, 14, 60]),
        // SqueezeNet's ceil-mode pool: 3×3/2, no pad, an odd map.
        ([3, 3], [2, 2], [0; 4], PoolMode::Max, true, [1, 55, 55, 96]),
        // DenseNet's transition: 2×2/2 average (divisor 4: exact).
        ([2, 2], [2, 2], [0; 4], PoolMode::Average { count_include_pad: false }, false, [2, 28, 28, 130]),
        // Inception's stride-1 3×3 average with its pads counted (divisor 9: within bounds).
        ([3, 3], [1, 1], [1, 1, 1, 1], PoolMode::Average { count_include_pad: true }, false, [1, 9, 7, 17]),
    ];
    for (kernel, strides, pads, mode, ceil, dims) in cases {
        let exact = mode == PoolMode::Max || kernel == [2, 2];
        for par in [Parallelism::Sequential, Parallelism::Threads] {
            let case = PoolCase {
                params: PoolParams { kernel, strides, dilations: [1, 1], pads, mode },
                ceil,
                dims,
                par,
                seed: dims.iter().sum::<usize>() as u64,
            };
            case.check(set, exact).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Global average pools (the window is the whole unpadded map), which the sets sum in parts of
/// the map and then add the parts: within the bound on random data, exact on integers where the
/// map's pixel count is a power of two, every output written, and the same bits sequentially
/// and on 1–4 threads. The maps cover one part, many parts with a short last one (56×56×16),
/// parts of a few pixels (7×7 of 576 and 1280 channels), channels ending in a partial vector,
/// several images and a single pixel.
pub fn global_average_pools_match_reference(set: &dyn KernelSet) {
    let average = PoolMode::Average { count_include_pad: false };
    for dims in [
        [1, 56, 56, 16],
        [1, 7, 7, 576],
        [2, 7, 7, 1280],
        [3, 5, 3, 70],
        [2, 14, 14, 200],
        [1, 16, 16, 3],
        [2, 1, 1, 5],
    ] {
        let params =
            PoolParams { kernel: [dims[1], dims[2]], strides: [1, 1], dilations: [1, 1], pads: [0; 4], mode: average };
        let case = PoolCase { params, ceil: false, dims, par: Parallelism::Sequential, seed: dims[3] as u64 };
        case.check(set, false).unwrap_or_else(|e| panic!("{e}"));
        if (dims[1] * dims[2]).is_power_of_two() {
            case.check(set, true).unwrap_or_else(|e| panic!("{e}"));
        }
        let input = case.input(false);
        let sequential = case.run(set, &input).expect("sequential pool");
        let threaded = PoolCase { par: Parallelism::Threads, ..case.clone() };
        let differs =
            super::thread_count_that_differs(&sequential, || threaded.run(set, &input).expect("threaded pool"));
        assert_eq!(
            differs,
            None,
            "{}: global pool {dims:?}: thread counts that differ from sequential",
            set.info().name
        );
    }
}

/// Mismatched images, empty windows and windows starting past the input are errors that name
/// the problem; nothing panics.
pub fn bad_pools_are_errors(set: &dyn KernelSet) {
    let input = vec![1.0f32; 2 * 8 * 8 * 3];
    let x = || ImageRef::new(&input, [2, 8, 8, 3]).expect("input");
    let max = PoolParams { kernel: [2, 2], strides: [2, 2], dilations: [1, 1], pads: [0; 4], mode: PoolMode::Max };
    let run = |od: [usize; 4], p: PoolParams| {
        let mut out = vec![0.0f32; od.iter().product()];
        set.pool2d(x(), ImageMut::new(&mut out, od).expect("output"), &p, Parallelism::Sequential)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    run([2, 4, 4, 3], max).expect("a valid pool");
    let e = run([2, 4, 4, 4], max).expect_err("channel mismatch");
    assert!(e.contains("2×8×8×3") && e.contains("2×4×4×4"), "{e}");
    let e = run([1, 4, 4, 3], max).expect_err("image count mismatch");
    assert!(e.contains("1×4×4×3"), "{e}");
    let e = run([2, 4, 4, 3], PoolParams { strides: [0, 2], ..max }).expect_err("zero stride");
    assert!(e.contains("positive"), "{e}");
    let e = run([2, 4, 4, 3], PoolParams { kernel: [2, 0], ..max }).expect_err("empty window");
    assert!(e.contains("positive"), "{e}");
    let e = run([2, 5, 4, 3], max).expect_err("a window past the input");
    assert!(e.contains("spatial axis 0"), "{e}");
}
