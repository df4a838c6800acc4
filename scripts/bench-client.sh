#!/usr/bin/env bash
# Registry client benchmark: blob copy throughput between two local CNCF distribution
# registries (storage on /dev/shm) through kpromo's client, against the destination's raw
# ingest rate (parallel curl PUTs of the same bytes), and peak RSS for a 1 GiB blob.
# Prints the figures. Needs docker-registry and curl (scripts/test.sh installs the former).
#
#   scripts/bench-client.sh [BLOBS [MIB_PER_BLOB [BIG_MIB]]]   # defaults: 8 64 1024
#   BENCH_PROFILE=dev scripts/bench-client.sh                 # skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "docker-registry missing: run scripts/test.sh" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl missing" >&2; exit 1; }
profile="${BENCH_PROFILE:-release}"
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build --locked --quiet "${flag[@]}" --example bench_client
bin="target/$([ "$profile" = release ] && echo release || echo debug)/examples/bench_client"
echo "kpromo client benchmark ($profile build), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" "$@"
