#!/usr/bin/env bash
# Fetches the real models of the model-execution tests and benchmarks, and the pinned ONNX
# Runtime used as the external reference, into the cache folder (nothing is committed):
#   $CACHE/models/rapidocr-1.4.4/{ch_PP-OCRv4_det_infer,ch_ppocr_mobile_v2.0_cls_infer}.onnx
#     from the rapidocr-onnxruntime 1.4.4 wheel on PyPI;
#   $CACHE/venv-ort-1.32.0: a venv with onnxruntime 1.32.0 and numpy 2.1.3 (for
#     benches/ort_model.py), made unless EDGEPACK_NO_ORT=1.
# Idempotent: finished parts are kept (stamp files).
set -euo pipefail
cd "$(dirname "$0")/.."

RAPIDOCR_VERSION=1.4.4
ORT_VERSION=1.32.0
NUMPY_VERSION=2.1.3
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
MODELS="$CACHE/models/rapidocr-$RAPIDOCR_VERSION"
command -v python3 >/dev/null || { echo "fetch-models: python3 is required" >&2; exit 1; }

if [ -f "$MODELS/.complete" ]; then
    echo "models: cached in $MODELS"
else
    mkdir -p "$CACHE/wheels"
    python3 -m pip download --quiet --no-deps --dest "$CACHE/wheels" "rapidocr-onnxruntime==$RAPIDOCR_VERSION"
    rm -rf "$MODELS"
    mkdir -p "$MODELS"
    python3 - "$CACHE/wheels/rapidocr_onnxruntime-$RAPIDOCR_VERSION-py3-none-any.whl" "$MODELS" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
want = ["ch_PP-OCRv4_det_infer.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx"]
with zipfile.ZipFile(wheel) as z:
    for name in want:
        data = z.read("rapidocr_onnxruntime/models/" + name)
        with open(os.path.join(dest, name), "wb") as f:
            f.write(data)
        print(f"models: {name} ({len(data)} bytes) from {os.path.basename(wheel)}")
PY
    touch "$MODELS/.complete"
fi

if [ "${EDGEPACK_NO_ORT:-0}" = 1 ]; then
    exit 0
fi
VENV="$CACHE/venv-ort-$ORT_VERSION"
if [ -f "$VENV/.complete" ]; then
    echo "onnxruntime: cached in $VENV"
else
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION"
    touch "$VENV/.complete"
    echo "onnxruntime: $ORT_VERSION installed in $VENV"
fi

# ORT's outputs for the parity tests (cheap; redone when missing).
REF="$CACHE/ort-$ORT_VERSION-outputs"
if [ -f "$REF/.complete" ]; then
    echo "ort reference outputs: cached in $REF"
else
    rm -rf "$REF"
    "$VENV/bin/python" ci/ort_reference.py "$MODELS" "$REF"
    touch "$REF/.complete"
fi
