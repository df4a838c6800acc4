#!/usr/bin/env bash
# Attestation benchmark (issue 10): provenance over 500 staging digests (each with a
# key-signed SLSA v1 bundle referrer) promoted to 3 mirrors x 3 tags and to 1 mirror x 1 tag
# (dry runs: the Provenance phase's time and requests, which must not depend on mirrors and
# tags); then 500 other digests promoted, signed and attested in one run (the Attest phase's
# time and requests per attested digest, writes apart). Prints the figures.
# Needs docker-registry and openssl (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
# The benchmark is the ignored `attest_bench` module of the e2e test binary.
cargo test --release --locked --test e2e attest_bench:: -- --ignored --nocapture --test-threads 1
