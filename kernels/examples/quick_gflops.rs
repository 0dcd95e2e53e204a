//! Prints single-thread GFLOP/s of every runnable kernel set at a few square sizes and the
//! FMA peak: a quick look while tuning (the real figures come from `cargo bench`).

use std::time::Instant;

use kernels::{host_kernel_sets, BOperand, Epilogue, MatMut, MatRef, Parallelism};

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![256, 512, 1024] } else { sizes };
    let only = std::env::var("QUICK_SET").ok();
    for set in host_kernel_sets().0 {
        let info = set.info();
        if only.as_deref().is_some_and(|o| o != info.name) {
            continue;
        }
        let iters = 20_000_000;
        let t = Instant::now();
        std::hint::black_box(set.fma_loop(iters));
        let peak = (iters * info.peak_flops_per_iter) as f64 / t.elapsed().as_secs_f64() / 1e9;
        print!("{:8} peak {:7.1} GFLOP/s |", info.name, peak);
        for &s in &sizes {
            let a: Vec<f32> = (0..s * s).map(|i| (i % 7) as f32 * 0.1).collect();
            let b = a.clone();
            let mut c = vec![0.0; s * s];
            let mut best = f64::MAX;
            for _ in 0..10 {
                let t = Instant::now();
                set.gemm(
                    MatRef::row_major(&a, s, s).unwrap(),
                    BOperand::Matrix(MatRef::row_major(&b, s, s).unwrap()),
                    MatMut::row_major(&mut c, s, s).unwrap(),
                    &Epilogue::none(),
                    Parallelism::Sequential,
                )
                .unwrap();
                best = best.min(t.elapsed().as_secs_f64());
            }
            let gf = 2.0 * (s * s * s) as f64 / best / 1e9;
            print!(" {s}: {gf:6.1} ({:4.1}%)", gf / peak * 100.0);
        }
        println!();
    }
}
