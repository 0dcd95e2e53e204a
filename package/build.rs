//! Tells the job-store tests where a PostgreSQL server is, at build time: `EDGEPACK_POSTGRES_URL`
//! (`postgresql://user:password@host:port/db` of a role that may create databases;
//! `ci/setup-postgres.sh` starts one and prints it). Without it the PostgreSQL variants are
//! ignored ("skipped: …"); `EDGEPACK_REQUIRE_POSTGRES=1` (CI) makes a missing one fail the
//! build instead.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(no_postgres)");
    println!("cargo::rerun-if-env-changed=EDGEPACK_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=EDGEPACK_REQUIRE_POSTGRES");
    match std::env::var("EDGEPACK_POSTGRES_URL") {
        Ok(url) if url.starts_with("postgresql://") => {
            println!("cargo::rustc-env=EDGEPACK_POSTGRES_URL={url}");
        }
        _ if std::env::var_os("EDGEPACK_REQUIRE_POSTGRES").is_some_and(|v| v == "1") => {
            panic!("EDGEPACK_REQUIRE_POSTGRES=1 but EDGEPACK_POSTGRES_URL is not a postgresql:// URL (run ci/setup-postgres.sh)")
        }
        _ => println!("cargo::rustc-cfg=no_postgres"),
    }
}
