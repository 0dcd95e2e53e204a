#!/usr/bin/env bash
# The model zoo of the operator-coverage and parity tests (issue 24): exports of open
# architectures from torchvision and timm with random weights, and small networks defined
# in ci/zoo_export.py, all opset 17, plus ONNX Runtime's outputs for a fixed input of each
# (made once, cached). Nothing is committed; everything comes from PyPI at pinned versions.
#   $EDGEPACK_ZOO_VENV (default ~/.cache/edgepack/venv-zoo-torch2.5.1): torch, torchvision,
#     timm (5 GB with torch's CUDA wheels; kept outside the clone so a new clone reuses it);
#   $CACHE/zoo-v1/<name>.onnx and zoo.json (the manifest the tests and benchmarks read);
#   $CACHE/zoo-v1/ort-1.32.0/<name>/{input_0,output_<k>}.npy (ci/zoo_ort.py, the ORT venv
#     of ci/fetch-models.sh).
# Idempotent: finished parts are kept (stamp files).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=2.5.1
TORCHVISION=0.20.1
TIMM=1.0.11
NUMPY=2.1.3
ONNX=1.17.0
ORT_VERSION=1.32.0
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
VENV="${EDGEPACK_ZOO_VENV:-$HOME/.cache/edgepack/venv-zoo-torch$TORCH}"
ZOO="$CACHE/zoo-v1"
command -v python3 >/dev/null || { echo "fetch-zoo: python3 is required" >&2; exit 1; }

if [ -f "$VENV/.complete" ]; then
    echo "zoo: exporter venv cached in $VENV"
else
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH" "torchvision==$TORCHVISION" "timm==$TIMM" \
        "numpy==$NUMPY" "onnx==$ONNX"
    touch "$VENV/.complete"
    echo "zoo: torch $TORCH, torchvision $TORCHVISION, timm $TIMM installed in $VENV"
fi

# The rapidocr wheel (a vision model shipped inside a package) and the ORT venv.
EDGEPACK_NO_ORT=0 bash ci/fetch-models.sh >/dev/null

# Re-export when the exporter or this script changes (their hash is in the stamp).
stamp="$ZOO/.complete-$(cat ci/zoo_export.py ci/fetch-zoo.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
    echo "zoo: models cached in $ZOO"
else
    rm -rf "$ZOO"
    mkdir -p "$ZOO"
    "$VENV/bin/python" -W ignore ci/zoo_export.py "$ZOO" 2>&1 | grep '^zoo:'
    # Shipped inside a package: the PP-OCRv4 text recognizer of rapidocr-onnxruntime 1.4.4
    # (SVTR-style attention blocks over a CNN; 860 nodes; dynamic H/W), planned at 48×320.
    python3 - "$CACHE/wheels/rapidocr_onnxruntime-1.4.4-py3-none-any.whl" "$ZOO" <<'PY'
import json, os, sys, zipfile
wheel, zoo = sys.argv[1], sys.argv[2]
name = "ch_PP-OCRv4_rec_infer"
with zipfile.ZipFile(wheel) as z:
    data = z.read(f"rapidocr_onnxruntime/models/{name}.onnx")
with open(os.path.join(zoo, name + ".onnx"), "wb") as f:
    f.write(data)
path = os.path.join(zoo, "zoo.json")
m = json.load(open(path))
m["models"].append({"name": name, "file": name + ".onnx", "shape": [1, 3, 48, 320],
                    "about": "PP-OCRv4 text recognizer (SVTR attention over a CNN, CTC output)",
                    "source": "rapidocr-onnxruntime 1.4.4 wheel", "dynamic_hw": True})
json.dump(m, open(path, "w"), indent=1)
print(f"zoo: {name} [1, 3, 48, 320] ({len(data)} bytes, from {os.path.basename(wheel)})")
PY
    touch "$stamp"
fi

REF="$ZOO/ort-$ORT_VERSION"
if [ -f "$REF/.complete" ]; then
    echo "zoo: ONNX Runtime outputs cached in $REF"
else
    rm -rf "$REF"
    "$CACHE/venv-ort-$ORT_VERSION/bin/python" ci/zoo_ort.py "$ZOO" "$REF"
    touch "$REF/.complete"
fi
