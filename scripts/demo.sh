#!/usr/bin/env bash
# The bundled demo: a real promotion from one OCI layout directory to three, with no
# registry server. Copies examples/demo to a fresh directory and runs kpromo there:
# dry run (the plan), --confirm (the promotion), the result, and a rerun (a no-op).
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
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Dry run (the default): plan the promotion and print it; nothing is written"
run "$kpromo" cip --thin-manifest-dir "$work"

step "Promote: the same command with --confirm"
run "$kpromo" cip --thin-manifest-dir "$work" --confirm

step "Result: every mirror now holds the promoted images"
for mirror in eu us asia; do
  run "$kpromo" cip --snapshot "oci:./mirrors/$mirror"
done
if command -v skopeo >/dev/null; then
  step "Checked with an independent client (skopeo reads the layouts kpromo wrote)"
  run skopeo inspect --raw oci:mirrors/eu/multi:2.0
  echo
fi

step "Rerun: everything is already promoted, so nothing is copied"
run "$kpromo" cip --thin-manifest-dir "$work" --confirm

step "Done. The demo directory is kept: $work"
