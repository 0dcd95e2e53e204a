#!/usr/bin/env bash
# Device builds (issue 29): what a board needs, built on this x86_64 machine, one folder per
# bundle under target/device/ (the layout `edgepack-hil --bundles` reads):
#
#   ci/build-device.sh [x86_64|aarch64|aarch64-cuda|x86_64-cuda|all ...] [--profile release|device-check]
#
#   <bundle>/kernel-report   the kernel parity suite and GEMM figures (edgepack-hil's
#                            kernel-parity step; `--parity-only --json F --junit F`)
#   <bundle>/edgepack-agent  the on-device runtime: the device parity check of a component,
#                            `bench` (the model benchmark on the board), the agent API
#   <bundle>/kernel_sets     the kernel test suites (libtest; on a CUDA bundle with the CUDA
#   <bundle>/math            set's suites, and cuda_f16), run as `./kernel_sets --test-threads N`
#   <bundle>/BUILD.txt       what was built, for which device, and how it links
#
# Linking rule:
# - CPU bundles (x86_64 for AVX-512/AVX2 boxes, aarch64 for NEON boards) are static
#   (glibc, +crt-static): they run on any Linux of their architecture with nothing installed,
#   and under qemu-aarch64 here (a dynamic aarch64 binary hangs there at its first thread).
# - The CUDA bundle (Jetson) is dynamic: cudarc loads libcuda, libnvrtc and libcublas with
#   dlopen at run time, and a statically linked glibc program cannot load a shared library
#   built against the system's libc.so.6 (glibc documents that a static program's dlopen needs
#   the very glibc version it was linked with at run time; on a board it would load a second,
#   different libc). Debian's cross glibc is 2.36, newer than any JetPack's, so this bundle is
#   linked by Zig (cargo-zigbuild, ci/setup-zig.sh) against glibc 2.31: JetPack 5.x
#   (Ubuntu 20.04, CUDA 11.4 — the cudarc API level the workspace pins, `cuda-11040`), the
#   newest JetPack for Xavier (sm_72), and runs on JetPack 6 (Ubuntu 22.04, glibc 2.35,
#   CUDA 12.2; Orin, sm_87) too. JetPack 4 (CUDA 10.2, glibc 2.27) is not supported:
#   cudarc's oldest API level is CUDA 11.4. The script checks the highest GLIBC symbol
#   version every dynamic binary needs.
# - x86_64-cuda (an x86_64 box with an NVIDIA GPU: an edge server, a GPU test machine) follows
#   the same rule, also linked by Zig against glibc 2.31 (Ubuntu 20.04 and newer). `all`
#   builds the three bundles a board rack needs, not this one.
#
# --profile release (the default) is what ships; device-check (no optimisation, fast to
# build) is what CI builds to prove the bundles link. Prints each bundle's folder.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release bundles=()
while [ $# -gt 0 ]; do
    case $1 in
        x86_64 | aarch64 | aarch64-cuda | x86_64-cuda) bundles+=("$1") ;;
        all) bundles+=(x86_64 aarch64 aarch64-cuda) ;;
        --profile) profile=$2; shift ;;
        *) echo "usage: ci/build-device.sh [x86_64|aarch64|aarch64-cuda|x86_64-cuda|all ...] [--profile release|device-check]" >&2; exit 2 ;;
    esac
    shift
