#!/usr/bin/env bash
# The GPU check (issue 7), in two halves:
#
#   bash ci/gpu-check.sh build   # here: builds the binaries (no GPU needed) into .device/
#   bash ci/gpu-check.sh run     # on the GPU machine (no Rust toolchain there): runs them
#   bash ci/gpu-check.sh run cuda  # the CUDA steps only (what a short lease affords)
#   bash ci/gpu-check.sh run f16   # the f16 suites and GEMM sweeps only (tuning; NVRTC options
#                                  # for experiments in EDGEPACK_CUDA_DEFINES)
#   SWEEP="4 ws4" bash ci/gpu-check.sh run sweep  # only the f16 GEMMs, per EDGEPACK_WGMMA choice
#   bash ci/gpu-check.sh run models  # whole models (PP-OCR and the zoo models in GPU_ZOO at
#                                    # build time) and the ONNX node cases (unless GPU_NODES=0) on GPU
#                                    # sessions, latency and throughput with the launch rules on
#                                    # and off, ONNX Runtime's CUDA provider if the machine has it,
#                                    # the CUDA kernel suites (issue 30)
#
# `run` executes, in this order, and writes every report under $OUT (default
# target/gpu-check): the f16 suites (the tensor-core kernels — wgmma, mma.sync, and wmma
# forced — and the CUDA-core one), the benchmark against cuBLAS (GEMM 4096³ f32/f16 and the
# models' convolution shapes, then the f16 GEMMs again with the other tensor-core pipelines),
# the generic kernel suites on the CUDA set (f32: random shapes, every epilogue, exact integer
# cases, poisoned outputs) and the whole models on a GPU session; then, since the GPU machine's
# CPU has AVX-512, the AVX-512 kernel suites, the AVX-512 whole-model parity tests, the kernel
# report and the whole-model benchmark (against the image's ONNX Runtime and tract), which this
# project's CPU cannot run.
# Nothing is skipped silently: a missing GPU or library fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
bin=.device/bin

