#!/usr/bin/env bash
# Edge agent benchmarks (docs/performance.md): DetectAnomalies throughput and p50/p99 latency
# with 1, 2 and 8 concurrent clients through the agent, against the same work in-process, on
# the sample segmentation model (224x224) and the PP-OCRv4 detector packaged as a segmentation
# model at 640x640, each on an image of its input size. Release builds; 1-thread calls, as
# many workers as cores.
#   ci/agent-bench.sh [SECONDS_PER_ROW]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
bash ci/setup.sh >/dev/null
bash ci/fetch-models.sh >/dev/null
cargo build --release --locked --quiet -p edgepack-cli
bash ci/build-agent.sh "$(uname -m)" >/dev/null
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
edgepack=$PWD/target/release/edgepack agent=$PWD/target/agent/$(uname -m)/edgepack-agent
work=$PWD/target/agent-bench
rm -rf "$work" && mkdir -p "$work"
export EDGEPACK_HOME=$work/home EDGEPACK_AGENT_DIR=$PWD/target/agent
. ci/host-target.sh
package() { # component name
    echo "{\"Greengrass\": {\"TargetPlatform\": $platform, \"CompilerOptions\": \"$options\",
      \"S3OutputLocation\": {\"Bucket\": \"bench-components\", \"Prefix\": \"p\"}, \"ComponentName\": \"$1\"}}" > "$work/cfg.json"
    "$edgepack" start-model-packaging-job --project-name bench --model-version latest \
        --configuration "file://$work/cfg.json" --wait --query ModelPackagingDescription.Status --output text >/dev/null
}
"$edgepack" create-project --project-name bench >/dev/null
"$edgepack" sample-model --kind segmentation --size 224x224 --out "$work/sample.onnx" >/dev/null
"$edgepack" import-model --project-name bench --model "$work/sample.onnx" --contract "file://$work/sample.contract.json" >/dev/null
package bench.Sample
"$edgepack" import-model --project-name bench --model "$CACHE/models/rapidocr-1.4.4/ch_PP-OCRv4_det_infer.onnx" \
    --input-shape 1x3x640x640 --mask-output sigmoid_0.tmp_0 --mask-classes 'text:#00ff00' --threshold 0.3 >/dev/null
package bench.Detector
components=$EDGEPACK_HOME/buckets/bench-components/p
socket=$work/agent.sock
"$agent" --socket "$socket" --model "sample=$components/bench.Sample/1.0.0" --model "detector=$components/bench.Detector/2.0.0" \
    --call-threads 1 --queue 64 --start all 2> "$work/agent.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do [ -S "$socket" ] && break; sleep 0.1; done
echo "edge agent benchmark, $(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for m in sample:bench.Sample/1.0.0 detector:bench.Detector/2.0.0; do
    echo
    "$agent" bench --socket "$socket" --model "${m%%:*}" --component "$components/${m#*:}" --clients 1,2,8 \
        --seconds "$secs" --json "$work/${m%%:*}.json"
done
kill -TERM $pid && wait $pid
trap - EXIT
