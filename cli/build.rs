//! Tells the CLI tests where the external programs they drive are, at build time:
//! - `EDGEPACK_S3S_FS`: the S3 server (s3s-fs) of the storage tests (`ci/setup-s3.sh` prints
//!   its path); without it they are ignored ("skipped: …") — `EDGEPACK_REQUIRE_S3=1` (CI)
//!   makes a missing one fail the build instead;
//! - `EDGEPACK_AWS_BIN`: the bin folder of the venv with the AWS CLI and boto3 that drive
//!   `edgepack serve` (`ci/setup-aws.sh` prints it); likewise with `EDGEPACK_REQUIRE_AWS=1`;
//! - `EDGEPACK_POSTGRES_URL`: a PostgreSQL role that may create databases
//!   (`ci/setup-postgres.sh` prints it), for the server on a shared job store; likewise with
//!   `EDGEPACK_REQUIRE_POSTGRES=1`.

/// Passes `var` on when it names an existing `file` (inside it, when given), else sets `cfg`
/// (or fails when `require` is set to 1).
fn locate(var: &str, require: &str, cfg: &str, inside: Option<&str>, how: &str) {
    println!("cargo::rustc-check-cfg=cfg({cfg})");
    println!("cargo::rerun-if-env-changed={var}");
    println!("cargo::rerun-if-env-changed={require}");
    let path = std::env::var_os(var).map(std::path::PathBuf::from);
    let probe = |p: &std::path::Path| match inside {
        Some(f) => p.join(f).is_file(),
        None => p.is_file(),
    };
    match path.filter(|p| probe(p)) {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.display());
            println!("cargo::rustc-env={var}={}", path.display());
        }
        None if std::env::var_os(require).is_some_and(|v| v == "1") => {
            panic!("{require}=1 but {var} does not name {how}")
        }
        None => println!("cargo::rustc-cfg={cfg}"),
    }
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    locate("EDGEPACK_S3S_FS", "EDGEPACK_REQUIRE_S3", "no_s3_server", None, "the s3s-fs binary (run ci/setup-s3.sh)");
    locate(
        "EDGEPACK_AWS_BIN",
        "EDGEPACK_REQUIRE_AWS",
        "no_aws_clients",
        Some("aws"),
        "the bin folder of a venv with awscli and boto3 (run ci/setup-aws.sh)",
    );
    let url = std::env::var("EDGEPACK_POSTGRES_URL").unwrap_or_default();
    println!("cargo::rustc-check-cfg=cfg(no_postgres)");
    println!("cargo::rerun-if-env-changed=EDGEPACK_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=EDGEPACK_REQUIRE_POSTGRES");
    if url.starts_with("postgresql://") {
        println!("cargo::rustc-env=EDGEPACK_POSTGRES_URL={url}");
    } else if std::env::var_os("EDGEPACK_REQUIRE_POSTGRES").is_some_and(|v| v == "1") {
        panic!(
            "EDGEPACK_REQUIRE_POSTGRES=1 but EDGEPACK_POSTGRES_URL is not a postgresql:// URL (ci/setup-postgres.sh)"
        );
    } else {
        println!("cargo::rustc-cfg=no_postgres");
    }
}
