#!/usr/bin/env bash
# The Jetson bundle in CI (issue 29): ci/build-device.sh builds the aarch64 + CUDA binaries
# (dynamically linked against glibc 2.31 by Zig; the build fails if any needs a newer glibc),
# then they are started here under qemu-aarch64 with the cross glibc as their root: the
# kernel report refuses a bad argument with its usage (exit 2), and the CUDA f16 suites, run
# on the main thread (a dynamic aarch64 binary hangs at its first thread spawn under qemu
# here), load the CUDA driver with dlopen and report every case "skipped: no CUDA device".
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=$(bash ci/build-device.sh aarch64-cuda --profile "${DEVICE_PROFILE:-device-check}" | tail -1)
cat "$bundle/BUILD.txt"
run() { timeout 300 qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"; }
set +e
usage=$(run "$bundle/kernel-report" --no-such-flag 2>&1)
rc=$?
set -e
if [ $rc != 2 ] || [[ $usage != *"unexpected argument '--no-such-flag'"* ]]; then
    echo "test-device-build: kernel-report under qemu: exit $rc, said: $usage" >&2
    exit 1
fi
echo "kernel-report (aarch64, dynamic) under qemu: exit 2, \"$usage\""
out=$(run "$bundle/cuda_f16" --test-threads 1 2>&1)
echo "$out"
cases=$(grep -c "^test .* ignored, skipped: no CUDA device" <<<"$out" || true)
if [ "$cases" = 0 ] || ! grep -q "^test result: ok. 0 passed; 0 failed; $cases ignored" <<<"$out"; then
    echo "test-device-build: the CUDA suites did not each report 'skipped: no CUDA device'" >&2
    exit 1
fi
