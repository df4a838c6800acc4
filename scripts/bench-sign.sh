#!/usr/bin/env bash
# Signing benchmark (issue 9): 100 multi-arch indexes x 4 children (500 digests) promoted to
# one local registry, then signed with a key by a second run that has nothing to copy. Prints
# both times, their ratio and the requests per signed manifest seen by the registry's proxy.
# Needs docker-registry and openssl (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
# The benchmark is the ignored `sign_bench` module of the e2e test binary.
cargo test --release --locked --test e2e sign_bench:: -- --ignored --nocapture --test-threads 1
