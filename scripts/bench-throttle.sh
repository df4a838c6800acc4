#!/usr/bin/env bash
# Throttling benchmark (issue 13): on a loopback scene (staging and three mirrors of real
# distribution behind fault proxies), prints default vs fixed ceilings and the registry-side
# floor, nginx limit_req fronts at 20 and 100 req/s, a per-window quota, a quota group, one
# sick mirror, and the fault matrix (429/503/reset/truncation/hang x 5/15/27 % x staging/
# mirror), each figure with the load average. Asserts nothing about time.
# Needs docker-registry and nginx (scripts/test.sh installs them).
#
#   BENCH_IMAGES=120         images of the main scene (2 tags each, 3 mirrors)
#   BENCH_MATRIX_IMAGES=24   images of the fault-matrix scene
#   BENCH_MATRIX=0           skip the fault matrix
#   BENCH_LAYER_KB=32        size of each image's own layer
#   BENCH_PROFILE=release    cargo profile (dev: no release build; the figures are
#                            request-bound, small blobs, so dev differs little)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--release)
[ "${BENCH_PROFILE:-release}" = dev ] && profile=()
# The benchmark is the ignored `throttle_bench` module of the e2e test binary.
cargo test "${profile[@]}" --locked --test e2e throttle_bench:: -- --ignored --nocapture --test-threads 1
