#!/usr/bin/env bash
# Rollout and sharding benchmark (issue 12): on the promotion benchmark's world, times a
# promotion to 3 fresh mirrors all at once, as a canary rollout (1 canary, then 2), and as
# 3 shards in parallel processes; prints the ratios (docs/performance.md). Needs
# docker-registry, skopeo and GNU time (scripts/test.sh installs the first two).
#
#   BENCH_BIG_MB=400   total size of the big layers
#   BENCH_RATE=5000    kpromo --registry-rate-limit (loopback; the production default is 50)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { echo "GNU time is needed: apt-get install time" >&2; exit 1; }
# The benchmark is the ignored `rollout_bench` module of the e2e test binary.
cargo test --release --locked --test e2e rollout_bench:: -- --ignored --nocapture --test-threads 1
