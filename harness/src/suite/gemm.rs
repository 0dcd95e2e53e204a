//! The GEMM checks every kernel set must pass, written once.
//!
//! Each function takes a `&dyn KernelSet` and panics with a precise message on the first
//! failure; `harness/tests/kernel_sets.rs` instantiates them for every set. Outputs are
//! poisoned with a marked NaN before each run: unwritten elements fail the parity check, and
//! padding between rows that a kernel wrongly writes is caught because it must keep the mark.
//! Inputs' padding holds NaN too, so a kernel that reads outside its view produces NaN.

use kernels::{Activation, BOperand, Bias, Epilogue, KernelSet, MatMut, MatRef, PackedB, Parallelism};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::error::{Error, Result};
use crate::parity::{compare, Parity};
use crate::reference;
use crate::rng::SplitMix;

/// The poison written into outputs before a kernel runs: a NaN with a recognisable payload.
pub const POISON_BITS: u32 = 0x7fc0_dead;

/// How a matrix is laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Dense rows.
    RowMajor,
    /// Dense columns (a transposed operand).
    ColMajor,
    /// Rows with `pad` unused elements after each.
    Padded(usize),
}

/// Which bias a case uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasKind {
    /// None.
    None,
    /// One value per output row.
    PerRow,
    /// One value per output column.
    PerCol,
}

/// A matrix stored in some layout, with NaN (or poison) in the unused slots.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Backing storage.
    pub data: Vec<f32>,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl Stored {
    /// Lays out row-major `values` (`rows × cols`) in `layout`; unused slots hold `fill`.
    pub fn new(values: &[f32], rows: usize, cols: usize, layout: Layout, fill: f32) -> Self {
        let (rs, cs) = match layout {
            Layout::RowMajor => (cols, 1),
            Layout::ColMajor => (1, rows),
            Layout::Padded(pad) => (cols + pad, 1),
        };
        let len = if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 };
        let mut data = vec![fill; len + 3]; // a few slots past the end, to catch overruns
        for r in 0..rows {
            for c in 0..cols {
                data[r * rs + c * cs] = values[r * cols + c];
            }
        }
        Self { data, rows, cols, rs, cs }
    }

    /// The view of the stored matrix.
    pub fn view(&self) -> MatRef<'_> {
        MatRef::new(&self.data, self.rows, self.cols, self.rs, self.cs).expect("test matrix view")
    }

    /// A mutable view of the stored matrix.
    pub fn view_mut(&mut self) -> MatMut<'_> {
        MatMut::new(&mut self.data, self.rows, self.cols, self.rs, self.cs).expect("test output view")
    }

    /// Element `(r, c)`.
    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }

    /// Every slot outside the view that no longer holds the poison.
    pub fn clobbered_padding(&self) -> Vec<usize> {
        let mut in_view = vec![false; self.data.len()];
        for r in 0..self.rows {
            for c in 0..self.cols {
                in_view[r * self.rs + c * self.cs] = true;
            }
        }
        (0..self.data.len()).filter(|&i| !in_view[i] && self.data[i].to_bits() != POISON_BITS).collect()
    }
}

/// One GEMM test case: shapes, layouts, epilogue, operand form and data seed.
#[derive(Debug, Clone)]
pub struct GemmCase {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Layout of A.
    pub a: Layout,
    /// Layout of B (ignored when pre-packed).
    pub b: Layout,
    /// Layout of C.
    pub c: Layout,
    /// Bias.
    pub bias: BiasKind,
    /// Residual layout, if any.
    pub residual: Option<Layout>,
    /// Activation.
    pub activation: Activation,
    /// Whether B is packed ahead of time.
    pub prepacked: bool,
    /// Threads: sequential or the rayon pool.
    pub par: Parallelism,
    /// Data seed.
    pub seed: u64,
}

/// Operands of a case, materialised.
pub struct Operands {
    /// A (m × k).
    pub a: Stored,
    /// B (k × n).
    pub b: Stored,
    /// Bias values.
    pub bias: Vec<f32>,
    /// Residual, if any.
    pub residual: Option<Stored>,
}

