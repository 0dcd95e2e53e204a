#!/usr/bin/env bash
# A Python client toolchain for the edge agent, idempotently: a venv with grpcio-tools (PyPI),
# and the client stubs generated from agent/proto/edge-agent.proto into STUBS_DIR.
#   ci/setup-grpc.sh STUBS_DIR    prints the venv's python
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${EDGEPACK_CACHE:-$PWD/.cache}"
GRPC_VERSION=1.85.1
venv="$CACHE/venv-grpc-$GRPC_VERSION"
if ! "$venv/bin/python" -c "import grpc_tools" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet "grpcio-tools==$GRPC_VERSION" >&2
fi
mkdir -p "$1"
"$venv/bin/python" -m grpc_tools.protoc -I agent/proto --python_out="$1" --grpc_python_out="$1" agent/proto/edge-agent.proto
echo "$venv/bin/python"
