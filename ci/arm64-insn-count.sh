#!/usr/bin/env bash
# Retired aarch64 instructions per f32 GEMM, NEON set vs the portable set, counted under
# qemu-aarch64: with -singlestep every translation block is one instruction and -d exec,nochain
# logs each execution, so log lines = instructions. One GEMM's count is the difference between
# runs with 2 and 1 GEMMs (start-up, packing of B and allocation cancel). Deterministic: the
# same binary gives the same count. Emulation timings mean nothing; counts do.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-arm64.sh >/dev/null
export CARGO_TARGET_DIR=target/cross RUSTC=/usr/bin/rustc
triple=aarch64-unknown-linux-gnu
/usr/bin/cargo build --locked --quiet --release --target "$triple" -p edgepack-kernels --example insn_count
bin=target/cross/$triple/release/examples/insn_count
log=$(mktemp)
trap 'rm -f "$log"' EXIT
count() { # set m n k reps -> executed instructions
    qemu-aarch64 -L /usr/aarch64-linux-gnu -singlestep -d exec,nochain -D "$log" "$bin" "$@" >/dev/null
    grep -c '^Trace' "$log"
}
printf '| shape (m×n×k) | set | instructions per GEMM | FMA lanes per instruction |\n|---|---|---:|---:|\n'
for shape in "64 64 64" "96 96 96" "192 48 64"; do
    read -r m n k <<<"$shape"
    for set in neon scalar; do
        one=$(count "$set" "$m" "$n" "$k" 1)
        two=$(count "$set" "$m" "$n" "$k" 2)
        per=$((two - one))
        printf '| %s×%s×%s | %s | %d | %.2f |\n' "$m" "$n" "$k" "$set" "$per" "$(awk -v p="$per" -v w="$((m * n * k))" 'BEGIN { print w / p }')"
    done
done
