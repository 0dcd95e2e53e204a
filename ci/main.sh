#!/usr/bin/env bash
# The main job: a parity-and-speed report of every kernel set this host can run, as a table;
# then both real models (ci/fetch-models.sh) planned for this host's kernel set, checked
# against the float64 reference and ONNX Runtime's outputs (reports in target/reports/), and
# timed. Extra arguments go to the kernel report (e.g. --size 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh >/dev/null
bash ci/fetch-models.sh >/dev/null
cargo run --release --locked --quiet -p edgepack-harness --bin kernel-report -- "$@"
cargo build --release --locked --quiet -p edgepack-cli
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
for m in ch_PP-OCRv4_det_infer:1x3x640x640 ch_ppocr_mobile_v2.0_cls_infer:1x3x48x192; do
    name=${m%%:*}
    shape=${m##*:}
    ref="$CACHE/ort-1.32.0-outputs/$name"
    echo
    ./target/release/edgepack parity "$CACHE/models/rapidocr-1.4.4/$name.onnx" --shape "$shape" \
        --input "$ref/input_0.npy" --expect "$ref/output_0.npy" --expect-label "ONNX Runtime 1.32.0" \
        --json "target/reports/$name.parity.json" --junit "target/reports/$name.parity.junit.xml"
    ./target/release/edgepack bench "$CACHE/models/rapidocr-1.4.4/$name.onnx" --shape "$shape" \
        --input "$ref/input_0.npy" --runs 10 | tail -n 1
done
