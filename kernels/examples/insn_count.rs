//! Runs `reps` f32 GEMMs of one shape with one kernel set, sequentially, and nothing else: the
//! workload that `ci/arm64-insn-count.sh` counts retired instructions of under qemu.
//!
//! `insn_count SET M N K REPS` (SET: scalar, avx2, avx512, neon)

use kernels::{kernel_set, BOperand, Epilogue, KernelSetId, MatMut, MatRef, Parallelism};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: insn_count SET M N K REPS";
    let id = match args.first().map(String::as_str) {
        Some("scalar") => KernelSetId::Scalar,
        Some("avx2") => KernelSetId::Avx2,
        Some("avx512") => KernelSetId::Avx512,
        Some("neon") => KernelSetId::Neon,
        _ => panic!("{usage}"),
    };
    let num = |i: usize| -> usize { args.get(i).and_then(|s| s.parse().ok()).expect(usage) };
    let (m, n, k, reps) = (num(1), num(2), num(3), num(4));
    let set = kernel_set(id).unwrap_or_else(|e| panic!("{e}"));
    let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.125).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.25).collect();
    let packed = set.pack_b(MatRef::row_major(&b, k, n).expect("B"));
    let mut c = vec![0.0; m * n];
    for _ in 0..reps {
        set.gemm(
            MatRef::row_major(&a, m, k).expect("A"),
            BOperand::Packed(&packed),
            MatMut::row_major(&mut c, m, n).expect("C"),
            &Epilogue::none(),
            Parallelism::Sequential,
        )
        .expect("gemm");
    }
    println!("{}", c.iter().sum::<f32>());
}