done
[ ${#bundles[@]} -gt 0 ] || bundles=(x86_64 aarch64 aarch64-cuda)
# The glibc the CUDA bundles link against (JetPack 5.x).
jetson_glibc=2.31

# The kernel report and the test executables of a `cargo test --no-run --message-format=json`
# on stdin, as "name path" (integration tests make cargo build the package's binaries too).
executables() {
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    kind, name = m["target"]["kind"], m["target"]["name"]
    if kind == ["test"] or (kind == ["bin"] and name == "kernel-report"):
        print(name, m["executable"])'
}

# build BUNDLE TRIPLE FEATURES CARGO...: kernel-report and the kernel test suites into the
# bundle's folder, from one `CARGO... test --no-run` (the toolchain and linker differ by
# bundle; a triple cargo-zigbuild is given ends in the glibc version).
build() {
    local out=$1 triple=$2 features=$3
    shift 3
    local tests=(--test kernel_sets --test math)
    [ -n "$features" ] && tests+=(--test cuda_f16)
    "$@" test --locked --quiet --no-run --message-format=json --target "$triple" --profile "$profile" \
        -p edgepack-harness -p edgepack-kernels ${features:+--features "edgepack-harness/$features"} "${tests[@]}" |
        executables | while read -r name exe; do cp "$exe" "$out/$name"; done
    [ -x "$out/kernel-report" ] || { echo "ci/build-device.sh: no kernel-report was built for $triple" >&2; exit 1; }
}

# The highest GLIBC_x.y symbol version a dynamic ELF needs.
glibc_needed() {
    readelf --dyn-syms -W "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1
}

for bundle in "${bundles[@]}"; do
    out=target/device/$bundle
    rm -rf "$out" && mkdir -p "$out"
    case $bundle in
        x86_64)
            # --target keeps +crt-static off the build scripts and proc macros (host-only code).
            CARGO_TARGET_DIR=target/device-build CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
                build "$out" x86_64-unknown-linux-gnu "" cargo
            agent_arch=x86_64 link="static" ;;
        aarch64)
            bash ci/setup-arm64.sh >&2
            # .cargo/config.toml: the cross linker and +crt-static for this triple.
            CARGO_TARGET_DIR=target/device-build RUSTC=/usr/bin/rustc build "$out" aarch64-unknown-linux-gnu "" /usr/bin/cargo
            agent_arch=aarch64 link="static" ;;
        aarch64-cuda)
            bash ci/setup-arm64.sh >&2
            zig_bin=$(bash ci/setup-zig.sh)
            # Zig links (its own glibc stubs at $jetson_glibc); RUSTFLAGS replaces .cargo/config.toml's
            # +crt-static (a target's rustflags from the environment would be appended to it);
            # Debian's rustc has the aarch64 standard library, and cargo-zigbuild runs the
            # `cargo` it finds first.
            PATH=$zig_bin:/usr/bin:$PATH CARGO_TARGET_DIR=target/device-build-cuda RUSTC=/usr/bin/rustc \
                RUSTFLAGS="-C target-feature=-crt-static" \
                build "$out" "aarch64-unknown-linux-gnu.$jetson_glibc" cuda "$zig_bin/cargo-zigbuild"
            agent_arch=aarch64 link="dynamic, glibc >= $jetson_glibc" ;;
        x86_64-cuda)
            zig_bin=$(bash ci/setup-zig.sh)
            PATH=$zig_bin:$PATH CARGO_TARGET_DIR=target/device-build-cuda \
                build "$out" "x86_64-unknown-linux-gnu.$jetson_glibc" cuda "$zig_bin/cargo-zigbuild"
            agent_arch=x86_64 link="dynamic, glibc >= $jetson_glibc" ;;
    esac
    # The agent is the same static binary on a CPU or a CUDA board of one architecture.
    agent_profile=$profile
    [ "$profile" = device-check ] && agent_profile=emulated-agent
    cp "$(bash ci/build-agent.sh "$agent_arch" --profile "$agent_profile" | tail -1)" "$out/edgepack-agent"
    # Line tables are for development builds; the board gets the code and the symbols.
    strip=strip
    [ "$agent_arch" = aarch64 ] && strip=aarch64-linux-gnu-strip
    $strip --strip-debug "$out"/*
    # Check what each binary links like, and what the dynamic ones need of glibc.
    {
        echo "bundle: $bundle ($profile profile), built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)"
        echo "linking: $link"
        for f in "$out"/*; do
            [ "$(basename "$f")" = BUILD.txt ] && continue
            desc=$(file -b "$f")
            case $desc in
                *aarch64*) arch=aarch64 ;;
                *x86-64*) arch=x86_64 ;;
                *) echo "ci/build-device.sh: $f is not an ELF of a known architecture: $desc" >&2; exit 1 ;;
            esac
            [ "$arch" = "$agent_arch" ] || { echo "ci/build-device.sh: $f is $arch in the $bundle bundle" >&2; exit 1; }
            if [[ $desc == *"dynamically linked"* ]]; then
                need=$(glibc_needed "$f")
                # Only the CUDA bundles' own binaries may be dynamic; the agent is static everywhere.
                if [[ $bundle != *-cuda ]] || [ "$(basename "$f")" = edgepack-agent ]; then
                    echo "ci/build-device.sh: $f is dynamically linked" >&2; exit 1
                fi
                if [ "$(printf '%s\n%s\n' "$need" "$jetson_glibc" | sort -V | tail -1)" != "$jetson_glibc" ]; then
                    echo "ci/build-device.sh: $f needs GLIBC_$need, newer than JetPack 5's $jetson_glibc" >&2; exit 1
                fi
                echo "$(basename "$f"): $arch, dynamic, needs GLIBC_$need at most, $(du -h "$f" | cut -f1)"
            else
                echo "$(basename "$f"): $arch, static, $(du -h "$f" | cut -f1)"
            fi
        done
    } >"$out/BUILD.txt"
    echo "$PWD/$out"
done
