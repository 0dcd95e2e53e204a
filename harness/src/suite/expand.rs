//! The fused expansion and depthwise convolution ([`KernelSet::conv2d_expand_depthwise`])
//! against the two [`KernelSet::conv2d`] calls it stands for: the same bits, on random shapes
//! and on maps wide enough that the fused kernel walks several bands per thread. Outputs are
//! poisoned before each run. (The two convolutions are checked against the float64
//! reference by [`crate::suite::conv`].)

use kernels::{Activation, Bias, ConvParams, Epilogue, ImageMut, ImageRef, KernelSet, MatRef, PackedConv, Parallelism};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::error::{Error, Result};
use crate::rng::SplitMix;
use crate::suite::gemm::POISON_BITS;

/// One fused case: a pointwise expansion of `c_in` to `mid` channels, then `depthwise`.
#[derive(Debug, Clone)]
pub struct ExpandCase {
    /// Images, input rows, input columns, input channels.
    pub input: [usize; 4],
    /// The depthwise convolution (its `c_in` is the expansion's output).
    pub depthwise: ConvParams,
    /// The expansion's activation (a bias always).
    pub expand_activation: Activation,
    /// The depthwise convolution's activation, bias and residual.
    pub activation: Activation,
    /// With a bias on the depthwise convolution.
    pub bias: bool,
    /// With a residual on the depthwise convolution.
    pub residual: bool,
    /// Threads: `None` sequential, else a pool of that many.
    pub threads: Option<usize>,
    /// Data seed.
    pub seed: u64,
}

impl ExpandCase {
    /// Runs the case fused and as two convolutions; `Err` names the first differing output.
    pub fn check(&self, set: &dyn KernelSet) -> Result<()> {
        let [n, h, w, c_in] = self.input;
        let p = self.depthwise;
        let mid = p.c_in;
        let mut rng = SplitMix::new(self.seed);
        let mut gen = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect() };
        let pe = ConvParams::new(c_in, mid, [1, 1]);
        let expand = set.pack_conv(&pe, &gen(pe.weight_len()))?;
        let depthwise = set.pack_conv_for_input(&p, &gen(p.weight_len()), [h, w])?;
        let [oh, ow] = p.output_hw(h, w)?;
        let out_dims = [n, oh, ow, p.c_out];
        let len = n * oh * ow * p.c_out;
        let (x, be, bd, res) = (gen(n * h * w * c_in), gen(mid), gen(p.c_out), gen(len));
        let e_epi = Epilogue { bias: Bias::PerCol(&be), residual: None, activation: self.expand_activation };
        let d_epi = Epilogue {
            bias: if self.bias { Bias::PerCol(&bd) } else { Bias::None },
            residual: match self.residual {
                true => Some(MatRef::row_major(&res, n * oh * ow, p.c_out)?),
                false => None,
            },
            activation: self.activation,
        };
        let input = ImageRef::new(&x, self.input)?;
        let par = if self.threads.is_some() { Parallelism::Threads } else { Parallelism::Sequential };
        let separate = || -> kernels::Result<Vec<f32>> {
            let dims = [n, h, w, mid];
            let mut t = vec![f32::from_bits(POISON_BITS); n * h * w * mid];
            set.conv2d(input, &expand, ImageMut::new(&mut t, dims)?, &e_epi, par)?;
            let mut out = vec![f32::from_bits(POISON_BITS); len];
            set.conv2d(ImageRef::new(&t, dims)?, &depthwise, ImageMut::new(&mut out, out_dims)?, &d_epi, par)?;
            Ok(out)
        };
        let fused = || -> kernels::Result<Vec<f32>> {
            let mut out = vec![f32::from_bits(POISON_BITS); len];
            let o = ImageMut::new(&mut out, out_dims)?;
            set.conv2d_expand_depthwise(input, [(&expand, &e_epi), (&depthwise, &d_epi)], o, par)?;
            Ok(out)
        };
        let (want, got) = match self.threads {
            Some(t) => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| Error::case(format!("{self:?}"), format!("a pool of {t} threads: {e}")))?;
                pool.install(|| (separate(), fused()))
            }
            None => (separate(), fused()),
        };
        let (want, got) = (want?, got?);
        match got.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits()) {
            None => Ok(()),
            Some(i) => Err(Error::mismatch(
                format!("{}: {self:?}", set.info().name),
                format!("out[{i}] = {}, the two convolutions give {}", got[i], want[i]),
            )),
        }
    }
}

/// A depthwise convolution of `mid` channels (multiplier `mult`) with these attributes.
fn depthwise(
    mid: usize,
    mult: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
) -> ConvParams {
    ConvParams { strides, dilations, pads, groups: mid, ..ConvParams::new(mid, mid * mult, kernel) }
}

