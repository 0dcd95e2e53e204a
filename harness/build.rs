//! Tells the test suite which optional instruction sets the machine running the tests has, so
//! that tests for a missing set are reported as ignored ("skipped: …"), never as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(host_avx2)");
    println!("cargo::rustc-check-cfg=cfg(host_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if host != target {
        return; // cross build: the tests run elsewhere (qemu) and use no x86 sets
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            println!("cargo::rustc-cfg=host_avx2");
        }
        // What the AVX-512 set's detection asks (its wide tile runs 256-bit AVX-512VL code).
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
            println!("cargo::rustc-cfg=host_avx512");
        }
    }
}
