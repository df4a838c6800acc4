#!/usr/bin/env bash
# Installs the independent verifiers and the fake Fulcio/Rekor that kpromo's signing and
# attestation tests check their output with (docs/decisions/0003-trust-test-oracles.md): a
# signature or attestation is proven by a verifier we did not write. Three parts, each cached and
# reinstalled only when its recipe changes (this script, plus its pinned versions):
#
# - skopeo: Debian trixie's skopeo 1.18, whose containers/image verifies cosign signatures
#   (`sigstoreSigned` policies); bookworm's 1.9 was built with sigstore disabled. It needs
#   glibc 2.38, so it runs through trixie's own dynamic loader with trixie's libraries, behind a
#   wrapper script. Fetched and only unpacked without touching the system's apt state
#   (scripts/lib/debian-apt.sh).
# - node: sigstore-js (@sigstore/verify, bundle, core, sign) and its mocks (@sigstore/mock), at
#   versions that support this machine's Node 20, pinned by tests/oracles/package-lock.json and
#   installed with `npm ci` into a private node_modules.
# - venv: a Python venv with sigstore-python, sigstore-models, securesystemslib, in-toto and
#   in-toto-attestation, every package pinned by tests/oracles/requirements.txt.
#
# The programs that use them live in tests/oracles/ (run by tests/support/verifiers.rs and
# tests/support/sigstore_fake.rs, which find this cache by the same rule).
#
# Usage: scripts/trust-tools.sh   (prints `skopeo=PATH`, `node_modules=PATH`, `python=PATH` on
#                                  stdout, progress on stderr)
# Environment:
#   KPROMO_TEST_CACHE     cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/kpromo-test)
#   KPROMO_DEBIAN_MIRROR  Debian archive URL (see scripts/lib/debian-apt.sh)
set -euo pipefail

scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
oracles="$scripts/../tests/oracles"
cache="${KPROMO_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kpromo-test}"
tools="$cache/trust-tools"
# shellcheck source-path=SCRIPTDIR source=lib/debian-apt.sh
. "$scripts/lib/debian-apt.sh"

log() { echo "trust-tools.sh: $*" >&2; }

# A part's recipe: this script, the library it sources and the part's own pin file. The Rust
# harness computes the same hash to tell a stale install from a current one.
recipe_of() {
  echo "recipe $(cat "${BASH_SOURCE[0]}" "$scripts/lib/debian-apt.sh" "$@" | sha256sum | cut -d' ' -f1)"
}
declare -A recipe=(
  [skopeo]=$(recipe_of)
  [node]=$(recipe_of "$oracles/package-lock.json")
  [venv]=$(recipe_of "$oracles/requirements.txt")
)
is_current() { [ "$(head -n1 "$tools/$1.recipe" 2>/dev/null)" = "${recipe[$1]}" ]; }
all_current() { is_current skopeo && is_current node && is_current venv; }

report() {
  echo "skopeo=$tools/skopeo/skopeo"
  echo "node_modules=$tools/node/node_modules"
  echo "python=$tools/venv/bin/python"
}

mkdir -p "$tools"
if all_current; then
  report
  exit 0
fi
# Two test runs starting at once install once: the second waits, then finds everything current.
exec 9>"$cache/.trust-tools.lock"
flock 9
if all_current; then
  report
  exit 0
fi
started=$SECONDS
# A part is installed in place, its stamp written last: a killed run leaves no current stamp.
# Scratch directories left by a killed run are removed (only the lock holder installs).
rm -rf "$cache"/.trust-tools-build.*
work=$(mktemp -d "$cache/.trust-tools-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

install_skopeo() {
  local dir="$tools/skopeo" arch
  arch=$(dpkg --print-architecture)
  [ "$arch" = amd64 ] || { log "skopeo: only amd64 is supported (this is $arch)"; exit 1; }
  debian_apt_init "$work" trixie
  # skopeo and everything it loads: glibc with its loader, gpgme (and what gpgme loads), sqlite.
  debian_download "$work/debs" skopeo libc6 libgpgme11t64 libassuan9 libgpg-error0 libsqlite3-0
  rm -rf "$dir"
  mkdir -p "$dir/bin" "$dir/lib" "$work/root"
  local deb
  for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
  done
  mv "$work/root/usr/bin/skopeo" "$dir/bin/skopeo"
  mv "$work/root/usr/lib/x86_64-linux-gnu"/*.so* "$dir/lib/"
  # The wrapper resolves its own directory, so the cache can move with it.
  cat >"$dir/skopeo" <<'EOF'
#!/bin/sh
# Debian trixie's skopeo (glibc 2.38) on an older glibc: trixie's loader, trixie's libraries.
here=$(dirname "$(readlink -f "$0")")
exec "$here/lib/ld-linux-x86-64.so.2" --library-path "$here/lib" "$here/bin/skopeo" "$@"
EOF
  chmod +x "$dir/skopeo"
  local version
  version=$("$dir/skopeo" --version)
  log "installed $version from: $(cd "$work/debs" && echo *.deb)"
  printf '%s\n%s\n' "${recipe[skopeo]}" "$version" >"$tools/skopeo.recipe"
}

install_node() {
  local dir="$tools/node" major
  for tool in node npm; do
    command -v "$tool" >/dev/null || { log "needs $tool (Node.js 20.17 or later, with npm)"; exit 1; }
  done
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || { log "needs Node.js 20.17 or later (this is $(node --version))"; exit 1; }
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$oracles/package.json" "$oracles/package-lock.json" "$dir/"
  # Exactly the locked tree (integrity-checked); no audit or funding calls, no install scripts.
  (cd "$dir" && npm ci --no-audit --no-fund --no-update-notifier --ignore-scripts --loglevel=error >&2)
  # shellcheck disable=SC2016 # a JavaScript template literal, not a shell expansion
  log "installed sigstore-js: $(cd "$dir" && node -p '["verify","sign","mock"].map(p => `@sigstore/${p}@${require(`@sigstore/${p}/package.json`).version}`).join(" ")')"
  echo "${recipe[node]}" >"$tools/node.recipe"
}

install_venv() {
  local dir="$tools/venv"
  command -v python3 >/dev/null || { log "needs python3 (3.9 or later)"; exit 1; }
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    # Debian splits venv support out of python3.
    log "installing python3-venv"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
  fi
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: -r "$oracles/requirements.txt" >&2
  log "installed: $("$dir/bin/python" -m pip freeze | grep -Ei '^(sigstore|securesystemslib|in-toto)' | tr '\n' ' ')"
  echo "${recipe[venv]}" >"$tools/venv.recipe"
}

# The three parts download from three registries: in parallel, the slowest sets the time.
pids=()
is_current skopeo || { install_skopeo & pids+=($!); }
is_current node || { install_node & pids+=($!); }
is_current venv || { install_venv & pids+=($!); }
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" -eq 0 ] || { log "installation failed (see above)"; exit 1; }
log "installed in $((SECONDS - started)) s"
report
