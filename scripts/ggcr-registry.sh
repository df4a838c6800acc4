#!/usr/bin/env bash
# Builds `ggcr-registry`, the test registry with the OCI 1.1 referrers API: go-containerregistry's
# `pkg/registry`, used as packaged, behind a main of our own. CNCF distribution 2.8 (Debian's
# docker-registry, the suite's other registry) has no referrers API, so kpromo's native referrers
# path is tested against this one (docs/decisions/0002-referrers-test-registry.md).
#
# Everything comes from Debian packages, fetched and only unpacked without touching the system's
# apt state (scripts/lib/debian-apt.sh). Bookworm gives the Go 1.19 toolchain, trixie the
# go-containerregistry source package (bookworm does not package it).
#
# The binary is cached and rebuilt only when this script (or the library it sources) changes; a
# rerun prints its path at once.
#
# Usage: scripts/ggcr-registry.sh      (prints the binary's path on stdout, progress on stderr)
# Environment:
#   KPROMO_TEST_CACHE     cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/kpromo-test);
#                         tests/support/ggcr.rs looks for the binary in the same place
#   KPROMO_DEBIAN_MIRROR  Debian archive URL (default: the one this Debian machine's apt uses;
#                         required elsewhere, e.g. on Ubuntu)
set -euo pipefail

cache="${KPROMO_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kpromo-test}"
binary="$cache/ggcr-registry"
stamp="$cache/ggcr-registry.recipe"
scripts=$(dirname "${BASH_SOURCE[0]}")
recipe="recipe $(cat "${BASH_SOURCE[0]}" "$scripts/lib/debian-apt.sh" | sha256sum | cut -d' ' -f1)"
# shellcheck source-path=SCRIPTDIR source=lib/debian-apt.sh
. "$scripts/lib/debian-apt.sh"

log() { echo "ggcr-registry.sh: $*" >&2; }

is_built() { [ -x "$binary" ] && [ "$(head -n1 "$stamp" 2>/dev/null)" = "$recipe" ]; }

mkdir -p "$cache"
if is_built; then
  echo "$binary"
  exit 0
fi
# Two test runs starting at once build once: the second waits, then finds the binary.
exec 9>"$cache/.ggcr-registry.lock"
flock 9
if is_built; then
  echo "$binary"
  exit 0
fi

started=$SECONDS
# Build directories left by a run that was killed (only the lock holder builds).
rm -rf "$cache"/.ggcr-build.*
work=$(mktemp -d "$cache/.ggcr-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

debian_apt_init "$work" bookworm trixie
mkdir -p "$work/root"
debian_download "$work/debs" golang-1.19-go/bookworm golang-1.19-src/bookworm \
  golang-github-google-go-containerregistry-dev/trixie
# Only what `go build` of one program needs: the go command, compile/asm/link, the standard
# library's source and its precompiled archives (reused for every package without cgo), and the
# go-containerregistry tree. That is 190 MB of the 480 MB the packages hold.
toolchain=./usr/lib/go-1.19
skip=(--exclude="$toolchain/pkg/linux_amd64/cmd" --exclude="$toolchain/pkg/linux_amd64_race"
  --exclude=./usr/share/go-1.19/src/cmd --exclude=./usr/share/go-1.19/test
  --exclude=./usr/share/go-1.19/misc --exclude=./usr/share/go-1.19/api
  --exclude='*/testdata' --exclude='*_test.go' --exclude=./usr/share/doc --exclude=./usr/share/man)
for tool in addr2line api buildid cgo cover dist doc fix nm objdump pack pprof test2json trace vet; do
  skip+=(--exclude="$toolchain/pkg/tool/linux_amd64/$tool")
done
for deb in "$work"/debs/*.deb; do
  log "unpacking $(basename "$deb")"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" "${skip[@]}"
done
versions=$(cd "$work/debs" && ls -1 -- *.deb)

# Our main: pkg/registry is a library, and the packaged cmd/registry takes only a port and leaves
# the referrers API off. This one enables the referrers API, refuses any address but loopback,
# binds before it reports, and prints the port it got, so a test harness can ask for port 0 and
# never race another process for a free port.
src="$work/gopath/src/kpromo-ggcr-registry"
mkdir -p "$src"
cat >"$src/main.go" <<'EOF'
// Command ggcr-registry serves go-containerregistry's in-memory registry (pkg/registry) with the
// OCI 1.1 referrers API enabled, for kpromo's tests. Built by scripts/ggcr-registry.sh.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on (port 0: any free port)")
	flag.Parse()
	logger := log.New(os.Stderr, "", log.LstdFlags)
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		logger.Fatalf("-addr %q: %v", *addr, err)
	}
	// A test server must never be reachable from outside the machine.
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		logger.Fatalf("-addr %q: only loopback IP addresses are allowed", *addr)
	}
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		logger.Fatalf("listen on %s: %v", *addr, err)
	}
	// The harness waits for this exact line: the socket is bound, so requests queue from now on.
	logger.Printf("ggcr-registry listening on %s", listener.Addr())
	server := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler:           registry.New(registry.Logger(logger), registry.WithReferrersSupport(true)),
	}
	logger.Fatal(server.Serve(listener))
}
EOF

goroot="$work/root/usr/lib/go-1.19"
log "building with $("$goroot/bin/go" version 2>/dev/null | cut -d' ' -f3) (GOPATH mode, no cgo)"
# GOPATH mode over the packaged source tree, as Debian itself builds Go packages: no module
# download, no proxy, and the caller's own Go settings must not leak in. Without cgo no C
# compiler is needed and the binary is static.
(cd "$src" && env -u GOOS -u GOARCH -u GOBIN -u GOEXPERIMENT -u GOTOOLCHAIN \
  GOROOT="$goroot" GOPATH="$work/gopath:$work/root/usr/share/gocode" GOCACHE="$work/gocache" \
  GO111MODULE=off GOENV=off GOFLAGS= GOPROXY=off CGO_ENABLED=0 \
  "$goroot/bin/go" build -o "$work/ggcr-registry" .)

# Binary first, stamp last, both by rename: an interrupted run leaves nothing that looks built.
mv -f "$work/ggcr-registry" "$binary"
printf '%s\n%s\n' "$recipe" "$versions" >"$work/recipe"
mv -f "$work/recipe" "$stamp"
log "built in $((SECONDS - started)) s from: $(echo "$versions" | tr '\n' ' ')"
echo "$binary"
