#!/usr/bin/env bash
# edgepack-hil against a lent GPU machine as a board (issue 29): the x86_64 CUDA bundle, reached
# through a real sshd on that machine's loopback, in two halves:
#
#   bash ci/gpu-hil.sh build   # here: the x86_64-cuda bundle (ci/build-device.sh), a packaged
#                              # model component and the published components (ci/test-agent.sh),
#                              # edgepack-hil, and Debian's OpenSSH server and client with the
#                              # libraries they need (the GPU image has neither and nothing can be
#                              # installed there), xz'd into target/gpu-hil/pack.tar.xz
#   bash ci/gpu-hil.sh run     # there, as root, carrying target/gpu-hil: sshd on 127.0.0.1 with
#                              # throwaway keys (ci/setup-sshd.sh), an inventory of two boards —
#                              # the machine as it is (x86_64 + NVIDIA, the GPU's own gpu-code),
#                              # which must pass every step, and the same machine declared as an
#                              # Orin (sm_87), which must end `wrong-target` — then edgepack-hil;
#                              # reports in $OUT (default target/gpu-hil/out): the log and
#                              # hil-reports.tar.gz (hil.json, hil.xml, each board's folder).
set -uo pipefail
cd "$(dirname "$0")/.."
pack=target/gpu-hil

build() {
    set -e
    bash ci/setup.sh >/dev/null
    bash ci/build-device.sh x86_64-cuda
    cargo build --locked -p edgepack-cli --bin edgepack
    cargo build --locked --release -p edgepack-harness --bin edgepack-hil
    # The component and the published components, as CI's agent test makes them, with the
    # release agent build-device.sh left in target/agent/x86_64.
    bash ci/test-agent.sh x86_64 target/agent target/debug/edgepack >/dev/null
    local stage=$pack/stage e2e=target/agent-e2e/x86_64
    rm -rf "$pack" && mkdir -p "$stage/bundles" "$stage/openssh/bin" "$stage/openssh/lib"
    cp -r target/device/x86_64-cuda "$stage/bundles/"
    cp -r "$e2e/greengrass/v2/packages/artifacts/line.Defects/1.0.0" "$stage/bundles/x86_64-cuda/component"
    cp -r "$e2e/home/buckets/parts/line" "$stage/bundles/x86_64-cuda/greengrass"
    cp target/release/edgepack-hil "$stage/"
    strip "$stage/edgepack-hil"
    # OpenSSH and every library it needs but glibc's own (the GPU image's glibc is newer).
    local b
    for b in /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen; do
        cp "$b" "$stage/openssh/bin/"
        ldd "$b" | awk '$3 ~ /^\// { print $3 }' |
            grep -v -E '/(libc|libm|libdl|libpthread|libresolv|librt|ld-linux-x86-64)\.so' |
            xargs -r cp -L -t "$stage/openssh/lib/"
    done
    tar -C "$stage" -cf - . | xz -T0 -6 >"$pack/pack.tar.xz"
    rm -rf "$stage"
    du -sh "$pack/pack.tar.xz"
    echo "gpu-hil: carry $pack"
}

run() {
    local out=${OUT:-$pack/out} work=/tmp/edgepack-gpu-hil
    mkdir -p "$out"
    exec > >(tee "$out/gpu-hil.log") 2>&1
    date -u
    nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv || true
    grep -m1 'model name' /proc/cpuinfo
    rm -rf "$work" && mkdir -p "$work"
    tar -C "$work" -xJf "$pack/pack.tar.xz" || exit 1
    # The CUDA libraries by cudarc's names; every SSH session gets them and this PATH (for
    # nvidia-smi) through sshd's SetEnv, as a board's system linker path would give them.
    . ci/cuda-libs.sh
    link_libraries || exit 1
    local cuda_ld=${LD_LIBRARY_PATH:-}
    export EDGEPACK_CUDA_CACHE=/tmp/edgepack-cuda-cache
    export SSHD_SETENV="LD_LIBRARY_PATH=$cuda_ld PATH=$PATH EDGEPACK_CUDA_CACHE=$EDGEPACK_CUDA_CACHE"
    export PATH=$work/openssh/bin:$PATH LD_LIBRARY_PATH=$work/openssh/lib${cuda_ld:+:$cuda_ld}
    ssh -V || exit 1
    # What Debian's openssh-server package sets up: the privilege separation user and folder.
    getent passwd sshd >/dev/null || echo 'sshd:x:105:65534::/run/sshd:/usr/sbin/nologin' >>/etc/passwd
    local port key user
    read -r port key user < <(bash ci/setup-sshd.sh start "$work/sshd") || { echo "gpu-hil: no sshd"; exit 1; }
    [ -n "${port:-}" ] || { cat "$work/sshd/sshd.log"; exit 1; }
    # shellcheck disable=SC2064 # expanded now: $work is this function's
    trap "bash ci/setup-sshd.sh stop $work/sshd" EXIT
    local cc sm
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)
    sm=sm_${cc/./}
    local nvidia="target_platform = { os = \"LINUX\", arch = \"X86_64\", accelerator = \"NVIDIA\" }"
    cat >"$work/boards.toml" <<TOML
[defaults]
port = $port
user = "$user"
key = "$key"
known_hosts = "$work/known_hosts"
connect_timeout_secs = 10
step_timeout_secs = 180

[[board]]
name = "gpu-loopback"
host = "127.0.0.1"
$nvidia
compiler_options = '{"gpu-code": "$sm", "trt-ver": "8.6.1", "cuda-ver": "12.2"}'
workdir = "$work/boards/gpu"

[[board]]
name = "gpu-declared-orin"
host = "127.0.0.1"
$nvidia
compiler_options = '{"gpu-code": "sm_87", "trt-ver": "8.5.2", "cuda-ver": "11.4"}'
workdir = "$work/boards/orin"
TOML
    cat "$work/boards.toml"
    local t0=$SECONDS
    timeout 240 "$work/edgepack-hil" --inventory "$work/boards.toml" --bundles "$work/bundles" --out "$work/out"
    echo "edgepack-hil: exit $? in $((SECONDS - t0)) s"
    tar -C "$work/out" -czf "$out/hil-reports.tar.gz" .
    # The verdict: the machine as it is passes every step, the wrong declaration is refused.
    python3 - "$work/out/hil.json" <<'PY'
import json, sys
boards = {b["board"]: b for b in json.load(open(sys.argv[1]))["boards"]}
want = {"gpu-loopback": "passed", "gpu-declared-orin": "wrong-target"}
bad = [f"{n}: {boards.get(n, {}).get('status')} (want {s})" for n, s in want.items() if boards.get(n, {}).get("status") != s]
print("gpu-hil:", "ok" if not bad else "FAILED " + "; ".join(bad))
sys.exit(1 if bad else 0)
PY
}

case ${1:-} in
build) build ;;
run) run ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