build() {
    set -e
    bash ci/setup.sh >/dev/null
    mkdir -p "$bin"
    local tests
    tests=$(cargo test --locked -p edgepack-harness --features cuda --test kernel_sets --test cuda_f16 --test models --test onnx_node_conformance \
        --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')
    while read -r name exe; do
        install -m 755 "$exe" "$bin/$name"
    done <<<"$tests"
    cargo build --locked --release -p edgepack-benches --features cuda,onnx-peers --bin cuda-bench --bin model-bench
    # The kernel report's GEMM figures are speed figures: a release build.
    cargo build --locked --release -p edgepack-harness --features cuda --bin kernel-report
    install -m 755 target/release/cuda-bench target/release/model-bench target/release/kernel-report "$bin/"
    strip "$bin"/* 2>/dev/null || true
    du -sh "$bin"
    # What `run models` reads, hard-linked into one carried folder: the PP-OCR models and ORT's
    # outputs, the zoo models named in GPU_ZOO with theirs, and the ONNX node cases (GPU_NODES=0: not).
    local cache=.device/cache zoo=${GPU_ZOO:-mobilenet_v2,squeezenet1_1,unet_small}
    rm -rf "$cache" && mkdir -p "$cache/zoo-v1/ort-1.32.0"
    cp -al .cache/models .cache/ort-1.32.0-outputs "$cache/"
    [ "${GPU_NODES:-1}" = 1 ] && cp -al .cache/onnx-1.17.0 "$cache/"
    cp -al .cache/zoo-v1/zoo.json "$cache/zoo-v1/"
    for m in ${zoo//,/ }; do
        cp -al ".cache/zoo-v1/$m.onnx" "$cache/zoo-v1/"
        cp -al ".cache/zoo-v1/ort-1.32.0/$m" "$cache/zoo-v1/ort-1.32.0/"
    done
    echo "$zoo" >"$cache/gpu-zoo"
    du -sh "$cache"
    # `run models` in one carry under the 64 MiB a call takes: its binaries and the cache, xz'd.
    mkdir -p target/gpu-pack
    tar -cf - "$bin"/{cuda-bench,cuda_f16,kernel_sets,models,onnx_node_conformance} "$cache" |
        xz -T0 -6 >target/gpu-pack/pack.tar.xz
    du -sh target/gpu-pack/pack.tar.xz
    echo "gpu-check: for 'run models' carry target/gpu-pack (unpacked by run), else .device"
}

# link_libraries: the CUDA libraries by the plain names cudarc opens.
. ci/cuda-libs.sh

run() {
    # The packed binaries and cache of `build`, when carried so.
    if [ -f target/gpu-pack/pack.tar.xz ]; then
        tar -xJf target/gpu-pack/pack.tar.xz || exit 1
    fi
    out=${OUT:-target/gpu-check}
    mkdir -p "$out"
    exec > >(tee "$out/gpu-check.log") 2>&1
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    grep -m1 'model name' /proc/cpuinfo
    grep -o -m1 -w 'avx512f' /proc/cpuinfo || echo "no avx512f"
    link_libraries || exit 1
    # The test binaries name their source folder: make it exist here.
    [ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
    local status=0
    # step NAME SECONDS COMMAND...: a step that outruns its limit fails, the rest still run.
    step() {
        local name=$1 limit=$2
        shift 2
        echo
        echo "== $name: $*"
        local t0=$SECONDS
        timeout "$limit" "$@" >"$out/$name.txt" 2>&1
        local rc=$?
        tail -n 25 "$out/$name.txt"
        echo "== $name: exit $rc in $((SECONDS - t0)) s"
        [ $rc -eq 0 ] || status=1
    }
    # Compiled modules are cached across the steps' processes (a sm_90a compile takes seconds).
    export EDGEPACK_CUDA_CACHE=/tmp/edgepack-cuda-cache
    if [ "${only:-}" = models ]; then
        # The cache the build step packed (.device/cache: the PP-OCR models, ORT's outputs, the
        # ONNX node cases if they fit, and the zoo models in $GPU_ZOO), else .cache.
        local cache=.cache
        [ -d .device/cache ] && cache=.device/cache
        local zoo
        zoo=$(cat .device/cache/gpu-zoo 2>/dev/null || true)
        step cuda-models 150 env EDGEPACK_CACHE=$cache "$bin/models" --ignored cuda --nocapture
        if [ -d "$cache/onnx-1.17.0" ]; then
            step cuda-nodes 150 env EDGEPACK_CACHE=$cache "$bin/onnx_node_conformance" --ignored gpu --nocapture
        else
            echo "== cuda-nodes: not run: the ONNX node cases were not carried (size)"
        fi
        step cuda-bench-models 200 env EDGEPACK_CACHE=$cache "$bin/cuda-bench" --only-models --profile ${zoo:+--zoo $zoo} \
            --json "$out/cuda-bench-models.json"
        # The launch-shaping rules off (128-column tiles, no split K), in the same run.
        step cuda-bench-models-untuned 120 env EDGEPACK_CUDA_SPLIT_K=off EDGEPACK_CUDA_NARROW=off EDGEPACK_CACHE=$cache \
            "$bin/cuda-bench" --only-models ${zoo:+--zoo $zoo}
        step ort-cuda 120 python3 ci/ort_cuda_bench.py $cache
        step cuda-suite 150 "$bin/kernel_sets" --ignored cuda_set --test-threads 4
        step cuda-suite-untuned 150 env EDGEPACK_CUDA_SPLIT_K=off EDGEPACK_CUDA_NARROW=off "$bin/kernel_sets" --ignored cuda_set --test-threads 4
        step cuda-f16 150 "$bin/cuda_f16" --ignored --nocapture --test-threads 1
        echo "gpu-check: overall exit $status"
        exit $status
    fi
    if [ "${only:-}" = sweep ]; then
        # Only the f16 GEMMs against cuBLAS, once per EDGEPACK_WGMMA choice in $SWEEP.
        for cfg in ${SWEEP:-4 3 ws4 ws3 off}; do
            step "wgmma-$cfg" 60 env EDGEPACK_WGMMA=$cfg "$bin/cuda-bench" --f16-gemm
        done
        echo "gpu-check: overall exit $status"
        exit $status
    fi
    # The f16 suites first (the tensor-core kernels: on Hopper wgmma for n > 128, mma.sync
    # below; the warp-specialized wgmma kernel on the GEMM and wide-convolution cases), then the
    # benchmark against cuBLAS.
    step cuda-f16 150 "$bin/cuda_f16" --ignored --nocapture --test-threads 1
    step cuda-f16-ws 100 env EDGEPACK_WGMMA=ws4 "$bin/cuda_f16" --ignored --nocapture --test-threads 1 f16_gemm f16_wide
    # The Volta/Xavier/Turing kernel (wmma), forced for every f16 GEMM on this newer GPU.
    step cuda-f16-wmma 150 env EDGEPACK_MMA=wmma EDGEPACK_WGMMA=off "$bin/cuda_f16" --ignored --nocapture --test-threads 1
    if [ "${only:-}" = f16 ]; then
        step cuda-bench 60 "$bin/cuda-bench" --f16-gemm
    else
        step cuda-bench 150 env EDGEPACK_CACHE=.cache "$bin/cuda-bench" --models --json "$out/cuda-bench.json"
    fi
    # The other tensor-core pipelines against cuBLAS, each in its own run: wgmma with 3 stages
    # (the default is 4, above), warp-specialized with 4 and 3, no wgmma (mma.sync, 128 × 128
    # tiles), and wmma alone.
    for cfg in 3 ws4 ws3 off; do
        step "wgmma-$cfg" 60 env EDGEPACK_WGMMA=$cfg "$bin/cuda-bench" --f16-gemm
    done
    step wmma 60 env EDGEPACK_MMA=wmma EDGEPACK_WGMMA=off "$bin/cuda-bench" --f16-gemm
    if [ "${only:-}" != f16 ]; then
        step cuda-suite 150 "$bin/kernel_sets" --ignored cuda_set --test-threads 4
        step cuda-models 200 env EDGEPACK_CACHE=.cache "$bin/models" --ignored cuda --nocapture
    fi
    if [ -z "${only:-}" ] && grep -q -w avx512f /proc/cpuinfo; then
        step avx512-suite 120 "$bin/kernel_sets" --ignored avx512 --test-threads 8
        step avx512-models 120 env EDGEPACK_CACHE=.cache "$bin/models" --ignored avx512 --nocapture
        step kernel-report 60 "$bin/kernel-report" --label gpu-host-cpu
        # ONNX Runtime here is the image's python3 one (not the pinned 1.32.0 venv).
        step model-bench 150 env EDGEPACK_CACHE=.cache "$bin/model-bench" --python python3 --rounds 3 --runs 3 \
            --threads 1,2 --json "$out/model-bench.json"
    fi
    echo
    echo "gpu-check: overall exit $status"
    exit $status
}

case "$mode" in
build) build ;;
run) only=${2:-} run ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
