//! The GEMM, convolution, pooling and row-normalisation suites, instantiated for every kernel set. A set the machine cannot run is reported
//! as ignored with "skipped: <why>" (never counted as passed); run with `--ignored` on a machine
//! that has it.

use harness::suite::conv;
use harness::suite::gemm as suite;
use harness::suite::{expand, gate, pool, rows, winograd};
use kernels::{kernel_set, kernel_set_with_blocking, Blocking, KernelSet, KernelSetId};

fn scalar() -> Box<dyn KernelSet> {
    kernel_set(KernelSetId::Scalar).expect("the scalar set runs everywhere")
}

/// Blocks so small that modest shapes cross every K pass, M block and N block boundary; KC is
/// odd so that each pass also ends in the unrolled loop's remainder.
fn tiny_blocks(id: KernelSetId) -> Blocking {
    let (mr, nr) = id.geometry().expect("a CPU set");
    Blocking { kc: 7, mc: 2 * mr, nc: 3 * nr }
}

macro_rules! kernel_suite {
    ($name:ident, $make:expr $(, $skip:meta)?) => {
        mod $name {
            use super::*;

            fn set() -> Box<dyn KernelSet> {
                $make
            }

            #[test]
            $(#[$skip])?
            fn random_cases_match_reference() {
                suite::random_cases_match_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn every_epilogue_matches_reference() {
                suite::every_epilogue_matches_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn activations_hold_over_wide_range() {
                suite::activations_hold_over_wide_range(&*set());
            }

            #[test]
            $(#[$skip])?
            fn integer_cases_are_exact() {
                suite::integer_cases_are_exact(&*set());
            }

            #[test]
            $(#[$skip])?
            fn degenerate_shapes() {
                suite::degenerate_shapes(&*set());
            }

            #[test]
            $(#[$skip])?
            fn results_do_not_depend_on_thread_count() {
                suite::results_do_not_depend_on_thread_count(&*set());
            }

            #[test]
            $(#[$skip])?
            fn packed_weights_round_trip() {
                suite::packed_weights_round_trip(&*set(), &*scalar());
            }

            #[test]
            $(#[$skip])?
            fn bad_shapes_are_errors() {
                suite::bad_shapes_are_errors(&*set());
            }

            #[test]
            $(#[$skip])?
            fn conv_random_cases_match_reference() {
                conv::random_convs_match_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn conv_every_algorithm_and_epilogue() {
                conv::every_algorithm_and_epilogue(&*set());
            }

            #[test]
            $(#[$skip])?
            fn conv_integer_cases_are_exact() {
                conv::integer_convs_are_exact(&*set());
            }

            #[test]
            $(#[$skip])?
            fn conv_large_depthwise_is_exact() {
                conv::large_depthwise_convs_are_exact(&*set());
            }

            #[test]
            $(#[$skip])?
            fn conv_results_do_not_depend_on_thread_count() {
                conv::conv_results_do_not_depend_on_thread_count(&*set());
            }

            #[test]
            $(#[$skip])?
            fn grouped_convs_pick_the_direct_kernel() {
                conv::grouped_convs_pick_the_direct_kernel(&*set());
            }

            #[test]
            $(#[$skip])?
            fn conv_packed_weights_round_trip() {
                conv::packed_conv_round_trip(&*set(), &*scalar());
            }

            #[test]
            $(#[$skip])?
            fn conv_bad_calls_are_errors() {
                conv::bad_convs_are_errors(&*set());
            }

            #[test]
            $(#[$skip])?
            fn gate_scaled_inputs_match_reference() {
                gate::scaled_inputs_match_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn gate_bad_scales_are_errors() {
                gate::bad_scales_are_errors(&*set());
            }

            #[test]
            $(#[$skip])?
            fn expand_random_fusions_match_two_convs() {
                expand::random_fusions_match_two_convs(&*set());
            }

            #[test]
            $(#[$skip])?
            fn expand_wide_fusions_walk_bands() {
                expand::wide_fusions_walk_bands(&*set());
            }

            #[test]
            $(#[$skip])?
            fn expand_bad_fusions_are_errors() {
                expand::bad_fusions_are_errors(&*set());
            }

            #[test]
            $(#[$skip])?
            fn winograd_matches_reference() {
                winograd::winograd_convs_match_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn winograd_impulses_are_exact() {
                winograd::winograd_impulses_are_exact(&*set());
            }

            #[test]
            $(#[$skip])?
            fn winograd_results_do_not_depend_on_thread_count() {
                winograd::winograd_results_do_not_depend_on_thread_count(&*set());
            }

            #[test]
            $(#[$skip])?
            fn winograd_packed_weights_round_trip() {
                winograd::winograd_round_trip(&*set());
            }

            #[test]
            $(#[$skip])?
            fn pool_random_cases_match_reference() {
                pool::random_pools_match_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn pool_model_cases_are_exact() {
                pool::model_pools_are_exact(&*set());
            }

            #[test]
            $(#[$skip])?
            fn pool_global_averages_match_reference() {
                pool::global_average_pools_match_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn pool_bad_calls_are_errors() {
                pool::bad_pools_are_errors(&*set());
            }

            #[test]
            $(#[$skip])?
            fn rows_random_cases_match_reference() {
                rows::random_rows_match_reference(&*set());
            }

            #[test]
            $(#[$skip])?
            fn rows_exact_cases() {
                rows::exact_rows(&*set());
            }

            #[test]
            $(#[$skip])?
            fn rows_bad_calls_are_errors() {
                rows::bad_rows_are_errors(&*set());
            }
        }
    };
}

kernel_suite!(scalar_set, scalar());
kernel_suite!(
    scalar_tiny_blocks,
    kernel_set_with_blocking(KernelSetId::Scalar, tiny_blocks(KernelSetId::Scalar)).unwrap()
);

#[cfg(target_arch = "x86_64")]
kernel_suite!(
    avx2_set,
    kernel_set(KernelSetId::Avx2).expect("AVX2 set"),
    cfg_attr(not(host_avx2), ignore = "skipped: this CPU lacks AVX2+FMA")
);

#[cfg(target_arch = "x86_64")]
kernel_suite!(
    avx2_tiny_blocks,
    kernel_set_with_blocking(KernelSetId::Avx2, tiny_blocks(KernelSetId::Avx2)).expect("AVX2 set"),
    cfg_attr(not(host_avx2), ignore = "skipped: this CPU lacks AVX2+FMA")
);

#[cfg(target_arch = "x86_64")]
kernel_suite!(
    avx512_set,
    kernel_set(KernelSetId::Avx512).expect("AVX-512 set"),
    cfg_attr(not(host_avx512), ignore = "skipped: this CPU lacks AVX-512F and VL (emulated_avx512_* run its geometry)")
);

#[cfg(target_arch = "x86_64")]
kernel_suite!(
    avx512_tiny_blocks,
    kernel_set_with_blocking(KernelSetId::Avx512, tiny_blocks(KernelSetId::Avx512)).expect("AVX-512 set"),
    cfg_attr(not(host_avx512), ignore = "skipped: this CPU lacks AVX-512F and VL (emulated_avx512_* run its geometry)")
);

// The AVX-512 set's exact 12×32 geometry, blocking and driver on portable vectors: runs on any
// x86_64 host, so hosts without AVX-512 still test everything but the intrinsic wrappers.
#[cfg(target_arch = "x86_64")]
kernel_suite!(emulated_avx512_geometry, kernels::emulated::avx512_geometry(None).unwrap());

#[cfg(target_arch = "x86_64")]
kernel_suite!(
    emulated_avx512_tiny_blocks,
    kernels::emulated::avx512_geometry(Some(tiny_blocks(KernelSetId::Avx512))).unwrap()
);

#[cfg(target_arch = "x86_64")]
kernel_suite!(emulated_neon_geometry, kernels::emulated::neon_geometry(None).unwrap());

#[cfg(target_arch = "x86_64")]
kernel_suite!(
    emulated_neon_tiny_blocks,
    kernels::emulated::neon_geometry(Some(tiny_blocks(KernelSetId::Neon))).unwrap()
);

#[cfg(target_arch = "aarch64")]
kernel_suite!(neon_set, kernel_set(KernelSetId::Neon).expect("NEON set"));

#[cfg(target_arch = "aarch64")]
kernel_suite!(
    neon_tiny_blocks,
    kernel_set_with_blocking(KernelSetId::Neon, tiny_blocks(KernelSetId::Neon)).expect("NEON set")
);

// The CUDA set (f32) through the same suites. No machine of CI has a GPU, so these are
// always reported as skipped here; ci/gpu-check.sh runs them with `--ignored` on one.
#[cfg(feature = "cuda")]
kernel_suite!(
    cuda_set,
    kernel_set(KernelSetId::Cuda).expect("CUDA set"),
    ignore = "skipped: no CUDA device (ci/gpu-check.sh runs these on a GPU machine)"
);

#[test]
fn invalid_blocking_is_refused() {
    for b in [Blocking { kc: 0, mc: 4, nc: 8 }, Blocking { kc: 8, mc: 5, nc: 8 }, Blocking { kc: 8, mc: 4, nc: 12 }] {
        let err = kernel_set_with_blocking(KernelSetId::Scalar, b).expect_err("invalid blocking accepted");
        assert!(err.to_string().contains("multiple of"), "{err}");
    }
}

#[test]
fn only_instruction_set_kernels_claim_an_fma_peak() {
    assert_eq!(scalar().info().peak_flops_per_iter, None);
    assert_eq!(kernels::fma_peak_gflops(&*scalar(), 1000), None);
    #[cfg(target_arch = "x86_64")]
    for emulated in [kernels::emulated::avx512_geometry(None).unwrap(), kernels::emulated::neon_geometry(None).unwrap()]
    {
        assert_eq!(emulated.info().peak_flops_per_iter, None, "{}", emulated.info().name);
    }
    for set in kernels::host_kernel_sets().0 {
        if set.info().id != KernelSetId::Scalar && set.info().id != KernelSetId::Cuda {
            let per_iter = set.info().peak_flops_per_iter.expect("an instruction-set kernel has a ceiling");
            assert!(per_iter > 0 && per_iter.is_multiple_of(2), "{}: FMAs count 2 flops each", set.info().name);
            assert!(kernels::fma_peak_gflops(&*set, 1 << 16).is_some_and(|g| g > 0.0), "{}", set.info().name);
        }
    }
}
