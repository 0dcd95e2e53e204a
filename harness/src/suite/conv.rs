//! The convolution checks every kernel set must pass, written once (instantiated in
//! `harness/tests/kernel_sets.rs`). Outputs are poisoned with a marked NaN before each run;
//! residuals are stored with padded rows holding NaN, so reading outside a view shows.

use kernels::{
    Activation, Bias, ConvAlgorithm, ConvKind, ConvParams, Epilogue, ImageMut, ImageRef, KernelSet, KernelSetId,
    MatRef, Parallelism,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::error::{Error, Result};
use crate::parity::{compare, Parity};
use crate::reference;
use crate::rng::SplitMix;
use crate::suite::gemm::POISON_BITS;
use crate::suite::winograd;

/// One convolution test case.
#[derive(Debug, Clone)]
pub struct ConvCase {
    /// Attributes.
    pub params: ConvParams,
    /// Images.
    pub n: usize,
    /// Input rows.
    pub h: usize,
    /// Input columns.
    pub w: usize,
    /// With a per-channel bias.
    pub bias: bool,
    /// With a residual whose rows are padded by this many NaN slots.
    pub residual: Option<usize>,
    /// Activation.
    pub activation: Activation,
    /// Threads allowed.
    pub par: Parallelism,
    /// Data seed.
    pub seed: u64,
    /// Packed for the input's size ([`KernelSet::pack_conv_for_input`]), so the set may pick
    /// the algorithm the size suits (Winograd).
    pub sized: bool,
}

/// A case's data.
#[derive(Debug, Clone)]
pub struct ConvData {
    /// NHWC input.
    pub input: Vec<f32>,
    /// ONNX-layout weights.
    pub weights: Vec<f32>,
    /// Bias, if any.
    pub bias: Option<Vec<f32>>,
    /// Residual storage (rows padded with NaN) and its row stride.
    pub residual: Option<(Vec<f32>, usize)>,
}

impl ConvCase {
    /// A plain case: no bias, residual or activation, sequential.
    pub fn plain(params: ConvParams, n: usize, h: usize, w: usize) -> Self {
        Self {
            params,
            n,
            h,
            w,
            bias: false,
            residual: None,
            activation: Activation::Identity,
            par: Parallelism::Sequential,
            seed: 7,
            sized: false,
        }
    }

    /// Output `[n, oh, ow, c_out]`.
    pub fn output_dims(&self) -> Result<[usize; 4]> {
        let [oh, ow] = self.params.output_hw(self.h, self.w)?;
        Ok([self.n, oh, ow, self.params.c_out])
    }

    /// Random data (integers in −3..=3 when `integers`), deterministic in the seed.
    pub fn data(&self, integers: bool) -> Result<ConvData> {
        let mut rng = SplitMix::new(self.seed);
        let mut gen = |len: usize| -> Vec<f32> {
            (0..len).map(|_| if integers { rng.int(-3, 3) } else { rng.uniform(-1.0, 1.0) }).collect()
        };
        let p = &self.params;
        let [n, oh, ow, c_out] = self.output_dims()?;
        let input = gen(self.n * self.h * self.w * p.c_in);
        let weights = gen(p.weight_len());
        let bias = self.bias.then(|| gen(c_out));
        let residual = self.residual.map(|pad| {
            let rs = c_out + pad;
            let values = gen(n * oh * ow * c_out);
            let mut stored = vec![f32::NAN; n * oh * ow * rs];
            for (r, row) in values.chunks(c_out).enumerate() {
                stored[r * rs..r * rs + c_out].copy_from_slice(row);
            }
            (stored, rs)
        });
        Ok(ConvData { input, weights, bias, residual })
    }

    /// Packs `d`'s weights for `set` (for the input's size when [`ConvCase::sized`]).
    pub fn pack(&self, set: &dyn KernelSet, d: &ConvData) -> Result<kernels::PackedConv> {
        let packed = match self.sized {
            true => set.pack_conv_for_input(&self.params, &d.weights, [self.h, self.w]),
            false => set.pack_conv(&self.params, &d.weights),
        };
        Ok(packed?)
    }

    /// Packs and runs on `set`; returns the output (poisoned before the run).
    pub fn run(&self, set: &dyn KernelSet, d: &ConvData) -> Result<Vec<f32>> {
        self.run_packed(set, &self.pack(set, d)?, d)
    }

    /// Runs pre-packed weights on `set`.
    pub fn run_packed(&self, set: &dyn KernelSet, packed: &kernels::PackedConv, d: &ConvData) -> Result<Vec<f32>> {
        let dims = self.output_dims()?;
        let mut out = vec![f32::from_bits(POISON_BITS); dims.iter().product()];
        let input = ImageRef::new(&d.input, [self.n, self.h, self.w, self.params.c_in])?;
        let output = ImageMut::new(&mut out, dims)?;
        let epi = self.epilogue(d, dims)?;
        set.conv2d(input, packed, output, &epi, self.par)?;
        Ok(out)
    }

    fn epilogue<'a>(&self, d: &'a ConvData, dims: [usize; 4]) -> Result<Epilogue<'a>> {
        let rows = dims[0] * dims[1] * dims[2];
        let residual = match &d.residual {
            Some((v, rs)) => Some(MatRef::new(v, rows, dims[3], *rs, 1)?),
            None => None,
        };
        Ok(Epilogue { bias: d.bias.as_deref().map_or(Bias::None, Bias::PerCol), residual, activation: self.activation })
    }

    /// The float64 reference for this case's data.
    pub fn reference(&self, d: &ConvData) -> Result<reference::Reference> {
        self.finish(d, &self.sums(d)?)
    }

    /// The float64 sums of the reference before the epilogue (see [`ConvCase::finish`]).
    pub fn sums(&self, d: &ConvData) -> Result<reference::ConvSums> {
        let input = ImageRef::new(&d.input, [self.n, self.h, self.w, self.params.c_in])?;
        Ok(reference::conv_sums(&self.params, &input, &d.weights))
    }

    /// The reference for `d` from `sums` of the same input and weights: this case's bias,
    /// residual and activation applied.
    pub fn finish(&self, d: &ConvData, sums: &reference::ConvSums) -> Result<reference::Reference> {
        let epi = self.epilogue(d, self.output_dims()?)?;
        Ok(sums.finish(d.bias.as_deref(), epi.residual.as_ref(), self.activation))
    }

    /// Runs on `set` and compares with the float64 reference under the tolerance model (for
    /// Winograd weights, widened by [`winograd::widen_bound`]).
    pub fn check(&self, set: &dyn KernelSet) -> Result<Parity> {
        let d = self.data(false)?;
        let r = self.reference(&d)?;
        self.check_against(set, &d, r)
    }

    /// [`ConvCase::check`] on given data and its float64 reference `r` (from
    /// [`ConvCase::reference`]), which a caller checking several packings of the same data
    /// computes once.
    pub fn check_against(&self, set: &dyn KernelSet, d: &ConvData, mut r: reference::Reference) -> Result<Parity> {
        let case = || format!("{}: {self:?}", set.info().name);
        let packed = self.pack(set, d).map_err(|e| Error::case(case(), e.to_string()))?;
        let out = self.run_packed(set, &packed, d).map_err(|e| Error::case(case(), e.to_string()))?;
        if packed.algorithm() == kernels::ConvAlgorithm::Winograd {
            winograd::widen_bound(self, d, &mut r);
        }
        let parity = compare(&r, |i, j| out[i * r.n + j]);
        match parity.first_violation {
            None => Ok(parity),
            Some((i, j, got, want, bound)) => {
                Err(Error::mismatch(case(), format!("out[{i},{j}] = {got}, reference {want}, bound {bound:e}")))
            }
        }
    }
}

