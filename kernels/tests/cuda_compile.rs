//! The CUDA kernels compile for every supported `gpu-code` with NVRTC, without spills; and a
//! machine without a GPU gets an error value from the CUDA set, never a panic.
#![cfg(feature = "cuda")]

use kernels::cuda::compile::{
    builds_wgmma, compile, kernel_names, nvrtc_present, nvrtc_version, parse_ptxas, KernelStats, MmaConfig, WGMMA_NVRTC,
};
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

/// Registers and spills of one kernel on `code`.
fn check_kernel(code: &str, k: &KernelStats) {
    eprintln!(
        "{code} {:17} {:3} registers, {:5} B smem, spills {}/{} B, stack {} B",
        k.name, k.registers, k.smem, k.spill_stores, k.spill_loads, k.stack
    );
    assert!(k.registers > 0 && k.registers <= 255, "{code} {}: {} registers", k.name, k.registers);
    if k.name.ends_with("_ws") {
        // The warp-specialized wgmma kernel is compiled under the 168-register cap of 384
        // threads, which its warpgroups change at run time (setmaxnreg: the copying one to 72,
        // the multiplying ones to 208): ptxas spills a few values around the switch and in the
        // copying loop's convolution addressing, into L1.
        assert!(k.registers <= 168, "{code} {}: {} registers over the 384-thread cap", k.name, k.registers);
        assert!(k.spill_stores <= 64 && k.spill_loads <= 64, "{code} {} spills {} B", k.name, k.spill_stores);
        return;
    }
    // A few bytes of spill in the convolution and f16 forms cost nothing measurable
    // (L1-resident); more would mean a register-pressure regression. The f32 GEMM, the hot
    // loop of every f32 model, and the tensor-core kernels must not spill at all.
    assert!(k.spill_stores <= 16 && k.spill_loads <= 16, "{code} {} spills {} B", k.name, k.spill_stores);
    if k.name == "gemm_f32" || k.name.contains("mma") {
        assert_eq!((k.spill_stores, k.spill_loads, k.stack), (0, 0, 0), "{code} {} spills registers", k.name);
    }
    // Two blocks of 256 threads per SM fit in 64K registers only at <= 128 each (the
    // CUDA-core GEMMs' launch bounds); the tensor-core ones and the split-K forms (`_sk`,
    // launched when there are fewer tiles than SMs) run one block per SM.
    if !k.name.contains("mma") && !k.name.starts_with("depthwise") && !k.name.ends_with("_sk") {
        assert!(k.registers <= 128, "{code} {}: {} registers (launch bounds ask 128)", k.name, k.registers);
    }
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
        assert_eq!(c.wgmma, builds_wgmma(sm, (major, minor), MmaConfig::default()), "{code}: wgmma");
        assert_eq!(c.wgmma, sm == 90 && (major, minor) >= WGMMA_NVRTC, "{code}: wgmma on sm_90 with NVRTC 12+");
        assert_eq!(c.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), kernel_names(sm, c.wgmma), "{code}");
        for k in &c.kernels {
            check_kernel(code, k);
        }
        assert!(c.kernels.iter().any(|k| k.name == "conv_f16_wmma"), "{code}: wmma kernel (sm_70+)");
        let mma = c.kernels.iter().find(|k| k.name == "gemm_f16_mma");
        assert_eq!(mma.is_some(), sm >= 80, "{code}: tensor-core kernel presence");
        if let Some(k) = mma {
            assert_eq!(k.smem, 0, "{code}: the tensor-core pipeline's shared memory is dynamic");
        }
    }
}

/// The Hopper wgmma kernel needs NVRTC 12 (`sm_90a`): CI compiles it with the NVRTC 12 that
/// `ci/setup-cuda.sh --nvrtc12` fetches, with `EDGEPACK_REQUIRE_WGMMA=1` so that an older
/// NVRTC fails instead of skipping.
#[test]
fn wgmma_kernel_compiles_for_sm_90a_without_spills() {
    if !nvrtc_or_skip("wgmma_kernel_compiles_for_sm_90a_without_spills") {
        return;
    }
    let version = nvrtc_version().expect("NVRTC answers its version");
    if version < WGMMA_NVRTC {
        assert!(
            !std::env::var("EDGEPACK_REQUIRE_WGMMA").is_ok_and(|v| v == "1"),
            "EDGEPACK_REQUIRE_WGMMA=1 but NVRTC is {version:?}, older than {WGMMA_NVRTC:?}"
        );
        eprintln!("wgmma_kernel_compiles_for_sm_90a_without_spills: skipped: NVRTC {version:?} cannot target sm_90a");
        return;
    }
    // The default (4 stages) is compiled by the test above; here the other pipeline depth.
    let mma = MmaConfig { wgmma_stages: Some(3), ..MmaConfig::default() };
    let c = kernels::cuda::compile::compile_with(90, mma).unwrap_or_else(|e| panic!("sm_90a: {e}"));
    assert!(c.wgmma, "sm_90 with NVRTC {version:?} builds the wgmma kernels");
    assert_eq!(c.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), kernel_names(90, true));
    // Every kernel of the module, not only the wgmma ones: CI runs only this test with NVRTC 12
    // (the test above has checked them all with NVRTC 11.8), so this is NVRTC 12's check of them.
    for k in &c.kernels {
        check_kernel("sm_90a (3 stages)", k);
    }
    for stages in [3, 4] {
        assert!(MmaConfig::wgmma_smem_bytes(stages) <= 227 * 1024, "{stages} stages fit Hopper's shared memory");
    }
    let off = MmaConfig { wgmma_stages: None, ..MmaConfig::default() };
    assert!(!builds_wgmma(90, version, off), "EDGEPACK_WGMMA=off builds sm_90");
    assert!(!builds_wgmma(90, (11, 8), MmaConfig::default()), "NVRTC 11.8 cannot target sm_90a");
    assert!(!builds_wgmma(89, version, MmaConfig::default()) && !builds_wgmma(100, version, MmaConfig::default()));
}

#[test]
fn mma_knob_is_parsed() {
    assert!(MmaConfig::parse("wmma").unwrap().force_wmma);
    let c = MmaConfig::parse("128,32,3").unwrap();
    assert_eq!((c.bn, c.bk, c.stages, c.force_wmma), (128, 32, 3, false));
    assert!(MmaConfig::parse("128,64,7").is_err() && MmaConfig::parse("wmma2").is_err());
}

#[test]
fn wgmma_knob_is_parsed() {
    assert_eq!(MmaConfig::parse_wgmma("3").unwrap(), (Some(3), false));
    assert_eq!(MmaConfig::parse_wgmma(" 4 ").unwrap(), (Some(4), false));
    assert_eq!(MmaConfig::parse_wgmma("ws4").unwrap(), (Some(4), true));
    assert_eq!(MmaConfig::parse_wgmma("off").unwrap(), (None, false));
    for bad in ["2", "5", "", "on", "ws", "ws5", "4ws"] {
        let e = MmaConfig::parse_wgmma(bad).unwrap_err().to_string();
        assert!(e.contains("EDGEPACK_WGMMA"), "{bad}: {e}");
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
