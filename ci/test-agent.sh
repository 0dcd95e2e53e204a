#!/usr/bin/env bash
# The edge agent with a client nobody here wrote: a Python client generated from
# agent/proto/edge-agent.proto with grpcio-tools (PyPI) drives an agent serving a component a
# packaging job published, laid out as Greengrass installs it (ci/greengrass.py), with the
# model's Install step (device parity with the agent's binary) and the agent's Run step run from
# their recipes with nothing but /usr/bin:/bin on PATH.
#   ci/test-agent.sh ARCH AGENT_BUILDS [EDGEPACK]
# ARCH: x86_64 (native) or aarch64 (the static agent under qemu-aarch64, on a component planned
# for NEON); AGENT_BUILDS: a folder with <arch>/edgepack-agent (what packaging jobs publish);
# EDGEPACK: the CLI (default target/debug/edgepack).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$1 builds=$(realpath "$2") edgepack=$(realpath "${3:-target/debug/edgepack}")
work=$PWD/target/agent-e2e/$arch
rm -rf "$work"
python=$(bash ci/setup-grpc.sh "$work/stubs")
export EDGEPACK_HOME=$work/home EDGEPACK_AGENT_DIR=$builds
case $arch in
    aarch64) platform='{"Os": "LINUX", "Arch": "ARM64"}' options="{'mcpu': 'generic'}" gg_arch=aarch64
             run_prefix="qemu-aarch64" ;;
    *) . ci/host-target.sh
       gg_arch=amd64 run_prefix="" ;;
esac
"$edgepack" sample-model --kind segmentation --size 96x128 --out "$work/defects.onnx" >/dev/null
"$edgepack" create-project --project-name line >/dev/null
"$edgepack" import-model --project-name line --model "$work/defects.onnx" --contract "file://$work/defects.contract.json" >/dev/null
echo "{\"Greengrass\": {\"TargetPlatform\": $platform, \"CompilerOptions\": \"$options\",
  \"S3OutputLocation\": {\"Bucket\": \"parts\", \"Prefix\": \"line\"}, \"ComponentName\": \"line.Defects\"}}" > "$work/cfg.json"
"$edgepack" start-model-packaging-job --project-name line --model-version 1 --configuration "file://$work/cfg.json" \
    --wait --query 'ModelPackagingDescription.StatusMessage' --output text
root=$work/greengrass/v2
bucket=$EDGEPACK_HOME/buckets/parts/line
python3 ci/greengrass.py install "$root" "$gg_arch" "$bucket/line.Defects/1.0.0" "$bucket/edgepack.EdgeAgent/"*
socket=$work/agent.sock
# Greengrass runs lifecycle scripts with sh; aarch64 binaries go through qemu-aarch64.
install=$(python3 ci/greengrass.py script "$root" "$gg_arch" line.Defects Install "unix://$socket")
run=$(python3 ci/greengrass.py script "$root" "$gg_arch" edgepack.EdgeAgent Run "unix://$socket")
echo "Install: $install"
env -i PATH=/usr/bin:/bin sh -c "$run_prefix $install"
echo "Run: $run"
env -i PATH=/usr/bin:/bin sh -c "exec $run_prefix $run" 2> "$work/agent.log" &
agent=$!
trap 'kill $agent 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || { cat "$work/agent.log"; echo "the agent did not open its socket" >&2; exit 1; }
"$python" ci/agent_client.py "$work/stubs" "$socket" line.Defects
kill -TERM $agent
wait $agent
trap - EXIT
[ ! -e "$socket" ] || { echo "the agent left its socket behind" >&2; exit 1; }
echo "agent log:"
sed 's/^/  /' "$work/agent.log"
