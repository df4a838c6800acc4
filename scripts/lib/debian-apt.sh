# shellcheck shell=bash
# Sourced by the scripts that take test tools from Debian packages (ggcr-registry.sh,
# trust-tools.sh): packages are fetched with `apt-get download` through a private apt
# configuration and only unpacked, so the system's sources, package lists and dpkg state are
# never touched and no root is needed (sudo only installs debian-archive-keyring where it is
# missing, as on Ubuntu). The caller defines `log`.
#
#   debian_apt_init WORK SUITE...   private apt state under WORK/apt, package lists of SUITEs
#   debian_download DIR PACKAGE...  downloads PACKAGE (name or name/suite) .debs into DIR
# Environment: KPROMO_DEBIAN_MIRROR, the Debian archive URL (default: the one this Debian
# machine's apt uses; required elsewhere, e.g. on Ubuntu).

debian_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
debian_apt_options=()

# The URL of the Debian archive this machine's apt already uses for its own release, so the
# scripts work behind whatever mirror or proxy the machine is set up with.
debian_mirror() {
  local work=$1
  if [ -n "${KPROMO_DEBIAN_MIRROR:-}" ]; then
    echo "${KPROMO_DEBIAN_MIRROR%/}"
    return
  fi
  local id="" codename=""
  if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    read -r id codename < <(. /etc/os-release && echo "${ID:-none} ${VERSION_CODENAME:-}")
  fi
  if [ "$id" = debian ] && [ -n "$codename" ]; then
    # --print-uris lists what an update would fetch (from an empty private lists directory, so
    # every source shows up) without downloading anything.
    local uris
    mkdir -p "$work/probe-lists/partial"
    uris=$(apt-get update --print-uris -o Dir::State::Lists="$work/probe-lists" 2>/dev/null) || true
    sed -n "\|^'\(.*\)/dists/$codename/InRelease'.*|{s||\1|p;q}" <<<"$uris"
  fi
}

debian_apt_init() {
  local work=$1
  shift
  local tool
  for tool in apt-get dpkg-deb tar sha256sum; do
    command -v "$tool" >/dev/null || { log "needs $tool (a Debian or Ubuntu machine)"; exit 1; }
  done
  if [ ! -r "$debian_keyring" ]; then
    log "installing debian-archive-keyring (verifies the Debian packages)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends debian-archive-keyring
  fi
  local mirror
  mirror=$(debian_mirror "$work")
  if [ -z "$mirror" ]; then
    log "no Debian archive among this machine's apt sources: set KPROMO_DEBIAN_MIRROR to its URL"
    exit 1
  fi
  local apt="$work/apt"
  mkdir -p "$apt/sources.list.d" "$apt/preferences.d" "$apt/lists/partial" "$apt/cache/archives/partial"
  : >"$apt/status"
  cat >"$apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $*
Components: main
Targets: Packages
Signed-By: $debian_keyring
SOURCES
  # The system's apt.conf.d still applies (proxies, mirror settings); sources, pins, lists and
  # the dpkg status are private. As root, apt would hand downloads to the `_apt` user, who
  # cannot write into a private directory under $HOME; running them as the caller avoids that.
  debian_apt_options=(
    -q
    -o Dir::Etc::SourceList=/dev/null
    -o Dir::Etc::SourceParts="$apt/sources.list.d"
    -o Dir::Etc::Preferences=/dev/null
    -o Dir::Etc::PreferencesParts="$apt/preferences.d"
    -o Dir::State::Lists="$apt/lists"
    -o Dir::State::Status="$apt/status"
    -o Dir::Cache="$apt/cache"
    -o APT::Sandbox::User="$(id -un)"
    -o Acquire::Languages=none
  )
  log "fetching package lists ($*) from $mirror"
  apt-get "${debian_apt_options[@]}" update >/dev/null
}

debian_download() {
  local dir=$1
  shift
  mkdir -p "$dir"
  (cd "$dir" && apt-get "${debian_apt_options[@]}" download "$@" >/dev/null)
}
