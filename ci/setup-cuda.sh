#!/usr/bin/env bash
# Installs NVIDIA's run-time CUDA C compiler (NVRTC, CUDA 11.8) from Debian's non-free
# component, idempotently, so the CUDA kernels are compiled for every supported gpu-code and
# ptxas reports their registers and spills on a machine without a GPU. The full toolkit
# (nvidia-cuda-toolkit, 2.8 GB) is not needed and not installed.
#
# Prints the folder to put on LD_LIBRARY_PATH: it holds `libnvrtc.so`, the name cudarc loads.
#
# `setup-cuda.sh --nvrtc12` instead fetches NVRTC 12.8 from NVIDIA's PyPI wheel (CUDA 11.8
# cannot target Hopper's architecture-specific sm_90a, which the wgmma kernel needs) into
# .cache/nvrtc-12.8 and prints that folder.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --nvrtc12 ]; then
    wheel_version=12.8.93
    dir=.cache/nvrtc-12.8
    if [ ! -f "$dir/libnvrtc.so.12" ]; then
        command -v python3 >/dev/null || { echo "setup-cuda: python3 is required for --nvrtc12" >&2; exit 1; }
        echo "setup-cuda: fetching nvidia-cuda-nvrtc-cu12 $wheel_version" >&2
        mkdir -p .cache/wheels "$dir"
        python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_12_x86_64 \
            --dest .cache/wheels "nvidia-cuda-nvrtc-cu12==$wheel_version" >&2
        python3 - ".cache/wheels" "$wheel_version" "$dir" <<'PY'
import glob, os, sys, zipfile
wheels, version, dest = sys.argv[1:]
[wheel] = glob.glob(f"{wheels}/nvidia_cuda_nvrtc_cu12-{version}-*.whl")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if base in ("libnvrtc.so.12", "libnvrtc-builtins.so.12.8"):
            with open(os.path.join(dest, base + ".part"), "wb") as f:
                f.write(z.read(name))
            os.replace(os.path.join(dest, base + ".part"), os.path.join(dest, base))
PY
    fi
    [ -f "$dir/libnvrtc-builtins.so.12.8" ] || { echo "setup-cuda: $dir lacks libnvrtc-builtins.so.12.8" >&2; exit 1; }
    ln -sf libnvrtc.so.12 "$dir/libnvrtc.so"
    echo "setup-cuda: NVRTC $dir/libnvrtc.so.12 ($wheel_version)" >&2
    realpath "$dir"
    exit 0
fi

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
