#!/usr/bin/env bash
# Regression check of the tracked figures: interleaved throughput ratios of our kernels against
# frozen references in the same process (tract-linalg 0.23.9, our scalar set), and of three
# zoo models against ONNX Runtime 1.32 in a child process (needs ci/fetch-zoo.sh and
# ci/fetch-models.sh, which the test command runs; --kernels-only leaves them out), compared
# with benches/baselines/<machine-class>.json; fails when a ratio drops by more than
# max(5 %, 3 × combined standard error). About a minute of measurement after the build.
#   bash ci/bench-check.sh              check (appends to benches/history/<class>.jsonl)
#   bash ci/bench-check.sh --update     rewrite this machine class's baseline on purpose
#   bash ci/bench-check.sh --plot docs/bench-history.svg
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet -p edgepack-benches --bin bench-check
exec target/release/bench-check "$@"
