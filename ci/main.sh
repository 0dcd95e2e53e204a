#!/usr/bin/env bash
# The main job: a real packaging run. A sample defect-detection model this repository builds
# itself is imported into a project and packaged as a Greengrass component for this host's
# CPU (the job plans for the target's kernels, checks parity, publishes atomically to a local
# bucket), then the real PP-OCRv4 detector (ci/fetch-models.sh) likewise; then the kernel
# report of every kernel set this host can run, and both real models checked against the
# float64 reference and ONNX Runtime and timed. Extra arguments go to the kernel report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh >/dev/null
bash ci/fetch-models.sh >/dev/null
cargo build --release --locked --quiet -p edgepack-cli
# The static edge agent for this host (target/agent/<arch>/): jobs publish it as the
# edgepack.EdgeAgent component beside each model component.
bash ci/build-agent.sh "$(uname -m)" >/dev/null
export EDGEPACK_AGENT_DIR=$PWD/target/agent
edgepack=$PWD/target/release/edgepack
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
work=$PWD/target/main-job
rm -rf "$work" && mkdir -p "$work"
export EDGEPACK_HOME=$work/home

# This host's target, in the packaging API's words.
. ci/host-target.sh
configuration() { # component name
    echo "{\"Greengrass\": {\"TargetPlatform\": $platform, \"CompilerOptions\": \"$options\",
      \"S3OutputLocation\": {\"Bucket\": \"edge-components\", \"Prefix\": \"factory\"},
      \"ComponentName\": \"$1\", \"Tags\": [{\"Key\": \"line\", \"Value\": \"1\"}]}}"
}
run() { echo "\$ edgepack $*" | sed "s#$work#\$WORK#g"; "$edgepack" "$@"; }

echo "== packaging: a sample model built here"
run sample-model --kind segmentation --size 224x224 --out "$work/defects.onnx"
run create-project --project-name factory-line-1 --output text
run import-model --project-name factory-line-1 --model "$work/defects.onnx" \
    --contract "file://$work/defects.contract.json" --query ModelDescription.ModelSha256 --output text
configuration factory.DefectMask > "$work/configuration.json"
run start-model-packaging-job --project-name factory-line-1 --model-version latest \
    --configuration "file://$work/configuration.json" --job-name defect-mask-host --wait \
    --query 'ModelPackagingDescription.[Status, StatusMessage]' --output text
run verify-component --bucket edge-components --prefix factory/factory.DefectMask/1.0.0 --output text

echo
echo "== packaging: the PP-OCRv4 detector (640×640)"
run import-model --project-name factory-line-1 --model "$CACHE/models/rapidocr-1.4.4/ch_PP-OCRv4_det_infer.onnx" \
    --input-shape 1x3x640x640 --mask-output sigmoid_0.tmp_0 --mask-classes 'text:#00ff00' --threshold 0.3 \
    --query ModelDescription.ModelVersion --output text
configuration factory.TextDetector > "$work/configuration.json"
run start-model-packaging-job --project-name factory-line-1 --model-version latest \
    --configuration "file://$work/configuration.json" --job-name detector-host --wait \
    --query 'ModelPackagingDescription.[Status, StatusMessage]' --output text
run list-model-packaging-jobs --project-name factory-line-1 --output table \
    --query 'ModelPackagingJobs[].{Job: JobName, Version: ModelVersion, Status: Status}'
echo "component folders:"
(cd "$work/home/buckets" && find . -type f | sort)

echo
echo "== on a device: the published components as Greengrass installs them, served by the edge agent"
gg=$work/greengrass/v2 socket=$work/agent.sock bucket=$work/home/buckets/edge-components/factory
gg_arch=$([ "$(uname -m)" = aarch64 ] && echo aarch64 || echo amd64)
python3 ci/greengrass.py install "$gg" "$gg_arch" "$bucket/factory.TextDetector/2.0.0" "$bucket/edgepack.EdgeAgent/"* \
    | sed "s#$work#\$WORK#g"
install=$(python3 ci/greengrass.py script "$gg" "$gg_arch" factory.TextDetector Install "unix://$socket")
run=$(python3 ci/greengrass.py script "$gg" "$gg_arch" edgepack.EdgeAgent Run "unix://$socket")
echo "Install step: \$ $install" | sed "s#$work#\$WORK#g"
env -i PATH=/usr/bin:/bin sh -c "$install" | sed "s#$work#\$WORK#g"
echo "Run step: \$ $run" | sed "s#$work#\$WORK#g"
env -i PATH=/usr/bin:/bin sh -c "exec $run" 2> "$work/agent.log" &
agent=$!
trap 'kill $agent 2>/dev/null || true' EXIT
for _ in $(seq 300); do [ -S "$socket" ] && break; sleep 0.1; done
python=$(bash ci/setup-grpc.sh "$work/stubs")
echo "DetectAnomalies on a rendered 800x600 label (client generated from agent/proto/edge-agent.proto):"
"$python" ci/agent_detect.py "$work/stubs" "$socket" factory.TextDetector 800 600 "$work/device" | sed "s#$work#\$WORK#g"
kill -TERM $agent && wait $agent
trap - EXIT
sed "s#$work#\$WORK#g; s/^/  agent: /" "$work/agent.log"

echo
echo "== kernel report"
cargo run --release --locked --quiet -p edgepack-harness --bin kernel-report -- "$@"
for m in ch_PP-OCRv4_det_infer:1x3x640x640 ch_ppocr_mobile_v2.0_cls_infer:1x3x48x192; do
    name=${m%%:*}
    shape=${m##*:}
    ref="$CACHE/ort-1.32.0-outputs/$name"
    echo
    "$edgepack" parity "$CACHE/models/rapidocr-1.4.4/$name.onnx" --shape "$shape" \
        --input "$ref/input_0.npy" --expect "$ref/output_0.npy" --expect-label "ONNX Runtime 1.32.0" \
        --json "target/reports/$name.parity.json" --junit "target/reports/$name.parity.junit.xml"
    "$edgepack" bench "$CACHE/models/rapidocr-1.4.4/$name.onnx" --shape "$shape" \
        --input "$ref/input_0.npy" --runs 10 | tail -n 1
done
