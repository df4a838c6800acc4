#!/usr/bin/env bash
# Promotion benchmark (issue 4): generates a world like the test bed's (about 600 tags,
# 1.8 GB, registries on /dev/shm), then times kpromo -> 1 mirror, -> 3 mirrors, a no-op
# rerun, skopeo sync doing the same, and the ingest limit; prints ratios, source reads
# and peak RSS. Needs docker-registry, skopeo and GNU time (scripts/test.sh installs the
# first two).
#
#   BENCH_BIG_MB=1700   total size of the big layers (smaller for a quick run)
#   BENCH_SKOPEO=0      skip the skopeo runs
#   BENCH_RATE=5000     kpromo --registry-rate-limit (loopback; the production default is 50)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { echo "GNU time is needed: apt-get install time" >&2; exit 1; }
# The benchmark is the ignored `promote_bench` module of the e2e test binary.
cargo test --release --locked --test e2e promote_bench:: -- --ignored --nocapture --test-threads 1
