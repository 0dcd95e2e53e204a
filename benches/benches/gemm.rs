//! f32 GEMM benchmarks: every kernel set this host runs, against peers in the same groups.
//!
//! Groups (throughput in FLOP/s, read as tables):
//! - `peak_fma`: each set's FMA throughput probe — the ceiling every figure is a fraction of;
//! - `gemm_square_1t` / `gemm_square_mt`: m = n = k in `SQUARE_SIZES`, one thread / all threads;
//! - `conv1x1_1t` / `conv1x1_mt`: the GEMMs of a mobile CNN's pointwise convolutions.
//!
//! Peers: the `gemm` crate, `matrixmultiply` (single thread only: its thread count is fixed
//! per process by an environment variable) and tract-linalg (kernel picked by
//! `MmmDispatch::native().pick`, weights packed ahead, activations packed inside the timing,
//! `AddMatMul` + `Store`). Our weights (B) are pre-packed ahead as a package carries them;
//! the activations (A) are packed inside the timing, as for tract.
//!
//! `cargo run -p edgepack-benches --bin perf-table` turns the results into the table of
//! docs/performance.md.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgepack_benches::{gemm_flops, CONV1X1_SHAPES, PEAK_ITERATIONS, SCALAR_MAX_SIZE, SQUARE_SIZES};
use kernels::{host_kernel_sets, BOperand, Epilogue, KernelSet, KernelSetId, MatMut, MatRef, PackedB, Parallelism};
use tract_data::prelude::{DatumType, Tensor};
use tract_linalg::mmm::{AsInputValue, FusedSpec, MMMInputValue, MatMatMul, Query};
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_linalg::MmmDispatch;

/// One problem's operands, shared by every contender.
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Problem {
    fn new(m: usize, n: usize, k: usize) -> Self {
        let a = (0..m * k).map(|i| ((i * 7 + 3) % 17) as f32 * 0.0625 - 0.5).collect();
        let b = (0..k * n).map(|i| ((i * 5 + 1) % 13) as f32 * 0.0625 - 0.4).collect();
        Self { m, n, k, a, b, c: vec![0.0; m * n] }
    }
}

fn ours(set: &dyn KernelSet, p: &mut Problem, packed: &PackedB, par: Parallelism) {
    set.gemm(
        MatRef::row_major(&p.a, p.m, p.k).expect("A"),
        BOperand::Packed(packed),
        MatMut::row_major(&mut p.c, p.m, p.n).expect("C"),
        &Epilogue::none(),
        par,
    )
    .expect("gemm");
}

