#!/usr/bin/env bash
# Regression check of the tracked kernel figures: same-process, interleaved throughput ratios
# against frozen references (tract-linalg 0.23.9, our scalar set), compared with
# benches/baselines/<machine-class>.json; fails when a ratio drops by more than
# max(5 %, 3 × combined standard error). About 40 s of measurement after the build.
#   bash ci/bench-check.sh              check (appends to benches/history/<class>.jsonl)
#   bash ci/bench-check.sh --update     rewrite this machine class's baseline on purpose
#   bash ci/bench-check.sh --plot docs/bench-history.svg
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet -p edgepack-benches --bin bench-check
exec target/release/bench-check "$@"
