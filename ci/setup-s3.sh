#!/usr/bin/env bash
# Installs s3s-fs 0.14.1 (an S3 server that keeps buckets as folders; the S3 storage tests
# start it on loopback) into .cache/s3s-fs and prints the binary's path. Idempotent: an
# installed copy of that version is kept. A debug build: it builds in half the time of a
# release one and is fast enough for tests. Later versions need a newer rustc.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.14.1
root=.cache/s3s-fs
bin="$PWD/$root/bin/s3s-fs"
if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "s3s-fs $version" ]; then
    echo "setup-s3: building s3s-fs $version (about 1.5 minutes on 2 cores)" >&2
    # Its own target folder, removed afterwards: nothing of it is shared with the workspace.
    target=$(mktemp -d)
    trap 'rm -rf "$target"' EXIT
    cargo install s3s-fs --version "$version" --features binary --locked --debug --quiet \
        --root "$root" --target-dir "$target" >&2
fi
echo "$bin"
