#!/usr/bin/env bash
# The ARM64 suites, as aarch64 binaries under qemu-aarch64 (static, see .cargo/config.toml):
#  1. every kernel and harness test, NEON and scalar sets, full proptest case count, on qemu's
#     `max` CPU;
#  2. per emulated CPU model (a Cortex-A72-class and a Neoverse-N1-class core), the GEMM and convolution suites
#     with ARM64_MODEL_CASES proptest cases (default 32: every operation, epilogue and edge-tile
#     class still runs; only the number of random shapes shrinks);
#  3. a parity report (JSON + JUnit) per device run under target/reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-arm64.sh
export CARGO_TARGET_DIR=target/cross RUSTC=/usr/bin/rustc
cargo=/usr/bin/cargo
triple=aarch64-unknown-linux-gnu
test_args=(--locked --target "$triple" -p edgepack-kernels -p edgepack-harness)

echo "== arm64 (qemu max): cargo test --lib --tests (real-model tests: the classifier only)"
# The detector's float64 reference alone takes minutes under emulation; the classifier runs
# the same model path (import, folding, every fused epilogue, plans on NEON and scalar).
EDGEPACK_MODELS=ch_ppocr_mobile_v2.0_cls_infer $cargo test "${test_args[@]}" --lib --tests
for cpu in cortex-a72 neoverse-n1; do
    echo "== arm64 (qemu $cpu): GEMM and convolution suites, PROPTEST_CASES=${ARM64_MODEL_CASES:-32}"
    QEMU_CPU=$cpu PROPTEST_CASES=${ARM64_MODEL_CASES:-32} $cargo test "${test_args[@]}" --test kernel_sets
done
for cpu in max cortex-a72 neoverse-n1; do
    echo "== arm64 (qemu $cpu): parity report"
    QEMU_CPU=$cpu $cargo run --locked --quiet --target "$triple" --profile test -p edgepack-harness --bin kernel-report -- \
        --parity-only --label "qemu-aarch64 $cpu" --cpu "qemu-aarch64 -cpu $cpu, emulated on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
        --json "target/reports/qemu-arm64-$cpu.json" --junit "target/reports/qemu-arm64-$cpu.junit.xml"
done
