#!/usr/bin/env bash
# Runs every test: formatting, lints (warnings are errors, clippy included), the unit,
# integration, bench (test mode) and doc tests of every crate on this machine (S3 storage
# against a real S3 server on loopback, built by ci/setup-s3.sh; the job store on SQLite and on
# a real PostgreSQL on loopback, started by ci/setup-postgres.sh; CUDA code included: compiled
# for every gpu-code with NVRTC, its device suites reported as skipped), the host parity report,
# the edge agent driven by a generated Python client (ci/test-agent.sh), then the ARM64 suites
# under qemu-aarch64 (ci/test-arm64.sh, which installs its toolchain from Debian packages),
# edgepack-hil against boards behind sshd on loopback (ci/test-hil.sh) and the Jetson device
# bundle's build (ci/test-device-build.sh). Kernel sets a CPU cannot run are reported as ignored
# with "skipped: <why>", never as passed. Parity reports (JSON + JUnit) land in target/reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
# Stage headers carry the wall clock and the seconds since this script started.
stage() { printf '== %s  [%s, +%ss]\n' "$*" "$(date +%T)" "$SECONDS"; }
stage "setup (toolchain, data, NVRTC)"
bash ci/setup.sh
# ONNX's conformance data (pinned onnx wheel): harness/tests/onnx_conformance.rs and
# onnx_node_conformance.rs need it.
bash ci/fetch-onnx-data.sh
# The real models (rapidocr wheel), ONNX Runtime 1.32.0 in a venv and its outputs for the
# parity tests: harness/tests/models.rs needs them.
bash ci/fetch-models.sh
# The model zoo (torchvision/timm exports and small networks, opset 17) with ONNX Runtime's
# outputs: harness/tests/zoo.rs needs it.
bash ci/fetch-zoo.sh
# NVRTC (CUDA 11.8, Debian non-free): the CUDA kernels are compiled for every supported
# gpu-code and ptxas's register/spill report is checked. No GPU here: the CUDA suites report
# "skipped: no CUDA device" (ci/gpu-check.sh runs them on a GPU machine).
cuda_lib=$(bash ci/setup-cuda.sh)
export LD_LIBRARY_PATH="$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export EDGEPACK_REQUIRE_NVRTC=1
cuda_features=edgepack-kernels/cuda,edgepack-harness/cuda,edgepack-model/cuda,edgepack-benches/cuda
# The packaging service's fail points, for the fault-injection suite (cli/tests/faults.rs: kill -9
# and SIGSTOP at each job phase, a full tmpfs home, an object store that is down, a memory
# limit, tampered components; its figures in target/reports/faults.json). Off in what ships.
test_features=$cuda_features,edgepack-cli/fault-injection
# s3s-fs, the S3 server cli/tests/s3_storage.rs starts on loopback (built from crates.io into
# .cache/s3s-fs); required: its absence fails the build instead of skipping those tests.
stage "setup: s3s-fs (S3 server for the storage tests)"
EDGEPACK_S3S_FS=$(bash ci/setup-s3.sh)
export EDGEPACK_S3S_FS EDGEPACK_REQUIRE_S3=1
stage "setup: AWS CLI and boto3 (real clients of edgepack serve)"
EDGEPACK_AWS_BIN=$(bash ci/setup-aws.sh)
export EDGEPACK_AWS_BIN EDGEPACK_REQUIRE_AWS=1
stage "setup: PostgreSQL on loopback (the shared job store's suites)"
# Debian's postgresql, a throwaway cluster on 127.0.0.1:54329 (ci/setup-postgres.sh); required:
# without it the build fails instead of skipping the PostgreSQL variants.
EDGEPACK_POSTGRES_URL=$(bash ci/setup-postgres.sh)
export EDGEPACK_POSTGRES_URL EDGEPACK_REQUIRE_POSTGRES=1
stage "cargo fmt --check"
cargo fmt --all -- --check
# Clippy lints the workspace's crates inside the test build (clippy-driver wraps rustc for
# workspace members, as `cargo clippy` does): one build of every crate instead of a check
# build and a test build. Warnings are errors.
stage "cargo test with clippy -D warnings (the CUDA set's code and compile checks included)"
lint=(env RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver" RUSTFLAGS="-D warnings")
mkdir -p target/reports
# Build (and lint) every target, benches included; run all but the benches (bench-check and
# criterion measure those), then the doc tests.
"${lint[@]}" cargo test --workspace --all-targets --no-run --locked --features "$test_features"
"${lint[@]}" cargo test --workspace --lib --bins --tests --examples --locked --features "$test_features" 2>&1 \
    | tee target/test.log
"${lint[@]}" cargo test --workspace --doc --locked --features "$test_features" 2>&1 | tee -a target/test.log
# NVRTC 12 (NVIDIA's wheel): every kernel compiled again for Hopper's sm_90a, its wgmma kernels
# included (CUDA 11.8 cannot target it), registers and spills checked; the test binary is the
# one built above. Only the sm_90a test: the others compiled every gpu-code with NVRTC 11.8.
stage "CUDA compile checks with NVRTC 12 (sm_90a, the wgmma kernel)"
nvrtc12=$(bash ci/setup-cuda.sh --nvrtc12)
LD_LIBRARY_PATH="$nvrtc12:$LD_LIBRARY_PATH" EDGEPACK_REQUIRE_WGMMA=1 "${lint[@]}" \
    cargo test --workspace --test cuda_compile --locked --features "$test_features" -- sm_90a 2>&1 \
    | tee -a target/test.log
stage "cargo clippy -D warnings (the kernels without CUDA)"
cargo clippy -p edgepack-kernels --all-targets --locked --quiet -- -D warnings
stage "edge agent: a Python client generated with grpcio-tools against the x86_64 agent"
# The agent binary the test build made (dynamically linked: the static one ships, and is built
# by ci/build-agent.sh); packaging jobs publish it from this folder.
mkdir -p target/agent-ci/x86_64
cp target/debug/edgepack-agent target/agent-ci/x86_64/edgepack-agent
bash ci/test-agent.sh x86_64 target/agent-ci 2>&1 | tee -a target/test.log
stage "parity report (host)"
# The binary `cargo test` built for the harness's integration tests (same features: no rebuild).
target/debug/kernel-report --parity-only --label host \
    --json target/reports/host.json --junit target/reports/host.junit.xml
bash ci/test-arm64.sh 2>&1 | tee -a target/test.log
stage "hardware in the loop: edgepack-hil through sshd on loopback (two emulated boards, seven faults)"
bash ci/test-hil.sh 2>&1 | tee -a target/test.log
stage "device builds: the Jetson bundle (aarch64 + CUDA, dynamic, glibc <= 2.31) builds and starts under qemu"
bash ci/test-device-build.sh 2>&1 | tee -a target/test.log
if grep -q "ignored, skipped:" target/test.log; then
    echo
    echo "== SKIPPED (not counted as passed):"
    grep "ignored, skipped:" target/test.log | sed 's/^test /  /' | sort
fi
echo
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' \
    target/test.log | tee target/test-summary.txt
