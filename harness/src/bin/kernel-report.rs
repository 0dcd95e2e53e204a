//! `kernel-report`: the parity-and-speed report of every kernel set, as one table.
//!
//! For each set this machine can run: parity against the float64 reference over a fixed list of
//! shapes × every epilogue (max relative error, worst error as a fraction of the allowed bound),
//! the FMA peak of one core, and GEMM speed at one size on one thread and on all threads, also
//! as a fraction of the peak. Sets that cannot run here get a row saying why. Exits non-zero
//! if any parity check fails.
//!
//! `cargo run --release -p edgepack-harness --bin kernel-report [-- --size N]`

use std::time::Instant;

use harness::suite::gemm::{BiasKind, GemmCase, Layout};
use kernels::{
    host_kernel_sets, Activation, BOperand, CacheSizes, Epilogue, KernelSet, MatMut, MatRef, Parallelism, Target,
};

/// Parity of one set over the fixed case list.
struct ParityRow {
    cases: usize,
    failures: usize,
    max_rel: f64,
    max_ratio: f64,
    first_failure: Option<String>,
}

fn parity(set: &dyn KernelSet) -> ParityRow {
    let i = set.info();
    let shapes =
        [(1, 1, 1), (i.mr + 1, i.nr - 1, 17), (37, 53, 61), (2 * i.blocking.mc + 3, 3 * i.nr + 1, i.blocking.kc + 9)];
    let mut row = ParityRow { cases: 0, failures: 0, max_rel: 0.0, max_ratio: 0.0, first_failure: None };
    for (m, n, k) in shapes {
        for activation in Activation::all() {
            for (bias, residual) in [(BiasKind::None, None), (BiasKind::PerCol, Some(Layout::RowMajor))] {
                let case = GemmCase { bias, residual, activation, prepacked: true, ..GemmCase::plain(m, n, k) };
                row.cases += 1;
                match case.check(set, 1.0) {
                    Ok(p) => {
                        row.max_rel = row.max_rel.max(p.max_rel_err);
                        row.max_ratio = row.max_ratio.max(p.max_bound_ratio);
                    }
                    Err(e) => {
                        row.failures += 1;
                        row.first_failure.get_or_insert(e);
                    }
                }
            }
        }
    }
    row
}

/// Median GFLOP/s of an n³ GEMM with pre-packed B.
fn speed(set: &dyn KernelSet, n: usize, par: Parallelism) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7 + 3) % 17) as f32 * 0.0625 - 0.5).collect();
    let mut c = vec![0.0; n * n];
    let packed = set.pack_b(MatRef::row_major(&a, n, n).expect("B"));
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            set.gemm(
                MatRef::row_major(&a, n, n).expect("A"),
                BOperand::Packed(&packed),
                MatMut::row_major(&mut c, n, n).expect("C"),
                &Epilogue::none(),
                par,
            )
            .expect("gemm");
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (n as f64).powi(3) / times[times.len() / 2] / 1e9
}

/// FMA peak of one core in GFLOP/s (best of 5).
fn peak(set: &dyn KernelSet) -> f64 {
    let iters = 4 << 20;
    (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(set.fma_loop(iters));
            (iters * set.info().peak_flops_per_iter) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let threads = rayon::current_num_threads();
    let caches = CacheSizes::host();
    println!("edgepack kernel report");
    println!("host: {} | target: {} | {threads} threads", kernels::host_cpu_name(), Target::host());
    println!("caches: L1d {} KiB, L2 {} KiB, L3 {} KiB", caches.l1d >> 10, caches.l2 >> 10, caches.l3 >> 10);
    println!(
        "parity: {} cases per set (4 shapes × 6 activations × 2 epilogues) against float64; bound (K+2)·ε·Σ|a·b|",
        4 * 6 * 2
    );
    println!();
    println!(
        "| set | ISA | tile | KC/MC/NC | parity | max rel err | worst/bound | peak GFLOP/s | {size}³ 1T GFLOP/s | % peak | {size}³ {threads}T GFLOP/s | % peak |"
    );
    println!("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let (sets, refused) = host_kernel_sets();
    let mut failed = false;
    for set in &sets {
        let i = set.info();
        let p = parity(&**set);
        // The portable set's probe is compiler-generated scalar/SSE code, not an instruction
        // set's FMA ceiling: no peak fraction is claimed for it.
        let pk = if i.id == kernels::KernelSetId::Scalar { f64::NAN } else { peak(&**set) };
        let pct = |g: f64, p: f64| if p.is_nan() { "n/a".to_owned() } else { format!("{:.0}%", g / p * 100.0) };
        let one = speed(&**set, size, Parallelism::Sequential);
        let all = speed(&**set, size, Parallelism::Rayon);
        let verdict = if p.failures == 0 {
            format!("pass {}/{}", p.cases, p.cases)
        } else {
            format!("FAIL {}/{}", p.failures, p.cases)
        };
        failed |= p.failures > 0;
        println!(
            "| {} | {} | {}×{} | {}/{}/{} | {verdict} | {:.1e} | {:.3} | {} | {one:.1} | {} | {all:.1} | {} |",
            i.name,
            i.isa,
            i.mr,
            i.nr,
            i.blocking.kc,
            i.blocking.mc,
            i.blocking.nc,
            p.max_rel,
            p.max_ratio,
            if pk.is_nan() { "n/a".to_owned() } else { format!("{pk:.1}") },
            pct(one, pk),
            pct(all, pk * threads as f64),
        );
        if let Some(e) = p.first_failure {
            eprintln!("{}: first parity failure: {e}", i.name);
        }
    }
    for e in refused {
        if let kernels::KernelError::Unavailable { set, reason } = e {
            println!("| {set} | – | – | – | skipped: {reason} | – | – | – | – | – | – | – |");
        }
    }
    if failed {
        std::process::exit(1);
    }
}
