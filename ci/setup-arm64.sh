#!/usr/bin/env bash
# Installs what the ARM64 suite needs, from Debian's packages only, idempotently: Debian's
# rustc/cargo 1.96 with the aarch64 standard library (rustup cannot download targets here), the
# aarch64 cross linker and libc, and qemu-user to run the binaries.
set -euo pipefail

packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
missing=()
dpkg --print-foreign-architectures | grep -qx arm64 || missing+=(arch:arm64)
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-arm64: missing ${missing[*]}; run this script as root (it uses apt-get)" >&2
        exit 1
    fi
    echo "setup-arm64: installing ${missing[*]}"
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
libdir=$(/usr/bin/rustc --print target-libdir --target aarch64-unknown-linux-gnu)
ls "$libdir"/libstd-*.rlib >/dev/null 2>&1 || { echo "setup-arm64: no aarch64 std in $libdir" >&2; exit 1; }
echo "setup-arm64: $(/usr/bin/rustc --version), $(qemu-aarch64 --version | head -1)"