impl GemmCase {
    /// A plain row-major case with no epilogue.
    pub fn plain(m: usize, n: usize, k: usize) -> Self {
        GemmCase {
            m,
            n,
            k,
            a: Layout::RowMajor,
            b: Layout::RowMajor,
            c: Layout::RowMajor,
            bias: BiasKind::None,
            residual: None,
            activation: Activation::Identity,
            prepacked: false,
            par: Parallelism::Sequential,
            seed: 1,
        }
    }

    /// Builds the operands, either uniform in [-scale, scale) or small integers (exact in f32).
    pub fn operands(&self, scale: f32, integers: bool) -> Operands {
        let mut rng = SplitMix::new(self.seed);
        let mut gen = |len: usize| -> Vec<f32> {
            (0..len).map(|_| if integers { rng.int(-3, 3) } else { rng.uniform(-scale, scale) }).collect()
        };
        let (av, bv) = (gen(self.m * self.k), gen(self.k * self.n));
        let bias = match self.bias {
            BiasKind::None => vec![],
            BiasKind::PerRow => gen(self.m),
            BiasKind::PerCol => gen(self.n),
        };
        let rv = gen(self.m * self.n);
        Operands {
            a: Stored::new(&av, self.m, self.k, self.a, f32::NAN),
            b: Stored::new(&bv, self.k, self.n, self.b, f32::NAN),
            bias,
            residual: self.residual.map(|l| Stored::new(&rv, self.m, self.n, l, f32::NAN)),
        }
    }

    /// The epilogue over materialised operands.
    pub fn epilogue<'a>(&self, ops: &'a Operands) -> Epilogue<'a> {
        Epilogue {
            bias: match self.bias {
                BiasKind::None => Bias::None,
                BiasKind::PerRow => Bias::PerRow(&ops.bias),
                BiasKind::PerCol => Bias::PerCol(&ops.bias),
            },
            residual: ops.residual.as_ref().map(Stored::view),
            activation: self.activation,
        }
    }

    /// Runs the case on `set` into a poisoned output; returns the output.
    pub fn run(&self, set: &dyn KernelSet, ops: &Operands) -> Result<Stored> {
        let poison = f32::from_bits(POISON_BITS);
        let mut c = Stored::new(&vec![poison; self.m * self.n], self.m, self.n, self.c, poison);
        let packed;
        let b = if self.prepacked {
            packed = set.pack_b(ops.b.view());
            BOperand::Packed(&packed)
        } else {
            BOperand::Matrix(ops.b.view())
        };
        set.gemm(ops.a.view(), b, c.view_mut(), &self.epilogue(ops), self.par)?;
        let clobbered = c.clobbered_padding();
        if !clobbered.is_empty() {
            return Err(Error::mismatch(
                format!("{}: {self:?}", set.info().name),
                format!("kernel wrote outside the output view at slots {:?}", &clobbered[..clobbered.len().min(8)]),
            ));
        }
        Ok(c)
    }

    /// Runs the case and compares with the float64 reference.
    pub fn check(&self, set: &dyn KernelSet, scale: f32) -> Result<Parity> {
        let ops = self.operands(scale, false);
        let c = self.run(set, &ops)?;
        let r = reference::gemm(&ops.a.view(), &ops.b.view(), &self.epilogue(&ops));
        let parity = compare(&r, |i, j| c.at(i, j));
        match parity.first_violation {
            None => Ok(parity),
            Some((i, j, got, want, bound)) => Err(Error::mismatch(
                format!("{}: {self:?}", set.info().name),
                format!(
                    "C[{i},{j}] = {got} but reference is {want} (bound {bound:e}, max ratio {:.2})",
                    parity.max_bound_ratio
                ),
            )),
        }
    }
}

