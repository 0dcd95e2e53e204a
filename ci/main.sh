#!/usr/bin/env bash
# The main job: a parity-and-speed report of every kernel set this host can run, as a table.
# Extra arguments go to the report (e.g. --size 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh >/dev/null
cargo run --release --locked --quiet -p edgepack-harness --bin kernel-report -- "$@"
