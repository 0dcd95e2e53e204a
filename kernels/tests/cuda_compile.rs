//! The CUDA kernels compile for every supported `gpu-code` with NVRTC, without spills; and a
//! machine without a GPU gets an error value from the CUDA set, never a panic.
#![cfg(feature = "cuda")]

use kernels::cuda::compile::{compile, kernel_names, nvrtc_present, nvrtc_version, parse_ptxas};
use kernels::vocabulary::GPU_CODES;
use kernels::{kernel_set, KernelError, KernelSetId};

/// NVRTC is found, or the test says why it cannot run; `EDGEPACK_REQUIRE_NVRTC=1` (set by
/// `ci/test.sh`, which installs it) turns its absence into a failure.
fn nvrtc_or_skip(test: &str) -> bool {
    if nvrtc_present() {
        return true;
    }
    if std::env::var("EDGEPACK_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!("{test}: NVRTC is required (EDGEPACK_REQUIRE_NVRTC=1) but libnvrtc.so is not on LD_LIBRARY_PATH");
    }
    eprintln!("{test}: skipped: no NVRTC library (run ci/setup-cuda.sh and put its folder on LD_LIBRARY_PATH)");
    false
}

#[test]
fn every_kernel_compiles_for_every_gpu_code_without_spills() {
    if !nvrtc_or_skip("every_kernel_compiles_for_every_gpu_code_without_spills") {
        return;
    }
    let (major, minor) = nvrtc_version().expect("NVRTC answers its version");
    eprintln!("NVRTC {major}.{minor}");
    // One architecture per thread (NVRTC is thread-safe; CI has two cores).
    let compiled: Vec<_> = std::thread::scope(|s| {
        let jobs: Vec<_> =
            GPU_CODES.iter().map(|code| s.spawn(move || (*code, compile(code[3..].parse().unwrap())))).collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for (code, c) in compiled {
        let sm: u32 = code[3..].parse().unwrap();
        let c = c.unwrap_or_else(|e| panic!("{code}: {e}"));
        assert!(c.cubin.len() > 1000, "{code}: CUBIN of {} bytes", c.cubin.len());
        assert_eq!(c.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), kernel_names(sm), "{code}");
        for k in &c.kernels {
            eprintln!(
                "{code} {:14} {:3} registers, {:5} B smem, spills {}/{} B, stack {} B",
                k.name, k.registers, k.smem, k.spill_stores, k.spill_loads, k.stack
            );
            assert!(k.registers > 0 && k.registers <= 255, "{code} {}: {} registers", k.name, k.registers);
            // A few bytes of spill in the convolution and f16 forms cost nothing measurable
            // (L1-resident); more would mean a register-pressure regression. The f32 GEMM,
            // the hot loop of every f32 model, must not spill at all.
            assert!(k.spill_stores <= 16 && k.spill_loads <= 16, "{code} {} spills {} B", k.name, k.spill_stores);
            if k.name == "gemm_f32" || k.name.ends_with("_mma") {
                assert_eq!((k.spill_stores, k.spill_loads), (0, 0), "{code} {} spills registers", k.name);
            }
            // Two blocks of 256 threads per SM fit in 64K registers only at <= 128 each (the
            // CUDA-core GEMMs' launch bounds); the tensor-core ones run one block per SM.
            if !k.name.ends_with("_mma") && !k.name.starts_with("depthwise") {
                assert!(k.registers <= 128, "{code} {}: {} registers (launch bounds ask 128)", k.name, k.registers);
            }
        }
        let mma = c.kernels.iter().find(|k| k.name == "gemm_f16_mma");
        assert_eq!(mma.is_some(), sm >= 80, "{code}: tensor-core kernel presence");
        if let Some(k) = mma {
            assert_eq!(k.smem, 0, "{code}: the tensor-core pipeline's shared memory is dynamic");
        }
    }
}

#[test]
fn ptxas_report_is_parsed() {
    let log = "ptxas info    : 0 bytes gmem\nptxas info    : Compiling entry function 'gemm_f32' for 'sm_90'\n\
               ptxas info    : Function properties for gemm_f32\n    \
               8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads\n\
               ptxas info    : Used 122 registers, 16384 bytes smem, 568 bytes cmem[0]\n";
    let k = &parse_ptxas(log)[0];
    assert_eq!((k.name.as_str(), k.registers, k.smem), ("gemm_f32", 122, 16384));
    assert_eq!((k.stack, k.spill_stores, k.spill_loads), (8, 12, 16));
}

#[test]
fn without_a_gpu_the_cuda_set_is_an_error_value() {
    match kernel_set(KernelSetId::Cuda) {
        Ok(set) => eprintln!("a CUDA device is present: {set:?}"),
        Err(KernelError::Unavailable { set, reason }) => {
            assert_eq!(set, "cuda");
            assert!(
                reason.contains("no CUDA driver") || reason.contains("no CUDA device") || reason.contains("NVRTC"),
                "{reason}"
            );
            eprintln!("cuda set unavailable, as expected here: {reason}");
        }
        Err(e) => panic!("expected Unavailable, got {e}"),
    }
}
