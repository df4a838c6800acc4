#!/usr/bin/env bash
# Planning benchmark on the real registry.k8s.io tree (testdata/registry.k8s.io):
# load + validate every manifest and expand the promotion edges, then report wall
# time, edge count and peak RSS. Target: <= 2 s and <= 200 MB.
#
#   scripts/bench-plan.sh            # one-shot figures, then criterion statistics
#   scripts/bench-plan.sh --summary  # one-shot figures only (quick)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench plan -- "$@"
