#!/usr/bin/env bash
# The ARM64 suites, as aarch64 binaries under qemu-aarch64 (static, see .cargo/config.toml):
#  1. every kernel and harness test, NEON and scalar sets, on qemu's `max` CPU, with
#     ARM64_MAX_CASES proptest cases (default 64; the native run has the full count of the same
#     generic suites, emulation makes every case ~10× slower);
#  2. on an emulated Cortex-A72 (ARMv8.0: the fewest features a board of ours has), the NEON
#     set's GEMM and convolution suites with ARM64_MODEL_CASES proptest cases (default 16: every
#     operation, epilogue and edge-tile class still runs; only the number of random shapes
#     shrinks), so that an instruction beyond ARMv8.0 shows as SIGILL; the scalar set's suites
#     are the same code on every core and ran in step 1. The NEON set detects no feature but
#     `neon`, so a core between the two (Neoverse-N1) runs the same instructions as `max` and
#     the A72: it gets the parity report only;
#  3. a parity report (JSON + JUnit) per device run under target/reports/;
#  4. the static aarch64 edge agent serving a NEON component to the generated Python client.
set -euo pipefail
cd "$(dirname "$0")/.."
# Stage headers carry the wall clock and the seconds since this script started.
stage() { printf '== %s  [%s, +%ss]\n' "$*" "$(date +%T)" "$SECONDS"; }
bash ci/setup-arm64.sh
export CARGO_TARGET_DIR=target/cross RUSTC=/usr/bin/rustc
cargo=/usr/bin/cargo
triple=aarch64-unknown-linux-gnu
test_args=(--locked --target "$triple" -p edgepack-kernels -p edgepack-harness)

stage "arm64 (qemu max): cargo test --lib --tests, PROPTEST_CASES=${ARM64_MAX_CASES:-64} (real models: the classifier; zoo: ${ARM64_ZOO:=shufflenet_v2,fpn_detector,crnn_bilstm,dq_lstm_uint8_bidir})"
# The detector's float64 reference alone takes minutes under emulation; the classifier runs
# the same model path (import, folding, every fused epilogue, plans on NEON and scalar). The
# zoo subset covers the portable operators (channel shuffle, FPN decoding with NMS, LSTM).
EDGEPACK_MODELS=ch_ppocr_mobile_v2.0_cls_infer EDGEPACK_ZOO=$ARM64_ZOO PROPTEST_CASES=${ARM64_MAX_CASES:-64} \
    $cargo test "${test_args[@]}" --lib --tests
stage "arm64 (qemu cortex-a72): the NEON set's GEMM and convolution suites, PROPTEST_CASES=${ARM64_MODEL_CASES:-16}"
QEMU_CPU=cortex-a72 PROPTEST_CASES=${ARM64_MODEL_CASES:-16} $cargo test "${test_args[@]}" --test kernel_sets -- neon
for cpu in max cortex-a72 neoverse-n1; do
    stage "arm64 (qemu $cpu): parity report"
    QEMU_CPU=$cpu $cargo run --locked --quiet --target "$triple" --profile test -p edgepack-harness --bin kernel-report -- \
        --parity-only --label "qemu-aarch64 $cpu" --cpu "qemu-aarch64 -cpu $cpu, emulated on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
        --json "target/reports/qemu-arm64-$cpu.json" --junit "target/reports/qemu-arm64-$cpu.junit.xml"
done
stage "arm64 (qemu max): the static aarch64 agent with the generated Python client"
# Built with the emulated-agent profile (not optimised: compile time is what counts here;
# ci/build-agent.sh builds the release one that ships). The component is planned for NEON by the
# host's packaging CLI (the test build's target/debug/edgepack); its Install step checks parity
# under emulation.
bash ci/build-agent.sh aarch64 --profile emulated-agent >/dev/null
[ -x target/debug/edgepack ] || cargo build --locked --quiet -p edgepack-cli
bash ci/test-agent.sh aarch64 target/agent
