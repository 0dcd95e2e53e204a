#!/usr/bin/env bash
# Prepares a fresh machine for the main job and the tests. Idempotent: run it as often as you
# like. Today everything comes from crates.io through cargo; the Rust toolchain (cargo, rustc,
# clippy, rustfmt) is the machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' not found: install the Rust toolchain (cargo, rustc, clippy, rustfmt)" >&2; exit 1; }
}
need cargo
need rustc
cargo clippy --version >/dev/null 2>&1 || { echo "setup: cargo clippy missing (rustup component add clippy)" >&2; exit 1; }
cargo fmt --version >/dev/null 2>&1 || { echo "setup: cargo fmt missing (rustup component add rustfmt)" >&2; exit 1; }
cargo fetch --locked --quiet
echo "setup: $(rustc --version), dependencies fetched"
