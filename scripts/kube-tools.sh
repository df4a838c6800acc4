#!/usr/bin/env bash
# Installs kubernetes-validate (PyPI; it ships the Kubernetes OpenAPI schemas, so it works
# offline) into a private venv in the test cache, once; prints the path of its program.
# Used by tests/offline/kubernetes_job.rs to validate the Job in docs/kubernetes.md.
#
# Environment: KPROMO_TEST_CACHE (default: ${XDG_CACHE_HOME:-$HOME/.cache}/kpromo-test)
set -euo pipefail
scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pins="$scripts/../tests/oracles/kube-requirements.txt"
cache="${KPROMO_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kpromo-test}"
venv="$cache/kube-tools/venv"
recipe="recipe $(cat "${BASH_SOURCE[0]}" "$pins" | sha256sum | cut -d' ' -f1)"
if [ "$(head -n1 "$venv.recipe" 2>/dev/null)" != "$recipe" ]; then
  echo "kube-tools.sh: installing kubernetes-validate into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: -r "$pins" >&2
  echo "$recipe" >"$venv.recipe"
fi
echo "$venv/bin/kubernetes-validate"
