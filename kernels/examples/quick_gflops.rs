//! Compares cache blockings of one kernel set, interleaved in one process (peak A B C, peak A B
//! C, …) so that the machine's drifting speed hits every candidate and the FMA peak alike;
//! prints median GFLOP/s and the median per-round fraction of the peak.
//!
//! `cargo run --release -p edgepack-kernels --example quick_gflops -- avx2 1024 256,252,4080 256,96,4080`

#[path = "common/timing.rs"]
mod timing;

use std::time::Instant;

use kernels::{fma_peak_gflops, kernel_set_with_blocking, BOperand, Blocking, Epilogue, MatMut, MatRef, Parallelism};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let id = timing::set_from_arg(args.first().map(String::as_str));
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let sets: Vec<_> = args[2..]
        .iter()
        .map(|spec| {
            let f: Vec<usize> = spec.split(',').map(|x| x.parse().expect("kc,mc,nc")).collect();
            let b = Blocking { kc: f[0], mc: f[1], nc: f[2] };
            (spec.clone(), kernel_set_with_blocking(id, b).expect("blocking"))
        })
        .collect();
    let a: Vec<f32> = (0..size * size).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut c = vec![0.0; size * size];
    let packed = sets[0].1.pack_b(MatRef::row_major(&a, size, size).unwrap());
    let mut times: Vec<Vec<f64>> = vec![vec![]; sets.len()];
    let mut peaks = Vec::new();
    for _ in 0..30 {
        // NaN for sets on portable vectors: they claim no ceiling.
        peaks.push(fma_peak_gflops(&*sets[0].1, 1 << 22).unwrap_or(f64::NAN));
        for (i, (_, set)) in sets.iter().enumerate() {
            let t = Instant::now();
            set.gemm(
                MatRef::row_major(&a, size, size).unwrap(),
                BOperand::Packed(&packed),
                MatMut::row_major(&mut c, size, size).unwrap(),
                &Epilogue::none(),
                Parallelism::Sequential,
            )
            .unwrap();
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    let flops = 2.0 * (size as f64).powi(3);
    let labels: Vec<String> = sets.iter().map(|(spec, _)| spec.clone()).collect();
    timing::report(&labels, &times, &peaks, flops);
}
