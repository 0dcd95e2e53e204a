//! Test suites written once and instantiated for every kernel set (see `harness/tests`).

pub mod conv;
pub mod expand;
pub mod gate;
pub mod gemm;
pub mod pool;
pub mod rows;
pub mod winograd;

/// Runs `run` on rayon pools of 1, 2, 3 and 4 threads and returns the first thread count whose
/// output differs in any bit from `expected` (the sequential run's), or `None`.
pub fn thread_count_that_differs(expected: &[f32], run: impl Fn() -> Vec<f32> + Send + Sync) -> Option<usize> {
    (1..=4).find(|&threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let out = pool.install(&run);
        out.len() != expected.len() || out.iter().zip(expected).any(|(a, b)| a.to_bits() != b.to_bits())
    })
}
