//! Pack-only sets pack byte for byte as the real sets do, and run nothing.

use kernels::{
    can_run, kernel_set, pack_only, packer, BOperand, ConvParams, Epilogue, KernelError, KernelSetId, MatMut, MatRef,
    Parallelism, CUDA_NR,
};

fn matrix(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect()
}

#[test]
fn pack_only_sets_pack_like_every_set_this_machine_runs() {
    let mut compared = 0;
    for id in KernelSetId::ALL {
        let Ok(real) = kernel_set(id) else { continue };
        let stand_in = pack_only(id, "test");
        assert_eq!(stand_in.info().name, real.info().name);
        assert_eq!(stand_in.info().nr, real.info().nr, "{id}: NR");
        assert_eq!(stand_in.info().wide, real.info().wide, "{id}: wide tile");
        // Widths below, at and above NR, K with a tail.
        for (k, n) in [(5, 3), (17, real.info().nr), (33, 2 * real.info().nr + 5)] {
            let b = matrix(k, n);
            let m = MatRef::row_major(&b, k, n).unwrap();
            assert_eq!(stand_in.pack_b(m).to_bytes(), real.pack_b(m).to_bytes(), "{id}: pack_b {k}×{n}");
        }
        let mut dw = ConvParams::new(24, 24, [3, 3]);
        dw.groups = 24;
        dw.strides = [2, 2];
        for params in
            [ConvParams::new(3, 16, [3, 3]), ConvParams::new(40, 72, [1, 1]), ConvParams::new(96, 24, [3, 3]), dw]
        {
            let w = matrix(params.c_out, params.c_in / params.groups * params.kernel[0] * params.kernel[1]);
            assert_eq!(
                stand_in.pack_conv(&params, &w).unwrap().to_bytes(),
                real.pack_conv(&params, &w).unwrap().to_bytes(),
                "{id}: pack_conv {params:?}"
            );
        }
        compared += 1;
    }
    assert!(compared >= 1, "the scalar set always runs");
}

#[test]
fn packer_gives_the_real_set_when_it_runs_and_a_refusing_stand_in_otherwise() {
    for id in KernelSetId::ALL {
        let p = packer(id);
        assert_eq!(p.info().name, id.name());
        let nr = id.geometry().map_or(CUDA_NR, |g| g.1);
        assert_eq!(p.info().nr, nr, "{id}");
        let (a, b) = (matrix(2, 3), matrix(3, 2));
        let mut c = vec![f32::NAN; 4];
        let r = p.gemm(
            MatRef::row_major(&a, 2, 3).unwrap(),
            BOperand::Matrix(MatRef::row_major(&b, 3, 2).unwrap()),
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            &Epilogue::none(),
            Parallelism::Sequential,
        );
        if can_run(id) {
            r.unwrap_or_else(|e| panic!("{id} runs here: {e}"));
            assert!(c.iter().all(|v| v.is_finite()));
        } else {
            match r {
                Err(KernelError::Unavailable { set, reason }) => {
                    assert_eq!(set, id.name());
                    assert!(reason.contains("only packs"), "{reason}");
                }
                other => panic!("{id}: expected Unavailable, got {other:?}"),
            }
            assert!(c.iter().all(|v| v.is_nan()), "{id}: a pack-only set wrote output");
        }
    }
}
