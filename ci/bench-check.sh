#!/usr/bin/env bash
# Regression check of the tracked figures (benches/src/bin/bench-check/main.rs says how):
# - drift: interleaved throughput ratios of our kernels against frozen references in the same
#   process (tract-linalg 0.23.9, our scalar set), and of three zoo models against ONNX Runtime
#   1.32 in a child process (needs ci/fetch-zoo.sh and ci/fetch-models.sh, which the test
#   command runs; --kernels-only leaves them out), compared with
#   benches/baselines/<machine-class>.json when this class has one;
# - against the parent commit, on any machine class: the parent's bench-check is built here
#   (git archive into target/bench-gate/<commit>/, its own target folder: both trees write
#   target/release/bench-check, and cargo judges a path crate's freshness by file times; the
#   folder starts as a copy of this commit's release dependencies, so that only the crates
#   whose sources differ compile again; once per parent) and both commits' kernels and models
#   are timed interleaved in fresh process pairs.
# Either fails when a figure drops by more than max(5 %, 3 × standard error), confirmed by a
# second measurement. About two minutes of measurement after the builds.
#   bash ci/bench-check.sh              check (appends to benches/history/<class>.jsonl)
#   bash ci/bench-check.sh --update     rewrite this machine class's baseline on purpose
#   bash ci/bench-check.sh --plot docs/bench-history.svg
#   EDGEPACK_BENCH_AGAINST=REV bash ci/bench-check.sh    gate against REV instead of HEAD~1
#   EDGEPACK_BENCH_AGAINST=none bash ci/bench-check.sh   drift only
set -euo pipefail
cd "$(dirname "$0")/.."
# Whether the release unit with this hash compiled only workspace files that `$2` (changed
# paths, one per line) does not name, in a crate with an unchanged manifest and no build script.
reusable() {
    local dep_info crate file
    dep_info=$(ls target/release/deps/*-"$1".d 2>/dev/null | head -1)
    [ -n "$dep_info" ] || return 1
    # The first line: `output: inputs`, workspace inputs relative to the root.
    local inputs=($(head -1 "$dep_info" | cut -d: -f2-))
    [ ${#inputs[@]} -gt 0 ] || return 1
    crate=${inputs[0]%%/*}
    [ -f "$crate/Cargo.toml" ] && [ ! -e "$crate/build.rs" ] || return 1
    for file in "${inputs[@]}" "$crate/Cargo.toml"; do
        [[ $file == /* ]] && continue
        grep -qxF "$file" <<<"$2" && return 1
    done
    return 0
}
cargo build --release --locked --quiet -p edgepack-benches --bin bench-check
args=("$@")
against=${EDGEPACK_BENCH_AGAINST:-HEAD~1}
case " $* " in *" --update "* | *" --plot "* | *" --worker "*) against=none ;; esac
if [ "$against" != none ]; then
    if commit=$(git rev-parse --verify --quiet "$against^{commit}"); then
        short=$(git rev-parse --short "$commit")
        dir=$PWD/target/bench-gate/$short
        if [ ! -x "$dir/bench-check" ]; then
            echo "bench-check: building $against ($short) for the gate  [$(date +%T)]"
            rm -rf "$dir"
            mkdir -p "$dir/src"
            git archive "$commit" | tar -x -C "$dir/src"
            # The zoo, ORT's outputs and the venv, where its harness looks for them.
            ln -s "$PWD/.cache" "$dir/src/.cache"
            # This commit's release units, which cargo finds fresh there (a copy, not hard
            # links: cargo rewrites some files in place). The archive's files are older than
            # the units, so a workspace crate's unit is kept only where the parent's sources
            # are this tree's: every workspace file its dep-info lists unchanged, its manifest
            # too, and no build script (whose inputs dep-info does not list); the others are
            # removed and compile again, and cargo rebuilds whatever depends on them. Nothing
            # is kept when the workspace manifest, the lock file or cargo's configuration
            # differ. A commit that leaves kernels/ alone (most do) skips its ~3-minute
            # single-unit compile.
            mkdir -p "$dir/target/release"
            cp -a target/release/{deps,build,.fingerprint} "$dir/target/release/"
            changed=$(git diff --name-only "$commit" -- .)
            global=$(git diff --name-only "$commit" -- Cargo.toml Cargo.lock .cargo)
            kept=()
            for unit in "$dir"/target/release/.fingerprint/edgepack-*; do
                [ -e "$unit" ] || continue
                hash=${unit##*-}
                if [ -z "$global" ] && reusable "$hash" "$changed"; then
                    kept+=("$(basename "$unit")")
                    continue
                fi
                rm -rf "$unit" "$dir"/target/release/build/edgepack-*-"$hash" "$dir"/target/release/deps/*-"$hash"*
            done
            echo "bench-check: kept this tree's units the parent shares: ${kept[*]:-none}"
            (cd "$dir/src" && CARGO_TARGET_DIR="$dir/target" \
                cargo build --release --locked --quiet -p edgepack-benches --bin bench-check)
            cp "$dir/target/release/bench-check" "$dir/bench-check.tmp"
            rm -rf "$dir/target"
            mv "$dir/bench-check.tmp" "$dir/bench-check"
            echo "bench-check: built  [$(date +%T)]"
        fi
        label="$against ($short)"
        [ "$against" = HEAD~1 ] && label="parent $short"
        args+=(--against "$dir/bench-check" --against-label "$label")
    else
        echo "bench-check: skipped: the gate against $against (no such commit in this clone; a shallow clone?)"
    fi
fi
exec target/release/bench-check "${args[@]}"
