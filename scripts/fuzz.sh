#!/usr/bin/env bash
# Bounded fuzzing, as CI runs it (docs/decisions/0005-fuzzing.md): builds the cargo-fuzz
# targets of fuzz/ and runs each for FUZZ_SECONDS (default 30) from a scratch copy of its
# corpus, so a run never changes the repository. A finding fails the run and leaves its
# input in fuzz/artifacts/<target>/: fix the bug and add the input to
# fuzz/corpus/<target>/, where the unit tests replay it (src/fuzz.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
targets=(manifest_yaml manifest_json www_authenticate)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# `--sanitizer none` is the mode cargo-fuzz runs on the stable toolchain (sanitizers need
# nightly's -Z flags, and CI cannot fetch a nightly toolchain). kpromo is safe Rust, so
# AddressSanitizer would add build and run time and little else: panics, overflow checks
# (debug assertions are on) and the targets' own assertions are what find bugs here.
cargo fuzz build --sanitizer none

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
