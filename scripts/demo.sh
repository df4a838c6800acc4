#!/usr/bin/env bash
# The bundled demo: a real promotion from one OCI layout directory to three, with no
# registry server. Copies examples/demo to a fresh directory and runs kpromo there:
# dry run (the plan), --confirm (the promotion, signed and attested with a key made here), the result,
# and a rerun (a no-op).
#
#   scripts/demo.sh                 build kpromo (release) and run the demo
#   KPROMO=path/to/kpromo scripts/demo.sh     use an existing binary
#   KPROMO_DEMO_DIR=/some/new/dir scripts/demo.sh   run in that directory (kept)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

kpromo=${KPROMO:-}
if [ -z "$kpromo" ]; then
  echo "building kpromo (cargo build --release)..."
  (cd "$repo" && cargo build --release --quiet)
  kpromo=$repo/target/release/kpromo
fi
# The demo runs in another directory: keep a relative binary path working.
case $kpromo in */*) kpromo=$(cd "$(dirname "$kpromo")" && pwd)/$(basename "$kpromo") ;; esac

work=${KPROMO_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kpromo-demo.XXXXXX")}
mkdir -p "$work"
if [ -n "$(ls -A "$work")" ]; then
  echo "demo: $work is not empty" >&2
  exit 1
fi
cp -R "$repo/examples/demo/." "$work/"
# Registry names like oci:./mirrors/eu are relative to the current directory.
cd "$work"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi

# Promoted images are signed, as in Go kpromo. The demo signs with a key it makes here
# (an unencrypted PKCS#8 P-256 key; a cosign key works the same with COSIGN_PASSWORD).
# The three mirrors serve one public name, demo.example/<image> (as the regional mirrors
# behind registry.k8s.io do), so each image is signed once, at the first mirror.
if command -v openssl >/dev/null; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out signing.key 2>/dev/null
  openssl pkey -in signing.key -pubout -out signing.pub
  signing=(--signing-key signing.key)
  for mirror in eu us asia; do
    signing+=(--signing-identity-rewrite "mirrors/$mirror=demo.example")
  done
else
  echo "demo: openssl not found, promoting without signing (--sign=false)"
  signing=(--sign=false)
fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Dry run (the default): plan the promotion and print it; nothing is written"
run "$kpromo" cip --thin-manifest-dir "$work"

step "Promote: the same command with --confirm (and a key to sign with)"
run "$kpromo" cip --thin-manifest-dir "$work" --confirm "${signing[@]}"

step "Result: every mirror now holds the promoted images"
for mirror in eu us asia; do
  run "$kpromo" cip --snapshot "oci:./mirrors/$mirror"
done
if command -v skopeo >/dev/null; then
  step "Checked with an independent client (skopeo reads the layouts kpromo wrote)"
  run skopeo inspect --raw oci:mirrors/eu/multi:2.0
  echo
fi

if [ "${signing[0]}" = --signing-key ]; then
  step "Verify the signature the way a user would (kpromo verify, with the public key)"
  run "$kpromo" verify --key signing.pub oci:./mirrors/asia/multi:2.0 oci:./mirrors/asia/hello:1.0
  step "Verify the promotion attestation (an in-toto Statement in a sigstore bundle, an OCI referrer)"
  run "$kpromo" verify --attestations --key signing.pub oci:./mirrors/asia/multi:2.0
fi

step "Rerun: everything is already promoted, signed and attested, so nothing is written"
run "$kpromo" cip --thin-manifest-dir "$work" --confirm "${signing[@]}"

step "Done. The demo directory is kept: $work"
