#!/usr/bin/env bash
# Build the fuzz targets in fuzz/ and run each for SECONDS (default 20).
#
#   scripts/fuzz.sh          # 20 s per target
#   scripts/fuzz.sh 600      # a longer hunt
#
# Each target starts from its committed seeds (fuzz/corpus/<target>/, never
# written to) and from what earlier runs found (fuzz/target/corpus/<target>/,
# where new inputs go; delete it to start afresh). An input that crashes a
# target (a panic, a failed assertion, a sanitizer report, a timeout) is saved
# under fuzz/artifacts/<target>/; the script then says where, and exits with 1.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). It runs on stable Rust:
# RUSTC_BOOTSTRAP=1 lets stable take the unstable flags cargo-fuzz passes
# (sanitizer coverage, AddressSanitizer). SANDBOXD_FUZZ_SANITIZER=none builds
# without AddressSanitizer, where it is not available.
set -euo pipefail

seconds="${1:-20}"
case "$seconds" in
'' | *[!0-9]* | 0)
    echo "usage: $0 [SECONDS]   (seconds per target, default 20)" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
sanitizer="${SANDBOXD_FUZZ_SANITIZER:-address}"
# The cargo of an outer build (`cargo test` sets CARGO), or the one on PATH.
cargo="${CARGO:-cargo}"

if ! "$cargo" fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is not installed; install it with: cargo install cargo-fuzz --locked" >&2
    exit 3
fi

export RUSTC_BOOTSTRAP=1
# Settings of an outer build (the main workspace's target directory, its
# flags) do not apply to this one: fuzz/ builds into fuzz/target.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET CARGO_ENCODED_RUSTFLAGS RUSTFLAGS RUSTC_WORKSPACE_WRAPPER

cd "$fuzz"
echo "building the fuzz targets (sanitizer: $sanitizer)..." >&2
"$cargo" fuzz build --sanitizer "$sanitizer" >&2
mapfile -t targets < <("$cargo" fuzz list)

mkdir -p target/fuzz-logs
failed=0
for target in "${targets[@]}"; do
    work="target/corpus/$target"
    log="target/fuzz-logs/$target.log"
    mkdir -p "$work" "corpus/$target"
    if "$cargo" fuzz run --sanitizer "$sanitizer" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
        printf '%-16s ok      %10s runs in %ss\n' "$target" "${runs:-?}" "$seconds"
    else
        failed=1
        printf '%-16s FAILED  (log: fuzz/%s)\n' "$target" "$log"
        # The report: the panic or sanitizer message and the top of its stack.
        first="$(grep -n -m 1 -E 'panicked at|==[0-9]+==ERROR|ERROR: libFuzzer' "$log" | cut -d: -f1)"
        if [ -n "$first" ]; then
            sed -n "${first},$((first + 25))p" "$log"
        else
            tail -n 40 "$log"
        fi | sed "s/^/  $target: /" >&2
        crash="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        if [ -n "$crash" ]; then
            crash="fuzz/${crash#"$fuzz"/}"
            echo "  $target: the crash input was saved to $crash" >&2
            echo "  $target: reproduce with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target ${crash#fuzz/})" >&2
        else
            echo "  $target: no crash input was saved; see fuzz/$log" >&2
        fi
    fi
done
exit "$failed"
