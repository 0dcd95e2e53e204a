#!/usr/bin/env bash
# Installs NVIDIA's run-time CUDA C compiler (NVRTC, CUDA 11.8) from Debian's non-free
# component, idempotently, so the CUDA kernels are compiled for every supported gpu-code and
# ptxas reports their registers and spills on a machine without a GPU. The full toolkit
# (nvidia-cuda-toolkit, 2.8 GB) is not needed and not installed.
#
# Prints the folder to put on LD_LIBRARY_PATH: it holds `libnvrtc.so`, the name cudarc loads.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libnvrtc11.2 libnvrtc-builtins11.8)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-cuda: missing ${missing[*]}; run this script as root (it uses apt-get)" >&2
        exit 1
    fi
    echo "setup-cuda: installing ${missing[*]}" >&2
    sources=/etc/apt/sources.list.d/edgepack-non-free.sources
    if [ ! -f "$sources" ]; then
        cat >"$sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
lib=$(dpkg -L libnvrtc11.2 | grep -E '/libnvrtc\.so\.[0-9.]+$' | head -1)
[ -n "$lib" ] || { echo "setup-cuda: libnvrtc11.2 holds no libnvrtc.so.*" >&2; exit 1; }
dir=.cache/cuda-lib
mkdir -p "$dir"
ln -sf "$lib" "$dir/libnvrtc.so"
echo "setup-cuda: NVRTC $lib" >&2
realpath "$dir"