/// Sizes worth testing for this set: primes, and sizes at and around the tile and cache blocks.
pub fn interesting_sizes(set: &dyn KernelSet) -> Vec<usize> {
    let i = set.info();
    let (mr, nr, kc, mc) = (i.mr, i.nr, i.blocking.kc, i.blocking.mc);
    let mut v = vec![1, 2, 3, 5, 7, 11, 13, 17, 31, 61, 127, 251, 293];
    for base in [mr, 2 * mr, nr, 2 * nr, kc, mc] {
        v.extend([base - 1, base, base + 1]);
    }
    v.retain(|&s| s > 0 && s <= 600);
    v.sort_unstable();
    v.dedup();
    v
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::RowMajor), Just(Layout::ColMajor), (1usize..5).prop_map(Layout::Padded)]
}

/// Proptest over m, n, k in 1..=300 plus the interesting sizes, every layout, bias, residual,
/// activation, packed and unpacked B, sequential and threaded.
pub fn random_cases_match_reference(set: &dyn KernelSet) {
    let sizes = interesting_sizes(set);
    let dim = || prop_oneof![3 => 1usize..=300, 2 => proptest::sample::select(sizes.clone())];
    let bias = proptest::sample::select(vec![BiasKind::None, BiasKind::PerRow, BiasKind::PerCol]);
    let strategy = (
        (dim(), dim(), dim()),
        (layout(), layout(), layout()),
        (bias, proptest::option::of(layout()), proptest::sample::select(kernels::epilogue_activations(set.info().id))),
        (any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(|((m, n, k), (a, b, c), (bias, residual, activation), (prepacked, threaded, seed))| GemmCase {
            m,
            n,
            k,
            a,
            b,
            c,
            bias,
            residual,
            activation,
            prepacked,
            par: if threaded { Parallelism::Threads } else { Parallelism::Sequential },
            seed,
        });
    let config = Config { failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result =
        runner.run(&strategy, |case| case.check(set, 1.0).map(|_| ()).map_err(|e| TestCaseError::fail(e.to_string())));
    if let Err(e) = result {
        panic!("{}: {e}", set.info().name);
    }
}

/// Every activation × bias kind × residual on a shape with edge tiles in both directions.
pub fn every_epilogue_matches_reference(set: &dyn KernelSet) {
    let i = set.info();
    for activation in kernels::epilogue_activations(set.info().id) {
        for bias in [BiasKind::None, BiasKind::PerRow, BiasKind::PerCol] {
            for residual in [None, Some(Layout::RowMajor), Some(Layout::ColMajor)] {
                let case = GemmCase { bias, residual, activation, ..GemmCase::plain(2 * i.mr + 1, 2 * i.nr + 3, 37) };
                case.check(set, 1.0).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

/// Sigmoid, HardSwish and HardSigmoid over pre-activations up to ±120 (exp's clamping range).
pub fn activations_hold_over_wide_range(set: &dyn KernelSet) {
    for activation in [Activation::Sigmoid, Activation::HardSwish, Activation::HardSigmoid { alpha: 0.2, beta: 0.5 }] {
        let case = GemmCase { activation, bias: BiasKind::PerCol, ..GemmCase::plain(29, 45, 16) };
        // |pre| up to 16·(4·4) + 4 ≈ 260; most land in ±60.
        case.check(set, 4.0).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Integer-valued operands are exact in f32: the output must equal the reference exactly,
/// across tile edges, several K passes (k > KC), several M blocks and several N blocks.
pub fn integer_cases_are_exact(set: &dyn KernelSet) {
    let i = set.info();
    let (mr, nr, b) = (i.mr, i.nr, i.blocking);
    let shapes = [
        (1, 1, 1),
        (mr, nr, 1),
        (mr + 1, nr + 1, b.kc + 1),
        (2 * b.mc + 3, 3 * nr + 5, 2 * b.kc + 7),
        (3, b.nc + nr + 1, 5),
        (mr - 1, 1, 3 * b.kc),
        // Row tiles: one row (a GEMV) and a full panel plus a row or two, across K passes.
        (1, 3 * nr + 5, 2 * b.kc + 7),
        (mr + 2, 2 * nr + 1, b.kc + 3),
    ];
    let epilogues = [
        (BiasKind::None, None, Activation::Identity),
        (BiasKind::PerCol, Some(Layout::Padded(3)), Activation::Relu),
        (BiasKind::PerRow, Some(Layout::ColMajor), Activation::Clip { min: -7.0, max: 50.0 }),
    ];
    for (m, n, k) in shapes {
        for (bias, residual, activation) in epilogues {
            for prepacked in [false, true] {
                let case = GemmCase {
                    bias,
                    residual,
                    activation,
                    prepacked,
                    seed: (m * 31 + n * 7 + k) as u64,
                    ..GemmCase::plain(m, n, k)
                };
                let ops = case.operands(1.0, true);
                let c = case.run(set, &ops).unwrap_or_else(|e| panic!("{case:?}: {e}"));
                let r = reference::gemm(&ops.a.view(), &ops.b.view(), &case.epilogue(&ops));
                for row in 0..m {
                    for col in 0..n {
                        let (got, want) = (c.at(row, col), r.value[row * n + col]);
                        assert!(
                            got as f64 == want,
                            "{}: {case:?}: C[{row},{col}] = {got}, exact answer {want}",
                            set.info().name
                        );
                    }
                }
            }
        }
    }
}

/// Empty shapes: m or n = 0 writes nothing; k = 0 gives activation(bias + residual).
pub fn degenerate_shapes(set: &dyn KernelSet) {
    for (m, n) in [(0, 5), (5, 0), (0, 0)] {
        let case = GemmCase::plain(m, n, 3);
        let ops = case.operands(1.0, false);
        case.run(set, &ops).unwrap_or_else(|e| panic!("{m}x{n}: {e}"));
    }
    let case = GemmCase {
        bias: BiasKind::PerCol,
        residual: Some(Layout::RowMajor),
        activation: Activation::Relu,
        ..GemmCase::plain(7, 19, 0)
    };
    case.check(set, 1.0).unwrap_or_else(|e| panic!("k = 0: {e}"));
}

/// The same product with 1, 2, 3 and 4 rayon threads and sequentially: identical bits.
pub fn results_do_not_depend_on_thread_count(set: &dyn KernelSet) {
    let i = set.info();
    let mut case = GemmCase {
        bias: BiasKind::PerCol,
        residual: Some(Layout::RowMajor),
        activation: Activation::HardSwish,
        ..GemmCase::plain(2 * i.blocking.mc + 5, 5 * i.nr + 3, 2 * i.blocking.kc + 3)
    };
    let ops = case.operands(1.0, false);
    let baseline: Vec<u32> = case.run(set, &ops).expect("sequential run").data.iter().map(|v| v.to_bits()).collect();
    case.par = Parallelism::Threads;
    for threads in 1..=4 {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        for prepacked in [false, true] {
            case.prepacked = prepacked;
            let out = pool.install(|| case.run(set, &ops)).expect("threaded run");
            let bits: Vec<u32> = out.data.iter().map(|v| v.to_bits()).collect();
            assert!(bits == baseline, "{}: {threads} threads (prepacked {prepacked}) differ from sequential", i.name);
        }
    }
}

/// Packed weights: serialization round trip, same bits as on-the-fly packing, refusal of
/// corrupt blobs and of blobs packed for another set.
pub fn packed_weights_round_trip(set: &dyn KernelSet, other: &dyn KernelSet) {
    let case = GemmCase {
        bias: BiasKind::PerCol,
        activation: Activation::RELU6,
        ..GemmCase::plain(23, 2 * set.info().nr + 5, 41)
    };
    let ops = case.operands(1.0, false);
    let packed = set.pack_b(ops.b.view());
    assert_eq!((packed.k(), packed.n(), packed.kernel()), (41, case.n, set.info().name));
    let bytes = packed.to_bytes();
    let back = PackedB::from_bytes(&bytes).expect("round trip");
    assert_eq!(back, packed);
    let fresh = case.run(set, &ops).expect("unpacked run");
    let mut c = Stored::new(&vec![f32::NAN; case.m * case.n], case.m, case.n, Layout::RowMajor, f32::NAN);
    set.gemm(ops.a.view(), BOperand::Packed(&back), c.view_mut(), &case.epilogue(&ops), Parallelism::Sequential)
        .expect("packed run");
    assert!(
        (0..case.m).all(|i| (0..case.n).all(|j| c.at(i, j).to_bits() == fresh.at(i, j).to_bits())),
        "pre-packed and on-the-fly results differ"
    );
    // Corruptions: every one is an error, never a panic.
    let mut bad_magic = bytes.clone();
    bad_magic[0] ^= 0xff;
    let mut bad_version = bytes.clone();
    bad_version[4] = 9;
    let mut bad_nr = bytes.clone();
    let name_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    bad_nr[12 + name_len..16 + name_len].copy_from_slice(&0u32.to_le_bytes());
    for (what, blob) in [
        ("empty", vec![]),
        ("truncated", bytes[..bytes.len() - 1].to_vec()),
        ("extended", [bytes.clone(), vec![0]].concat()),
        ("bad magic", bad_magic),
        ("bad version", bad_version),
        ("zero nr", bad_nr),
    ] {
        assert!(PackedB::from_bytes(&blob).is_err(), "{what} blob was accepted");
    }
    // Weights packed by another set are refused.
    let foreign = other.pack_b(ops.b.view());
    if foreign.kernel() != set.info().name {
        let err = set.gemm(
            ops.a.view(),
            BOperand::Packed(&foreign),
            c.view_mut(),
            &Epilogue::none(),
            Parallelism::Sequential,
        );
        assert!(err.is_err(), "weights packed for {} accepted by {}", foreign.kernel(), set.info().name);
    }
}

/// Mismatched shapes and bad epilogues are errors, not panics.
pub fn bad_shapes_are_errors(set: &dyn KernelSet) {
    let a = vec![1.0; 12];
    let b = vec![1.0; 12];
    let mut c = vec![0.0; 16];
    let av = MatRef::row_major(&a, 3, 4).unwrap();
    let gemm = |b: MatRef<'_>, c: MatMut<'_>, epi: &Epilogue<'_>| {
        set.gemm(av, BOperand::Matrix(b), c, epi, Parallelism::Sequential)
    };
    let bv = MatRef::row_major(&b, 4, 3).unwrap();
    assert!(
        gemm(MatRef::row_major(&b, 3, 4).unwrap(), MatMut::row_major(&mut c, 3, 4).unwrap(), &Epilogue::none())
            .is_err(),
        "k mismatch"
    );
    assert!(gemm(bv, MatMut::row_major(&mut c, 4, 3).unwrap(), &Epilogue::none()).is_err(), "C shape");
    let short = [0.0; 2];
    let epi = Epilogue { bias: Bias::PerCol(&short), ..Epilogue::none() };
    assert!(gemm(bv, MatMut::row_major(&mut c, 3, 3).unwrap(), &epi).is_err(), "bias length");
    let epi = Epilogue { bias: Bias::PerRow(&short), ..Epilogue::none() };
    assert!(gemm(bv, MatMut::row_major(&mut c, 3, 3).unwrap(), &epi).is_err(), "row bias length");
    let res = vec![0.0; 16];
    let epi = Epilogue { residual: Some(MatRef::row_major(&res, 4, 4).unwrap()), ..Epilogue::none() };
    assert!(gemm(bv, MatMut::row_major(&mut c, 3, 3).unwrap(), &epi).is_err(), "residual shape");
    let epi = Epilogue { activation: Activation::Clip { min: 2.0, max: 1.0 }, ..Epilogue::none() };
    assert!(gemm(bv, MatMut::row_major(&mut c, 3, 3).unwrap(), &epi).is_err(), "clip bounds");
    assert!(MatRef::row_major(&a, 4, 4).is_err(), "view past the slice");
    assert!(MatMut::new(&mut c, 2, 2, 1, 1).is_err(), "overlapping output view");
}
