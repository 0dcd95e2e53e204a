# Sourced by the GPU scripts (ci/gpu-check.sh, ci/gpu-hil.sh) on a GPU machine.
# cudarc opens libnvrtc.so / libcublas.so by their plain names: point them at the toolkit's.
link_libraries() {
    local dir=/tmp/edgepack-cuda-libs
    mkdir -p "$dir"
    for lib in nvrtc cublas cublasLt; do
        local found
        found=$(find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /opt -name "lib$lib.so*" -type f 2>/dev/null | sort | head -1)
        if [ -z "$found" ]; then
            echo "gpu-check: lib$lib.so not found" >&2
            return 1
        fi
        ln -sf "$found" "$dir/lib$lib.so"
        export LD_LIBRARY_PATH="$dir:$(dirname "$found"):${LD_LIBRARY_PATH:-}"
        echo "gpu-check: lib$lib -> $found"
    done
}
