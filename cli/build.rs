//! Tells the S3 storage tests where their S3 server (s3s-fs, which `ci/setup-s3.sh` installs
//! and prints the path of) is: `EDGEPACK_S3S_FS`. Without it those tests are reported as
//! ignored ("skipped: …"), never as passed; with `EDGEPACK_REQUIRE_S3=1` (CI) a missing
//! server fails the build instead.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_s3_server)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=EDGEPACK_S3S_FS");
    println!("cargo::rerun-if-env-changed=EDGEPACK_REQUIRE_S3");
    let server = std::env::var_os("EDGEPACK_S3S_FS").map(std::path::PathBuf::from);
    match server.filter(|p| p.is_file()) {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.display());
            println!("cargo::rustc-env=EDGEPACK_S3S_FS={}", path.display());
        }
        None if std::env::var_os("EDGEPACK_REQUIRE_S3").is_some_and(|v| v == "1") => {
            panic!("EDGEPACK_REQUIRE_S3=1 but EDGEPACK_S3S_FS does not name the s3s-fs binary (run ci/setup-s3.sh)")
        }
        None => println!("cargo::rustc-cfg=no_s3_server"),
    }
}
