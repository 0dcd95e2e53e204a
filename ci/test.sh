#!/usr/bin/env bash
# Runs every test: formatting, lints (warnings are errors), the unit, integration and doc tests
# of every crate on this machine, the host parity report, then the ARM64 suites under
# qemu-aarch64 (ci/test-arm64.sh, which installs its toolchain from Debian packages). Kernel
# sets a CPU cannot run are reported as ignored with "skipped: <why>", never as passed.
# Parity reports (JSON + JUnit) land in target/reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
# ONNX's conformance data (pinned onnx wheel): harness/tests/onnx_conformance.rs and
# onnx_node_conformance.rs need it.
bash ci/fetch-onnx-data.sh
# The real models (rapidocr wheel), ONNX Runtime 1.32.0 in a venv and its outputs for the
# parity tests: harness/tests/models.rs needs them.
bash ci/fetch-models.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test.log
echo "== parity report (host)"
cargo run --locked --quiet --profile test -p edgepack-harness --bin kernel-report -- --parity-only --label host \
    --json target/reports/host.json --junit target/reports/host.junit.xml
bash ci/test-arm64.sh 2>&1 | tee -a target/test.log
if grep -q "ignored, skipped:" target/test.log; then
    echo
    echo "== SKIPPED (not counted as passed):"
    grep "ignored, skipped:" target/test.log | sed 's/^test /  /' | sort
fi
echo
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' \
    target/test.log | tee target/test-summary.txt