/// Attributes drawn over the space: groups (dense, grouped, depthwise with a channel
/// multiplier), kernels 1, 2, 3, 5, 7 and non-square, strides and dilations 1..=3, asymmetric
/// pads, `Conv` and `ConvTranspose` (with output padding).
pub fn params_strategy() -> impl Strategy<Value = ConvParams> {
    let side = || proptest::sample::select(vec![1usize, 2, 3, 5, 7]);
    let grouping = prop_oneof![
        // dense: groups 1, channels 1..=24 in, 1..=40 out
        (Just(1usize), 1usize..=24, 1usize..=40),
        // grouped: 2..=6 groups of 1..=8 in, 1..=32 out (packed for the input, those
        // narrower than the set's tile run the direct grouped kernel: every vector count,
        // partial vectors and partial blocks of groups)
        (2usize..=6, 1usize..=8, 1usize..=32),
        // depthwise: 2..=96 groups of 1 in, multiplier 1 or 2
        (2usize..=96, Just(1usize), 1usize..=2),
    ];
    (
        grouping,
        (side(), side()),
        (1usize..=3, 1usize..=3),
        (1usize..=3, 1usize..=3),
        [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        (any::<bool>(), 0usize..3, 0usize..3),
    )
        .prop_map(|((groups, cg_in, cg_out), kernel, strides, dilations, pads, (transpose, op_h, op_w))| {
            let kind = if transpose {
                let max = |a: usize| strides_or_dilation(strides, dilations, a);
                ConvKind::Transposed { output_padding: [op_h % max(0), op_w % max(1)] }
            } else {
                ConvKind::Forward
            };
            ConvParams {
                kind,
                c_in: groups * cg_in,
                c_out: groups * cg_out,
                kernel: [kernel.0, kernel.1],
                strides: [strides.0, strides.1],
                dilations: [dilations.0, dilations.1],
                pads,
                groups,
            }
        })
}

fn strides_or_dilation(s: (usize, usize), d: (usize, usize), axis: usize) -> usize {
    if axis == 0 {
        s.0.max(d.0)
    } else {
        s.1.max(d.1)
    }
}

/// Multiply-adds of the float64 reference above which a random case shrinks its image: keeps
/// each case well under a second, also under emulation.
const REFERENCE_BUDGET: usize = 3_000_000;

/// Proptest over attributes, N in 1..=2, H and W in 1..=40, bias, residual, every activation,
/// sequential and threaded. Cases whose kernel does not fit the padded input are grown until
/// it does; cases beyond the reference budget are shrunk spatially (never dropped).
pub fn random_convs_match_reference(set: &dyn KernelSet) {
    let strategy = (
        params_strategy(),
        (1usize..=2, 1usize..=40, 1usize..=40),
        (
            any::<bool>(),
            proptest::option::of(0usize..3),
            proptest::sample::select(kernels::epilogue_activations(set.info().id)),
        ),
        (any::<bool>(), any::<u64>(), any::<bool>()),
    )
        .prop_map(|(params, (n, h, w), (bias, residual, activation), (threaded, seed, sized))| {
            let mut case = ConvCase {
                params,
                n,
                h,
                w,
                bias,
                residual,
                activation,
                par: if threaded { Parallelism::Threads } else { Parallelism::Sequential },
                seed,
                sized,
            };
            fit(&mut case);
            case
        });
    let config = Config { failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result =
        runner.run(&strategy, |case| case.check(set).map(|_| ()).map_err(|e| TestCaseError::fail(e.to_string())));
    if let Err(e) = result {
        panic!("{}: {e}", set.info().name);
    }
}

/// Grows a case until its kernel fits, then shrinks it to the reference budget.
fn fit(case: &mut ConvCase) {
    while case.output_dims().is_err() {
        case.h += 1;
        case.w += 1;
    }
    let work = |c: &ConvCase| {
        c.output_dims().map_or(0, |[n, oh, ow, co]| n * oh * ow * co * c.params.taps() * c.params.c_in_per_group())
    };
    while work(case) > REFERENCE_BUDGET {
        let (h, w) = ((case.h * 3 / 4).max(1), (case.w * 3 / 4).max(1));
        let smaller = ConvCase { h, w, ..case.clone() };
        if smaller.output_dims().is_err() || (h, w) == (case.h, case.w) {
            break;
        }
        *case = smaller;
    }
}

/// A named case per algorithm and layer type the models use.
pub fn algorithm_cases() -> Vec<(&'static str, ConvCase)> {
    let conv = |c_in, c_out, k: [usize; 2], s: [usize; 2], pads: [usize; 4], groups| ConvParams {
        strides: s,
        pads,
        groups,
        ..ConvParams::new(c_in, c_out, k)
    };
    let tconv = |c_in, c_out, k: [usize; 2], s: [usize; 2], pads: [usize; 4], op: [usize; 2], groups| ConvParams {
        kind: ConvKind::Transposed { output_padding: op },
        strides: s,
        pads,
        groups,
        ..ConvParams::new(c_in, c_out, k)
    };
    let case = |p, h, w| ConvCase::plain(p, 2, h, w);
    // Packed for the input: groups narrower than the tile run the direct grouped kernel.
    let sized = |p, h, w| ConvCase { sized: true, ..case(p, h, w) };
    vec![
        ("pointwise", case(conv(24, 40, [1, 1], [1, 1], [0; 4], 1), 11, 13)),
        ("pointwise grouped", case(conv(12, 18, [1, 1], [1, 1], [0; 4], 3), 7, 9)),
        ("pointwise stride 2", case(conv(16, 24, [1, 1], [2, 2], [0; 4], 1), 9, 10)),
        ("stem 3x3/2 on 3 channels", case(conv(3, 16, [3, 3], [2, 2], [1, 1, 1, 1], 1), 17, 19)),
        // A kernel row of a 3-channel input is one segment of its taps (21 values for ResNet's
        // 7×7/2 stem, a copy where it reaches into the padding at both edges); ConvNeXt's
        // 4×4/4 patches, unpadded, in row panels that run across output rows.
        ("stem 7x7/2 on 3 channels", case(conv(3, 20, [7, 7], [2, 2], [3, 3, 3, 3], 1), 19, 23)),
        ("patchify 4x4/4 on 3 channels", case(conv(3, 24, [4, 4], [4, 4], [0; 4], 1), 20, 28)),
        ("dense 3x3 head", case(conv(20, 33, [3, 3], [1, 1], [1, 1, 1, 1], 1), 9, 8)),
        // 24 and 72 output channels run the wide tiles (AVX2 3×24, AVX-512 6×24; 112 and 70
        // rows leave row tails on both).
        ("dense 3x3 to 24 channels", case(conv(20, 24, [3, 3], [1, 1], [1, 1, 1, 1], 1), 7, 8)),
        ("pointwise to 72 channels", case(conv(16, 72, [1, 1], [1, 1], [0; 4], 1), 5, 7)),
        ("grouped 3x3 to 2x24 channels", case(conv(8, 48, [3, 3], [1, 1], [1, 1, 1, 1], 2), 6, 5)),
        // RegNet's group width 8: 6 groups (a partial block of groups), stride 2, blocks of
        // pixels that run across rows; 13 groups on a 7×7 map, blocks across images.
        ("direct grouped 8/8 3x3/2", sized(conv(48, 48, [3, 3], [2, 2], [1, 1, 1, 1], 6), 13, 11)),
        ("direct grouped 8/8 3x3/1 on 7x7", sized(conv(104, 104, [3, 3], [1, 1], [1, 1, 1, 1], 13), 7, 7)),
        // ResNeXt's width 4 (a partial vector everywhere but NEON), 24 outputs per group
        // dilated (three 8-lane vectors), 12 (one and a half), asymmetric pads.
        ("direct grouped 4/4 3x3", sized(conv(20, 20, [3, 3], [1, 1], [1, 1, 1, 1], 5), 9, 6)),
        (
            "direct grouped 16/24 dilated",
            sized(ConvParams { dilations: [2, 2], ..conv(48, 72, [3, 3], [1, 1], [2, 2, 2, 2], 3) }, 8, 9),
        ),
        ("direct grouped 8/12 5x3", sized(conv(24, 36, [5, 3], [1, 2], [2, 0, 1, 1], 3), 9, 10)),
        (
            "dense 5x2 dilated, asymmetric pads",
            case(ConvParams { dilations: [2, 3], ..conv(5, 7, [5, 2], [1, 2], [0, 2, 3, 1], 1) }, 14, 12),
        ),
        // Bands of output rows that skip the kernel rows falling in the padding (DeepLab's
        // ASPP), and rows of padding only (no taps: the epilogue alone).
        (
            "dense 3x3 dilated 4 on 6 rows",
            case(ConvParams { dilations: [4, 4], ..conv(12, 20, [3, 3], [1, 1], [4, 4, 4, 4], 1) }, 6, 7),
        ),
        ("1x1 padded rows", case(conv(6, 10, [1, 1], [1, 1], [2, 1, 2, 0], 1), 3, 5)),
        ("depthwise 3x3/1", case(conv(35, 35, [3, 3], [1, 1], [1, 1, 1, 1], 35), 9, 11)),
        ("depthwise 3x3/2", case(conv(72, 72, [3, 3], [2, 2], [1, 1, 1, 1], 72), 13, 12)),
        ("depthwise 5x5 (2,1)", case(conv(40, 40, [5, 5], [2, 1], [2, 2, 2, 2], 40), 12, 9)),
        ("depthwise 3x3 (1,2)", case(conv(17, 17, [3, 3], [1, 2], [1, 1, 1, 1], 17), 8, 12)),
        // Banded 3×3 kernels (every set bands up to 16 channels): row stride 2, asymmetric
        // pads, an odd number of output rows (a last band of one row), a width that leaves a
        // partial pixel group, and channels that end in a partial vector.
        ("depthwise 3x3 (2,1) asymmetric", case(conv(12, 12, [3, 3], [2, 1], [0, 1, 2, 0], 12), 12, 14)),
        ("depthwise 3x3/1 unpadded", case(conv(16, 16, [3, 3], [1, 1], [0; 4], 16), 13, 15)),
        ("depthwise 3x3 (1,2) banded", case(conv(14, 14, [3, 3], [1, 2], [1, 2, 0, 1], 14), 9, 17)),
        ("depthwise 3x3/2 banded", case(conv(13, 13, [3, 3], [2, 2], [1, 0, 0, 1], 13), 11, 14)),
        ("depthwise multiplier 2", case(conv(9, 18, [3, 3], [1, 1], [0, 1, 2, 1], 9), 7, 7)),
        // Many channels on maps of a few bands (fewer than the threads' items), channels
        // ending in a partial vector: the row kernel, the banded kernel (on sets with vectors
        // of a cache line) and a channel multiplier.
        ("depthwise 5x5 many channels, few rows", case(conv(200, 200, [5, 5], [1, 1], [2; 4], 200), 3, 5)),
        ("depthwise 3x3 many channels, few rows", case(conv(144, 144, [3, 3], [1, 1], [1; 4], 144), 4, 6)),
        ("depthwise multiplier 2, few rows", case(conv(72, 144, [3, 3], [1, 1], [1, 0, 1, 2], 72), 3, 4)),
        ("transposed 2x2/2 upsample", case(tconv(24, 16, [2, 2], [2, 2], [0; 4], [0, 0], 1), 6, 7)),
        ("transposed 3x3/2 pad 1 out-pad 1", case(tconv(8, 12, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 1), 5, 6)),
        ("transposed grouped 4x3 (3,2)", case(tconv(6, 9, [4, 3], [3, 2], [1, 0, 2, 1], [2, 1], 3), 5, 4)),
        ("transposed 2x2/2 to 24 channels", case(tconv(16, 24, [2, 2], [2, 2], [0; 4], [0, 0], 1), 3, 5)),
        ("transposed kernel smaller than stride", case(tconv(4, 5, [1, 2], [3, 3], [0; 4], [0, 0], 1), 4, 3)),
    ]
}

/// Every algorithm × activation × bias × residual (padded rows), sequential and threaded.
pub fn every_algorithm_and_epilogue(set: &dyn KernelSet) {
    for (name, base) in algorithm_cases() {
        for (i, activation) in kernels::epilogue_activations(set.info().id).into_iter().enumerate() {
            let par = if i % 2 == 0 { Parallelism::Sequential } else { Parallelism::Threads };
            let plain = ConvCase { activation, par, seed: i as u64, ..base.clone() };
            // The four epilogues of a seed share its input and weights (drawn first), so they
            // share the reference's sums: one float64 convolution instead of four.
            let plain_data = plain.data(false).expect("data");
            let sums = plain.sums(&plain_data).expect("reference");
            for (bias, residual) in [(false, None), (true, None), (true, Some(2)), (false, Some(0))] {
                let case = ConvCase { bias, residual, ..plain.clone() };
                let d = case.data(false).expect("data");
                assert!(d.input == plain_data.input && d.weights == plain_data.weights, "{name}: data of seed {i}");
                let r = case.finish(&d, &sums).expect("reference");
                case.check_against(set, &d, r).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

/// Integer-valued data is exact in f32: every algorithm must reproduce the reference exactly,
/// which catches an off-by-one tap or channel that a tolerance could hide.
pub fn integer_convs_are_exact(set: &dyn KernelSet) {
    for (name, base) in algorithm_cases() {
        assert_exact(set, name, ConvCase { bias: true, residual: Some(1), activation: Activation::Relu, ..base });
    }
}

/// Depthwise convolutions on inputs over half the host's last-level cache, where the row
/// kernel prefetches ahead of the pixels it computes (input rows and output) and runs the 3×3
/// stride-2 layers the banded kernel runs on smaller inputs: exact on integer data, every
/// output written.
pub fn large_depthwise_convs_are_exact(set: &dyn KernelSet) {
    let bytes = (kernels::CacheSizes::host().l3 / 2).max(1 << 20) + 1;
    let depthwise = |c: usize, mult: usize, k: usize, strides| ConvParams {
        strides,
        pads: [k / 2; 4],
        groups: c,
        ..ConvParams::new(c, c * mult, [k, k])
    };
    for (name, params) in [
        ("large depthwise 3x3/2", depthwise(64, 1, 3, [2, 2])),
        ("large depthwise 5x5/2 multiplier 2", depthwise(20, 2, 5, [2, 2])),
    ] {
        // A square-ish image just over the size, with a width that leaves partial groups.
        let side = (bytes as f64 / (4 * params.c_in) as f64).sqrt() as usize + 1;
        let case = ConvCase {
            bias: true,
            residual: Some(1),
            activation: Activation::Relu,
            ..ConvCase::plain(params, 1, side, side + 3)
        };
        assert!(case.h * case.w * params.c_in * 4 >= bytes, "{name}: the input is too small to prefetch");
        assert_exact(set, name, case);
    }
}

/// Runs `case` on integer data and asserts every output equals the reference exactly.
fn assert_exact(set: &dyn KernelSet, name: &str, case: ConvCase) {
    let d = case.data(true).expect("data");
    let out = case.run(set, &d).unwrap_or_else(|e| panic!("{name}: {e}"));
    let r = case.reference(&d).expect("reference");
    for (i, (&got, &want)) in out.iter().zip(&r.value).enumerate() {
        assert!(got as f64 == want, "{}: {name}: out[{i}] = {got}, exact answer {want}", set.info().name);
    }
}

/// The same convolutions with 1..=4 rayon threads and sequentially: identical bits.
pub fn conv_results_do_not_depend_on_thread_count(set: &dyn KernelSet) {
    for (name, base) in algorithm_cases() {
        let case = ConvCase { bias: true, residual: Some(0), activation: Activation::HardSwish, n: 3, ..base };
        assert_same_bits_on_any_thread_count(set, name, &case);
    }
}

/// Runs `case` sequentially, then threaded on pools of 1..=4 threads, and asserts identical bits.
pub fn assert_same_bits_on_any_thread_count(set: &dyn KernelSet, name: &str, case: &ConvCase) {
    let d = case.data(false).expect("data");
    let baseline = ConvCase { par: Parallelism::Sequential, ..case.clone() }.run(set, &d).expect("sequential run");
    let threaded = ConvCase { par: Parallelism::Threads, ..case.clone() };
    let differs = super::thread_count_that_differs(&baseline, || threaded.run(set, &d).expect("threaded run"));
    assert_eq!(differs, None, "{}: {name}: thread counts that differ from sequential", set.info().name);
}

/// Packed convolution weights: serialization round trip (same bits out), refusal of corrupt
/// blobs and of weights packed for another set.
pub fn packed_conv_round_trip(set: &dyn KernelSet, other: &dyn KernelSet) {
    for (name, base) in algorithm_cases() {
        let case = ConvCase { bias: true, ..base };
        let d = case.data(false).expect("data");
        let packed = case.pack(set, &d).expect("pack");
        let bytes = packed.to_bytes();
        let back = kernels::PackedConv::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, packed, "{name}: round trip");
        let a = case.run_packed(set, &packed, &d).expect("run");
        let b = case.run_packed(set, &back, &d).expect("run deserialized");
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}: deserialized weights differ");
        for cut in [0, 3, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(kernels::PackedConv::from_bytes(&bytes[..cut]).is_err(), "{name}: truncated at {cut} accepted");
        }
        let mut bad = bytes.clone();
        bad[0] ^= 0xff;
        assert!(kernels::PackedConv::from_bytes(&bad).is_err(), "{name}: bad magic accepted");
        // The groups word (word 15 of the attributes, after magic, version and name) changed
        // to 7: either invalid attributes or parts that no longer match.
        let mut regroup = bytes.clone();
        let at = 12 + set.info().name.len() + 15 * 8;
        regroup[at..at + 8].copy_from_slice(&7u64.to_le_bytes());
        assert!(kernels::PackedConv::from_bytes(&regroup).is_err(), "{name}: altered groups accepted");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(kernels::PackedConv::from_bytes(&extra).is_err(), "{name}: trailing byte accepted");
        if other.info().name != set.info().name {
            let foreign = other.pack_conv(&case.params, &d.weights).expect("pack for the other set");
            let err = case.run_packed(set, &foreign, &d).expect_err("foreign weights accepted");
            assert!(err.to_string().contains("packed"), "{name}: {err}");
        }
    }
}

/// Grouped convolutions packed for their input pick the direct grouped kernel exactly where
/// the groups are narrower than the set's tile (never on the CUDA set), whatever the map
/// size; a blob that claims direct grouped weights for a dense convolution is refused.
pub fn grouped_convs_pick_the_direct_kernel(set: &dyn KernelSet) {
    let info = set.info();
    let direct = |p: &ConvParams| info.id != KernelSetId::Cuda && p.c_out_per_group() < info.nr;
    let grouped = |c: usize, groups: usize| ConvParams { pads: [1; 4], groups, ..ConvParams::new(c, c, [3, 3]) };
    // Groups of 8, 16 and 32 output channels, on a 1×1 and a 56×56 map.
    for (p, side) in [(grouped(48, 6), 1), (grouped(48, 6), 56), (grouped(48, 3), 14), (grouped(64, 2), 14)] {
        let w = vec![0.25; p.weight_len()];
        let got = set.pack_conv_for_input(&p, &w, [side, side]).expect("pack").algorithm();
        let want = if direct(&p) { ConvAlgorithm::Grouped } else { ConvAlgorithm::ImplicitGemm };
        assert_eq!(got, want, "{}: {p:?} on {side}x{side}", info.name);
        assert_eq!(set.pack_conv(&p, &w).expect("pack").algorithm(), ConvAlgorithm::ImplicitGemm, "{p:?} unsized");
    }
    let (p, w) = (grouped(48, 6), vec![0.5; grouped(48, 6).weight_len()]);
    let packed = set.pack_conv_for_input(&p, &w, [9, 9]).expect("pack");
    if packed.algorithm() != ConvAlgorithm::Grouped {
        return;
    }
    // The groups word (15) set to 1: dense attributes under a direct grouped body.
    let mut dense = packed.to_bytes();
    let at = 12 + info.name.len() + 15 * 8;
    dense[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
    let err = kernels::PackedConv::from_bytes(&dense).expect_err("direct grouped weights for a dense conv accepted");
    assert!(err.to_string().contains("grouped"), "{}: {err}", info.name);
}

/// Invalid attributes, mismatched tensors and epilogues are errors naming the problem.
pub fn bad_convs_are_errors(set: &dyn KernelSet) {
    let p = ConvParams { pads: [1; 4], ..ConvParams::new(4, 6, [3, 3]) };
    let expect_err = |params: ConvParams, weights: usize, what: &str| {
        let err = set.pack_conv(&params, &vec![0.0; weights]).expect_err(what);
        assert!(err.to_string().contains(what), "{what}: {err}");
    };
    expect_err(ConvParams { groups: 3, ..p }, 0, "multiples of groups");
    expect_err(ConvParams { strides: [0, 1], ..p }, p.weight_len(), "strides");
    expect_err(ConvParams { kernel: [0, 3], ..p }, 0, "kernel");
    expect_err(p, p.weight_len() - 1, "weights have");
    let tp = ConvParams { kind: ConvKind::Transposed { output_padding: [2, 0] }, strides: [2, 2], ..p };
    expect_err(tp, tp.weight_len(), "output_padding");

    let packed = set.pack_conv(&p, &vec![0.5; p.weight_len()]).expect("pack");
    let input = vec![1.0; 5 * 5 * 4];
    let run = |dims_in: [usize; 4], dims_out: [usize; 4], epi: &Epilogue<'_>| {
        let mut out = vec![0.0; dims_out.iter().product()];
        let input = ImageRef::new(&input[..dims_in.iter().product()], dims_in).expect("input");
        set.conv2d(input, &packed, ImageMut::new(&mut out, dims_out).expect("output"), epi, Parallelism::Sequential)
            .expect_err("bad call accepted")
            .to_string()
    };
    let none = Epilogue::none();
    assert!(run([1, 5, 5, 3], [1, 5, 5, 6], &none).contains("channels"));
    assert!(run([1, 5, 5, 4], [1, 4, 5, 6], &none).contains("expected"));
    let rows_bias = [0.0; 25];
    assert!(run([1, 5, 5, 4], [1, 5, 5, 6], &Epilogue { bias: Bias::PerRow(&rows_bias), ..none })
        .contains("per output channel"));
    let short = [0.0; 5];
    assert!(run([1, 5, 5, 4], [1, 5, 5, 6], &Epilogue { bias: Bias::PerCol(&short), ..none }).contains("bias"));
    let res = [0.0; 25 * 6];
    let transposed = MatRef::new(&res, 25, 6, 1, 25).expect("view");
    assert!(run([1, 5, 5, 4], [1, 5, 5, 6], &Epilogue { residual: Some(transposed), ..none })
        .contains("unit channel stride"));
    // A kernel larger than the padded input.
    let big = ConvParams::new(4, 6, [7, 7]);
    assert!(big.output_hw(5, 5).unwrap_err().to_string().contains("exceeds"));
    assert!(ImageRef::new(&input, [1, 5, 5, 5]).is_err(), "wrong length accepted");
}
