#!/usr/bin/env bash
# Fetches the ONNX project's own conformance data for Conv / ConvTranspose from the pinned
# `onnx` wheel on PyPI into the cache folder, for harness/tests/onnx_conformance.rs.
# Idempotent: does nothing when the data is already there. Needs python3 with pip and access
# to PyPI (a package registry); nothing is committed to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

ONNX_VERSION=1.17.0
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
DEST="$CACHE/onnx-$ONNX_VERSION"
STAMP="$DEST/.complete-v4"
if [ -f "$STAMP" ]; then
    echo "onnx data: cached in $DEST"
    exit 0
fi
command -v python3 >/dev/null || { echo "fetch-onnx-data: python3 is required" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || { echo "fetch-onnx-data: python3 -m pip is required" >&2; exit 1; }
mkdir -p "$CACHE/wheels"
# Any platform's wheel carries the same data; ask for one that exists for every CPython.
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 --dest "$CACHE/wheels" "onnx==$ONNX_VERSION"
WHEEL=$(ls "$CACHE"/wheels/onnx-"$ONNX_VERSION"-*.whl | head -n1)
rm -rf "$DEST"
python3 - "$WHEEL" "$DEST" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "onnx/backend/test/data/"
# Conv / ConvTranspose for the kernel conformance test; the node tests of every operator the
# model importer supports for harness/tests/onnx_node_conformance.rs.
ops = ["conv", "add", "sub", "mul", "div", "relu", "sigmoid", "clip", "hardsigmoid", "hardswish",
       "globalaveragepool", "maxpool", "averagepool", "resize", "concat", "reshape", "flatten",
       "shape", "slice", "cast", "matmul", "gemm", "softmax", "identity", "batchnorm",
       # The operator-coverage set (issue 24): every name is a prefix of test directories.
       "transpose", "split", "gather", "scatter", "squeeze", "unsqueeze", "expand", "tile",
       "range", "constantofshape", "size", "where", "equal", "less", "greater", "and", "or",
       "not", "xor", "pad", "constant_pad", "edge_pad", "reflect_pad", "wrap_pad", "reduce_",
       "argmax", "argmin", "logsoftmax", "layer_normalization", "instancenorm",
       "group_normalization", "erf", "gelu", "pow", "sqrt", "reciprocal", "exp", "log", "abs",
       "neg", "floor", "ceil", "round", "sign", "mod_", "min_", "max_", "mean", "sum_", "einsum",
       "lstm", "gru", "upsample", "depthtospace", "spacetodepth", "globalmaxpool",
       "lpnormalization", "prelu", "leakyrelu", "elu", "selu", "celu", "mish", "softplus",
       "softsign", "tanh", "topk", "cumsum", "nonmaxsuppression", "dropout", "quantizelinear",
       "dequantizelinear", "dynamicquantizelinear", "qlinear", "matmulinteger", "hardmax",
       "thresholdedrelu", "shrink", "isnan", "isinf", "sin", "cos", "tan", "asin", "acos",
       "atan", "sinh", "cosh", "mvn", "bitwise", "castlike", "training_dropout"]
wanted = ("pytorch-converted/test_Conv",) + tuple("node/test_" + o for o in ops)
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and name[len(prefix):].startswith(wanted) and not name.endswith("/"):
            out = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(z.read(name))
            n += 1
print(f"onnx data: {n} files from {os.path.basename(wheel)} into {dest}")
PY
touch "$STAMP"
