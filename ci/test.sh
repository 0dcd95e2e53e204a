#!/usr/bin/env bash
# Runs every test: formatting, lints (warnings are errors), then the unit, integration and doc
# tests of every crate. Kernel sets this CPU cannot run are reported as ignored with
# "skipped: <why>", never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test.log
if grep -q "ignored, skipped:" target/test.log; then
    echo
    echo "== SKIPPED (not counted as passed):"
    grep "ignored, skipped:" target/test.log | sed 's/^test /  /' | sort
fi
echo
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' target/test.log
