#!/usr/bin/env bash
# The whole test suite, as the README says: installs the system packages the
# end-to-end tests need (real registries and peers) when missing, then runs
# formatting, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v nginx >/dev/null || need+=(nginx-light)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v git >/dev/null || need+=(git)
# libFuzzer, which the fuzz targets link, is C++ built by libfuzzer-sys.
command -v c++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The registry with the OCI 1.1 referrers API (go-containerregistry's, from Debian packages):
# built once into a cache, so this returns at once when the binary is already there.
bash scripts/ggcr-registry.sh >/dev/null
# The independent verifiers of signatures and attestations (trixie's skopeo 1.18, sigstore-js,
# sigstore-python, securesystemslib, in-toto) and the fake Fulcio/Rekor's packages: installed once
# into the same cache, about 25 s cold, at once when current.
bash scripts/trust-tools.sh >/dev/null

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
# Tests that need the machine to themselves (peak RSS, adaptive limits) are ignored above
# and run here, one at a time, from the same build (tests/e2e/solo/mod.rs).
cargo test --locked --test e2e solo:: -- --ignored --test-threads=1
# The fuzz targets, 30 s each (their corpora are also replayed by the unit tests above).
bash scripts/fuzz.sh
