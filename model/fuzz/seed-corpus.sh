#!/usr/bin/env bash
# Seeds the importer fuzz target's corpus (model/fuzz/corpus/import, not committed) with
# the ONNX node tests' models of every operator the importer knows (ci/fetch-onnx-data.sh)
# and the model zoo's smaller models (ci/fetch-zoo.sh): the corpus grows with the operators.
#     bash model/fuzz/seed-corpus.sh && (cd model/fuzz && cargo fuzz run import corpus/import)
set -euo pipefail
cd "$(dirname "$0")"
CACHE="${EDGEPACK_CACHE:-$PWD/../../.cache}"
mkdir -p corpus/import
n=0
for m in "$CACHE"/onnx-*/node/*/model.onnx; do
    cp "$m" "corpus/import/node-$(basename "$(dirname "$m")").onnx"
    n=$((n + 1))
done
for m in "$CACHE"/zoo-v1/*.onnx; do
    [ "$(stat -c %s "$m")" -lt 8000000 ] || continue
    cp "$m" "corpus/import/zoo-$(basename "$m")"
    n=$((n + 1))
done
echo "fuzz corpus: $n seeds in $PWD/corpus/import"
