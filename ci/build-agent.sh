#!/usr/bin/env bash
# Builds the edge agent as a static binary per architecture, where packaging jobs look for it:
# target/agent/<arch>/edgepack-agent (x86_64: this toolchain; aarch64: Debian's rustc and cross
# linker from ci/setup-arm64.sh). Static (glibc, +crt-static) so the agent component runs on a
# device with nothing else installed, and so the aarch64 build runs under qemu-aarch64.
#   ci/build-agent.sh [x86_64|aarch64|all] [--profile release|test|emulated-agent]
# The profile defaults to release (what ships); the tests build with a cheaper one to keep CI
# time down (`emulated-agent`, not optimised, for the agent run under qemu-aarch64). Prints
# each binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
arches=all profile=${EDGEPACK_AGENT_PROFILE:-release}
while [ $# -gt 0 ]; do
    case $1 in
        x86_64|aarch64|all) arches=$1 ;;
        --profile) profile=$2; shift ;;
        *) echo "usage: ci/build-agent.sh [x86_64|aarch64|all] [--profile P]" >&2; exit 2 ;;
    esac
    shift
done
[ "$arches" = all ] && arches="x86_64 aarch64"
dir() { case $profile in dev|test) echo debug ;; *) echo "$profile" ;; esac; }
for arch in $arches; do
    triple=$arch-unknown-linux-gnu
    out=target/agent/$arch
    mkdir -p "$out"
    if [ "$arch" = aarch64 ]; then
        bash ci/setup-arm64.sh >&2
        # .cargo/config.toml: cross linker and +crt-static for this triple.
        CARGO_TARGET_DIR=target/cross RUSTC=/usr/bin/rustc /usr/bin/cargo build --locked --quiet \
            --target "$triple" --profile "$profile" -p edgepack-agent --bin edgepack-agent >&2
        cp "target/cross/$triple/$(dir)/edgepack-agent" "$out/edgepack-agent.tmp"
    else
        # --target keeps +crt-static off the build scripts and proc macros (host-only code).
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --quiet \
            --target "$triple" --profile "$profile" -p edgepack-agent --bin edgepack-agent >&2
        cp "target/$triple/$(dir)/edgepack-agent" "$out/edgepack-agent.tmp"
    fi
    # Debug line tables are for development builds; the device gets the code only.
    strip=strip
    [ "$arch" = aarch64 ] && strip=aarch64-linux-gnu-strip
    $strip --strip-debug "$out/edgepack-agent.tmp"
    mv "$out/edgepack-agent.tmp" "$out/edgepack-agent"
    if file "$out/edgepack-agent" 2>/dev/null | grep -q "dynamically linked"; then
        echo "ci/build-agent.sh: $out/edgepack-agent is not static" >&2
        exit 1
    fi
    echo "$PWD/$out/edgepack-agent"
done
