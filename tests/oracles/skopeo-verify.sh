#!/usr/bin/env bash
# Verifies the cosign signature (`<repo>:sha256-<hex>.sig`) of one image with skopeo 1.18 and a
# containers-policy `sigstoreSigned` rule: containers/image's own sigstore code, an implementation
# independent of cosign and of kpromo. skopeo copies the image to a throw-away directory, and the
# copy succeeds only if the policy accepts one of the signatures. Run through
# tests/support/verifiers.rs; scripts/trust-tools.sh installs this skopeo.
#
# Usage:
#   skopeo-verify.sh --skopeo PATH --image HOST/REPO(:TAG|@DIGEST) --identity JSON [--creds USER:PASS]
#                    (--key PUB.pem
#                     | --fulcio-ca PEM --rekor-key PEM --oidc-issuer URL --subject-email EMAIL)
#   --identity is the policy's `signedIdentity` object, e.g. {"type":"matchRepository"} or
#   {"type":"exactRepository","dockerRepository":"registry.k8s.io/pause"}
#   (docs/decisions/0003-trust-test-oracles.md says which form accepts what).
# Exit status: 0 verified (one line on stdout), 1 refused (skopeo's own message on stderr),
# 2 bad usage.
set -euo pipefail

usage() {
  echo "skopeo-verify.sh: $*" >&2
  exit 2
}

skopeo="" image="" identity="" creds="" key="" fulcio_ca="" rekor_key="" oidc_issuer="" subject_email=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage "$1 needs a value"
  case "$1" in
  --skopeo) skopeo=$2 ;;
  --image) image=$2 ;;
  --identity) identity=$2 ;;
  --creds) creds=$2 ;;
  --key) key=$2 ;;
  --fulcio-ca) fulcio_ca=$2 ;;
  --rekor-key) rekor_key=$2 ;;
  --oidc-issuer) oidc_issuer=$2 ;;
  --subject-email) subject_email=$2 ;;
  *) usage "unknown flag $1" ;;
  esac
  shift 2
done
[ -x "$skopeo" ] || usage "--skopeo must name the skopeo 1.18 wrapper (scripts/trust-tools.sh installs it)"
if [ -z "$image" ] || [ -z "$identity" ]; then usage "--image and --identity are required"; fi
# Paths go into JSON: keep them to characters that need no escaping.
for path in "$key" "$fulcio_ca" "$rekor_key"; do
  [[ "$path" =~ ^[A-Za-z0-9_./+-]*$ ]] || usage "unsupported characters in path $path"
  [ -z "$path" ] || [ -r "$path" ] || usage "cannot read $path"
done
if [ -n "$key" ]; then
  rule="{\"type\":\"sigstoreSigned\",\"keyPath\":\"$key\",\"signedIdentity\":$identity}"
elif [ -n "$fulcio_ca" ] && [ -n "$rekor_key" ] && [ -n "$oidc_issuer" ] && [ -n "$subject_email" ]; then
  [[ "$oidc_issuer$subject_email" != *[\"\\]* ]] || usage "quotes or backslashes in the issuer or email"
  rule="{\"type\":\"sigstoreSigned\",\"fulcio\":{\"caPath\":\"$fulcio_ca\",\"oidcIssuer\":\"$oidc_issuer\",\
\"subjectEmail\":\"$subject_email\"},\"rekorPublicKeyPath\":\"$rekor_key\",\"signedIdentity\":$identity}"
else
  usage "give --key, or --fulcio-ca, --rekor-key, --oidc-issuer and --subject-email"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kpromo-skopeo-verify.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The rule is the default for every image: this run reads exactly one. The destination (`dir:`)
# is never checked against the policy.
echo "{\"default\":[$rule]}" >"$work/policy.json"
mkdir "$work/registries.d"
# Where cosign keeps signatures: `sha256-<hex>.sig` beside the image, read for every registry.
printf 'default-docker:\n  use-sigstore-attachments: true\n' >"$work/registries.d/default.yaml"

args=(--policy "$work/policy.json" --registries.d "$work/registries.d" copy -q --src-tls-verify=false)
[ -z "$creds" ] || args+=(--src-creds "$creds")
# No user configuration leaks in (auth files, registries.conf mirrors): a private HOME and XDG.
if HOME="$work" XDG_CONFIG_HOME="$work/config" XDG_RUNTIME_DIR="$work" \
  "$skopeo" "${args[@]}" "docker://$image" "dir:$work/image" 2>"$work/stderr"; then
  echo "OK skopeo: sigstoreSigned accepted docker://$image"
else
  # skopeo fails through logrus (`level=fatal msg="…"`, quotes escaped): its message, unescaped.
  message=$(sed -n 's/^.*level=fatal msg="\(.*\)"$/\1/p' "$work/stderr" | sed 's/\\"/"/g')
  if [ -n "$message" ]; then echo "$message" >&2; else cat "$work/stderr" >&2; fi
  exit 1
fi
