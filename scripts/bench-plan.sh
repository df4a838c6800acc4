#!/usr/bin/env bash
# Planning benchmark on the real registry.k8s.io tree (testdata/registry.k8s.io):
# load + validate every manifest and expand the promotion edges, then report wall
# time, edge count and peak RSS. Target: <= 2 s and <= 200 MB.
#
#   scripts/bench-plan.sh            # one-shot figures, criterion statistics, CLI run
#   scripts/bench-plan.sh --summary  # one-shot figures and the CLI run only
#
# The last step times the release binary end to end with /usr/bin/time -v:
# `kpromo manifest validate` exits 2 on the tree because of its known upstream quirks
# (see testdata/registry.k8s.io/SOURCE.md); the figures are what matter here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench plan -- "$@"

cargo build --locked --release --bin kpromo
echo "kpromo manifest validate testdata/registry.k8s.io (release binary):"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
/usr/bin/time -v target/release/kpromo manifest validate testdata/registry.k8s.io >/dev/null 2>"$out" || true
grep -E 'Elapsed \(wall clock\)|Maximum resident set size|Exit status' "$out"
target/release/kpromo manifest validate testdata/registry.k8s.io 2>/dev/null | tail -1 || true
