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
use edgepack_benches::peers::{gemm_crate, matrixmultiply, ours, Problem, Tract};
use edgepack_benches::{gemm_flops, CONV1X1_SHAPES, PEAK_ITERATIONS, SCALAR_MAX_SIZE, SQUARE_SIZES};
use kernels::{host_kernel_sets, KernelSetId, MatRef, Parallelism};
use tract_linalg::multithread::{multithread_tract_scope, Executor};

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
        // Sets on portable vectors claim no ceiling (see `KernelInfo::peak_flops_per_iter`).
        let Some(flops) = info.peak_flops_per_iter else { continue };
        group.throughput(Throughput::Elements((PEAK_ITERATIONS * flops) as u64));
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
    let par = if threaded { Parallelism::Threads } else { Parallelism::Sequential };
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
