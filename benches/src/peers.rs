//! The contenders of the GEMM benchmarks, shared by the criterion benches and `bench-check`:
//! edgepack's kernel sets and the peers (`gemm`, `matrixmultiply`, tract-linalg), each on the
//! same [`Problem`]. Our weights (B) are pre-packed ahead as a package carries them; tract's B
//! is packed ahead too; activations (A) are packed inside the timing for both.

use kernels::{BOperand, Epilogue, KernelSet, MatMut, MatRef, PackedB, Parallelism};
use tract_data::prelude::{DatumType, Tensor};
use tract_linalg::mmm::{AsInputValue, FusedSpec, MMMInputValue, MatMatMul, Query};
use tract_linalg::MmmDispatch;

/// One problem's operands, shared by every contender.
pub struct Problem {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// A, row-major.
    pub a: Vec<f32>,
    /// B, row-major.
    pub b: Vec<f32>,
    /// C, row-major.
    pub c: Vec<f32>,
}

impl Problem {
    /// Deterministic operands for an `m × k` by `k × n` product.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        let a = (0..m * k).map(|i| ((i * 7 + 3) % 17) as f32 * 0.0625 - 0.5).collect();
        let b = (0..k * n).map(|i| ((i * 5 + 1) % 13) as f32 * 0.0625 - 0.4).collect();
        Self { m, n, k, a, b, c: vec![0.0; m * n] }
    }
}

/// edgepack: `set`'s GEMM with pre-packed B.
pub fn ours(set: &dyn KernelSet, p: &mut Problem, packed: &PackedB, par: Parallelism) {
    set.gemm(
        MatRef::row_major(&p.a, p.m, p.k).expect("A"),
        BOperand::Packed(packed),
        MatMut::row_major(&mut p.c, p.m, p.n).expect("C"),
        &Epilogue::none(),
        par,
    )
    .expect("gemm");
}

/// The `gemm` crate.
pub fn gemm_crate(p: &mut Problem, par: gemm::Parallelism) {
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

/// `matrixmultiply::sgemm` (single thread).
pub fn matrixmultiply(p: &mut Problem) {
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

/// Clears the upper halves of the vector registers (`vzeroupper`), as a compiled function that
/// used 256- or 512-bit registers does before it returns. tract-linalg's AVX-512 assembly
/// kernels return without it, and the legacy-SSE code that followed (our scalar set, built for
/// baseline x86-64) ran about 3× slower on Zen 4 (9 against 30 GFLOP/s at 256³): the
/// scalar/tract figure measured that penalty, not our code.
fn leave_vector_state_clean() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the instruction exists on every CPU with AVX, checked just above; it changes no
        // state a Rust function may rely on across a call (the upper halves are caller-saved).
        unsafe { std::arch::x86_64::_mm256_zeroupper() };
    }
}

/// tract-linalg's f32 matmul with B packed ahead.
pub struct Tract {
    mmm: Box<dyn MatMatMul>,
    packing: usize,
    a: Tensor,
    pb: Box<dyn MMMInputValue>,
    c: Tensor,
}

impl Tract {
    /// Picks tract's kernel for the shape and packs B.
    pub fn new(p: &Problem) -> Self {
        let query = Query::plain(DatumType::F32, Some(p.m), Some(p.k), Some(p.n));
        let (mmm, packing, _) = MmmDispatch::native().pick(&query).expect("tract has an f32 kernel");
        let a = Tensor::from_shape(&[p.m, p.k], &p.a).expect("A tensor");
        let b = Tensor::from_shape(&[p.k, p.n], &p.b).expect("B tensor");
        let pb = mmm.packings()[packing].1.prepare_one(&b, 0, 1).expect("pack B");
        let c = Tensor::zero::<f32>(&[p.m, p.n]).expect("C tensor");
        Self { mmm, packing, a, pb, c }
    }

    /// One product (A packed inside, as for ours).
    pub fn run(&mut self, m: usize, n: usize) {
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
        leave_vector_state_clean();
    }
}
