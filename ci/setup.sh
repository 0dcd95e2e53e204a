#!/usr/bin/env bash
# Prepares a fresh machine for the main job and the tests. Idempotent: run it as often as you
# like. The crates come from crates.io through cargo, SQLite's headers from Debian
# (libsqlite3-dev); the Rust toolchain (cargo, rustc, clippy, rustfmt) is the machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' not found: install the Rust toolchain (cargo, rustc, clippy, rustfmt)" >&2; exit 1; }
}
need cargo
need rustc
cargo clippy --version >/dev/null 2>&1 || { echo "setup: cargo clippy missing (rustup component add clippy)" >&2; exit 1; }
cargo fmt --version >/dev/null 2>&1 || { echo "setup: cargo fmt missing (rustup component add rustfmt)" >&2; exit 1; }
# The job store links the system SQLite (rusqlite without its bundled copy).
if [ ! -e /usr/include/sqlite3.h ]; then
    echo "setup: installing libsqlite3-dev (apt)"
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq libsqlite3-dev >/dev/null
fi
cargo fetch --locked --quiet
echo "setup: $(rustc --version), dependencies fetched"