fn gemm_crate(p: &mut Problem, par: gemm::Parallelism) {
    let (m, n, k) = (p.m, p.n, p.k);
    // SAFETY: row-major buffers of exactly m·k, k·n and m·n values with the strides given.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            p.c.as_mut_ptr(),
            1,
            n as isize,
            false,
            p.a.as_ptr(),
            1,
            k as isize,
            p.b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

fn matrixmultiply(p: &mut Problem) {
    let (m, n, k) = (p.m, p.n, p.k);
    // SAFETY: row-major buffers of exactly m·k, k·n and m·n values with the strides given.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            p.a.as_ptr(),
            k as isize,
            1,
            p.b.as_ptr(),
            n as isize,
            1,
            0.0,
            p.c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// tract-linalg's f32 matmul with B packed ahead.
struct Tract {
    mmm: Box<dyn MatMatMul>,
    packing: usize,
    a: Tensor,
    pb: Box<dyn MMMInputValue>,
    c: Tensor,
}

impl Tract {
    fn new(p: &Problem) -> Self {
        let query = Query::plain(DatumType::F32, Some(p.m), Some(p.k), Some(p.n));
        let (mmm, packing, _) = MmmDispatch::native().pick(&query).expect("tract has an f32 kernel");
        let a = Tensor::from_shape(&[p.m, p.k], &p.a).expect("A tensor");
        let b = Tensor::from_shape(&[p.k, p.n], &p.b).expect("B tensor");
        let pb = mmm.packings()[packing].1.prepare_one(&b, 0, 1).expect("pack B");
        let c = Tensor::zero::<f32>(&[p.m, p.n]).expect("C tensor");
        Self { mmm, packing, a, pb, c }
    }

    fn run(&mut self, m: usize, n: usize) {
        let pa = self.mmm.packings()[self.packing].0.prepare_one(&self.a, 1, 0).expect("pack A");
        // SAFETY: the store view wraps C, an m×n f32 tensor, and the packed operands come
        // from this kernel's own packings.
        unsafe {
            let store = self.mmm.c_view(Some(0), Some(1)).wrap(&self.c.view_mut());
            let ops = [
                FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(&*pa),
                    b: AsInputValue::Borrowed(&*self.pb),
                    packing: self.packing,
                },
                FusedSpec::Store(store),
            ];
            self.mmm.run(m, n, &ops).expect("tract matmul");
        }
    }
}

fn configure() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

fn peak(c: &mut Criterion) {
    let mut group = c.benchmark_group("peak_fma");
    for set in host_kernel_sets().0 {
        let info = set.info().clone();
        group.throughput(Throughput::Elements((PEAK_ITERATIONS * info.peak_flops_per_iter) as u64));
        group.bench_function(info.name, |b| b.iter(|| std::hint::black_box(set.fma_loop(PEAK_ITERATIONS))));
    }
    group.finish();
}

/// Benchmarks every contender on one shape; `label` names the shape within the group.
fn contenders(c: &mut Criterion, group: &str, label: &str, (m, n, k): (usize, usize, usize), threaded: bool) {
    let threads = rayon::current_num_threads();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(gemm_flops(m, n, k)));
    let mut p = Problem::new(m, n, k);
    let par = if threaded { Parallelism::Rayon } else { Parallelism::Sequential };
    for set in host_kernel_sets().0 {
        if set.info().id == KernelSetId::Scalar && m.max(n).max(k) > SCALAR_MAX_SIZE && m == n {
            continue;
        }
        let packed = set.pack_b(MatRef::row_major(&p.b, k, n).expect("B"));
        g.bench_function(BenchmarkId::new(format!("edgepack-{}", set.info().name), label), |bch| {
            bch.iter(|| ours(&*set, &mut p, &packed, par))
        });
    }
    let gpar = if threaded { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    g.bench_function(BenchmarkId::new("gemm", label), |bch| bch.iter(|| gemm_crate(&mut p, gpar)));
    if !threaded {
        g.bench_function(BenchmarkId::new("matrixmultiply", label), |bch| bch.iter(|| matrixmultiply(&mut p)));
    }
    let mut tract = Tract::new(&p);
    if threaded {
        let executor = Executor::multithread(threads);
        g.bench_function(BenchmarkId::new("tract", label), |bch| {
            bch.iter(|| multithread_tract_scope(executor.clone(), || tract.run(m, n)))
        });
    } else {
        g.bench_function(BenchmarkId::new("tract", label), |bch| bch.iter(|| tract.run(m, n)));
    }
    g.finish();
}

fn square(c: &mut Criterion) {
    for threaded in [false, true] {
        let group = if threaded { "gemm_square_mt" } else { "gemm_square_1t" };
        for &s in SQUARE_SIZES {
            contenders(c, group, &s.to_string(), (s, s, s), threaded);
        }
    }
}

fn conv1x1(c: &mut Criterion) {
    for threaded in [false, true] {
        let group = if threaded { "conv1x1_mt" } else { "conv1x1_1t" };
        for shape in CONV1X1_SHAPES {
            contenders(c, group, shape.label, (shape.m, shape.n, shape.k), threaded);
        }
    }
}

criterion_group! { name = benches; config = configure(); targets = peak, square, conv1x1 }
criterion_main!(benches);
