#!/usr/bin/env bash
# The convolution benchmark table (issue 3): exports the benchmark layers as single-node ONNX
# models, times them with ONNX Runtime (pinned wheel, one thread) in a virtual environment
# under the cache folder, then runs `conv-table`: edgepack and tract in the same process, the
# ORT figures alongside. Idempotent; needs python3 with venv/pip and access to PyPI.
# Output: the markdown table on stdout and target/conv-bench/conv.json.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.20.1
NUMPY_VERSION=2.1.3
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
VENV="$CACHE/venv-ort-$ORT_VERSION"
OUT=target/conv-bench
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import onnxruntime" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION"
fi
cargo build --release --locked --quiet -p edgepack-benches --features onnx-peers --bin conv-table
mkdir -p "$OUT"
./target/release/conv-table --export "$OUT/models" "$@"
"$VENV/bin/python" benches/ort_conv.py "$OUT/models" "$OUT/ort.json" >"$OUT/ort.log"
./target/release/conv-table --ort "$OUT/ort.json" --json "$OUT/conv.json" "$@"