/// Proptest over N 1..=2, maps 1..=24, 1..=12 input and 2..=80 expanded channels, kernels 1,
/// 3, 5, strides and dilations 1..=2, pads 0..=2, multiplier 1..=2, both epilogues, sequential
/// and on 1..=3 threads. Kernels larger than the padded map are grown to fit.
pub fn random_fusions_match_two_convs(set: &dyn KernelSet) {
    let side = || proptest::sample::select(vec![1usize, 3, 5]);
    let acts = proptest::sample::select(kernels::epilogue_activations(set.info().id));
    let strategy = (
        (1usize..=2, 1usize..=24, 1usize..=24, 1usize..=12),
        (2usize..=80, 1usize..=2, (side(), side()), (1usize..=2, 1usize..=2), (1usize..=2, 1usize..=2)),
        [0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2],
        (acts.clone(), acts, any::<bool>(), any::<bool>()),
        (proptest::option::of(1usize..=3), any::<u64>()),
    )
        .prop_map(|((n, h, w, c_in), (mid, mult, k, s, d), pads, (ea, a, bias, residual), (threads, seed))| {
            let p = depthwise(mid, mult, [k.0, k.1], [s.0, s.1], [d.0, d.1], pads);
            // Grow the map until the dilated kernel fits the padded input.
            let h = h.max((p.kernel[0] - 1) * p.dilations[0] + 1);
            let w = w.max((p.kernel[1] - 1) * p.dilations[1] + 1);
            ExpandCase {
                input: [n, h, w, c_in],
                depthwise: p,
                expand_activation: ea,
                activation: a,
                bias,
                residual,
                threads,
                seed,
            }
        });
    let mut runner = TestRunner::new(Config { failure_persistence: None, ..Config::default() });
    if let Err(e) = runner.run(&strategy, |case| case.check(set).map_err(|e| TestCaseError::fail(e.to_string()))) {
        panic!("{}: {e}", set.info().name);
    }
}

/// MobileNet-like blocks on maps whose expanded rows are 128 KiB (256 columns of 128
/// channels): a band holds a few rows on any L2, so every thread walks several bands and
/// keeps rows between them, and two threads' shares meet inside a kernel window.
pub fn wide_fusions_walk_bands(set: &dyn KernelSet) {
    let blocks = [
        ([3, 3], [1, 1], [1, 1, 1, 1]),
        ([3, 3], [2, 2], [1, 1, 1, 1]),
        ([5, 5], [2, 2], [2, 2, 2, 2]),
        ([5, 5], [1, 1], [2, 2, 2, 2]),
    ];
    for (kernel, strides, pads) in blocks {
        for threads in [None, Some(2), Some(3)] {
            let case = ExpandCase {
                input: [2, 13, 256, 8],
                depthwise: depthwise(128, 1, kernel, strides, [1, 1], pads),
                expand_activation: Activation::Clip { min: 0.0, max: 6.0 },
                activation: Activation::HardSwish,
                bias: true,
                residual: strides == [1, 1],
                threads,
                seed: 5,
            };
            case.check(set).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Calls the fused kernel does not take are errors naming the problem: a second convolution
/// not packed as depthwise, an expansion that is not pointwise or has a residual, channel
/// counts that do not chain.
pub fn bad_fusions_are_errors(set: &dyn KernelSet) {
    let pack = |p: ConvParams| -> PackedConv { set.pack_conv(&p, &vec![0.5; p.weight_len()]).expect("pack") };
    let (pw, dw) = (pack(ConvParams::new(4, 8, [1, 1])), pack(depthwise(8, 1, [3, 3], [1, 1], [1, 1], [1; 4])));
    let dense = pack(ConvParams { pads: [1; 4], ..ConvParams::new(8, 8, [3, 3]) });
    let spatial = pack(ConvParams { pads: [1; 4], ..ConvParams::new(4, 8, [3, 3]) });
    let x = vec![1.0; 5 * 5 * 4];
    let res = vec![0.0; 25 * 8];
    let none = Epilogue::none();
    let with_residual = Epilogue { residual: Some(MatRef::row_major(&res, 25, 8).expect("view")), ..none };
    let run = |c_in: usize, e: &PackedConv, e_epi: &Epilogue<'_>, d: &PackedConv| {
        let mut out = vec![0.0; 25 * 8];
        let input = ImageRef::new(&x[..25 * c_in], [1, 5, 5, c_in]).expect("input");
        let o = ImageMut::new(&mut out, [1, 5, 5, 8]).expect("output");
        match set.conv2d_expand_depthwise(input, [(e, e_epi), (d, &none)], o, Parallelism::Sequential) {
            Ok(()) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(run(4, &pw, &none, &dw), "accepted", "{}", set.info().name);
    assert!(run(4, &pw, &none, &dense).contains("depthwise"), "{}", set.info().name);
    assert!(run(4, &spatial, &none, &dw).contains("pointwise"), "{}", set.info().name);
    assert!(run(4, &pw, &with_residual, &dw).contains("residual"), "{}", set.info().name);
    assert!(run(3, &pw, &none, &dw).contains("channels"), "{}", set.info().name);
}
