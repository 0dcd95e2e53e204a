#!/usr/bin/env bash
# Installs cargo-zigbuild and Zig (both from PyPI, pinned) into .cache/venv-zig, idempotently,
# and prints the venv's bin folder. ci/build-device.sh links the Jetson (aarch64 + CUDA) build
# with Zig, which links against any glibc version's symbols (here JetPack 5's 2.31), where
# Debian's cross toolchain only knows its own glibc (2.36).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv-zig
want="cargo-zigbuild==0.24.1 ziglang==0.17.1"
if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$want" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet $want
    echo "$want" >"$venv/.installed"
    echo "setup-zig: installed $want into $venv" >&2
fi
echo "$PWD/$venv/bin"
