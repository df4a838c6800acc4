#!/usr/bin/env bash
# Plan benchmark against real registries: the registry.k8s.io tree's shape promoted to
# 20 destination "regions" (path prefixes spread over a few local CNCF distribution
# registries, storage on /dev/shm), planned with `kpromo cip --parse-only`, then the
# same as a default dry run. Prints edges, repositories read, requests per registry,
# requests per edge, wall time and peak RSS. See docs/performance.md for figures.
#
#   scripts/bench-plan-remote.sh [FRACTION [REGIONS [PROMOTED [HOSTS]]]]
#       FRACTION  keep every N-th digest of each real image (default 20; 1 = full tree)
#       REGIONS   destination regions per project (default 20)
#       PROMOTED  regions already holding the images, less every 20th digest (default 12)
#       HOSTS     registries the regions are spread over (default 3)
#   KPROMO_BIN=target/release/kpromo ...      # use this binary, no cargo build
#   BENCH_RATE=50 scripts/bench-plan-remote.sh   # per-host rate limit (default: lifted,
#                                                # to measure kpromo and not the limiter)
#
# Needs docker-registry, python3, jq and /usr/bin/time. Registries are stopped and
# their storage deleted on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
fraction="${1:-20}" regions="${2:-20}" promoted="${3:-12}" nhosts="${4:-3}"
rate="${BENCH_RATE:-100000}"
for tool in docker-registry python3 jq /usr/bin/time curl; do
  command -v "$tool" >/dev/null || { echo "$tool missing (scripts/test.sh installs docker-registry)" >&2; exit 1; }
done

SECONDS=0
if [ -n "${KPROMO_BIN:-}" ]; then
  kpromo=$(realpath "$KPROMO_BIN")
else
  cargo build --locked --quiet --release --bin kpromo
  kpromo="$PWD/target/release/kpromo"
fi
echo "[${SECONDS}s] $("$kpromo" version 2>/dev/null | head -1 || echo "$kpromo") ready"

work=$(mktemp -d /dev/shm/kpromo-bench-plan.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# name -> port; storage is written while the registries are stopped, then they start.
names=(staging)
for ((h = 1; h <= nhosts; h++)); do names+=("region-host$h"); done
declare -A port
for name in "${names[@]}"; do
  port[$name]=$(free_port)
  mkdir -p "$work/$name/data"
  cat >"$work/$name/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/$name/data
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port[$name]}
EOF
done

echo "kpromo plan benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
host_args=()
for ((h = 1; h <= nhosts; h++)); do host_args+=(--region-host "$work/region-host$h/data:${port[region-host$h]}"); done
start=$(date +%s.%N)
world=$(python3 scripts/gen-plan-world.py --tree testdata/registry.k8s.io --out "$work/tree" \
  --staging "$work/staging/data:${port[staging]}" "${host_args[@]}" \
  --fraction "$fraction" --regions "$regions" --promoted "$promoted")
printf 'world: %s\n  generated in %.1f s; /dev/shm used: %s\n' "$world" \
  "$(echo "$(date +%s.%N) - $start" | bc)" "$(du -sh "$work" | cut -f1)"

for name in "${names[@]}"; do
  setsid docker-registry serve "$work/$name/config.yml" >"$work/$name/registry.log" 2>&1 &
  pids+=($!)
done
for name in "${names[@]}"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:${port[$name]}/v2/" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:${port[$name]}/v2/" >/dev/null || { cat "$work/$name/registry.log" >&2; exit 1; }
done

echo "[${SECONDS}s] registries up"

# CPU seconds (user+sys) used so far by the registry processes.
registry_cpu() {
  local ticks=0 pid
  for pid in "${pids[@]}"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "scale=1; $ticks / $(getconf CLK_TCK)" | bc
}

# One kpromo run under /usr/bin/time -v: prints the figures from its summary.
run() {
  local label=$1
  shift
  local out="$work/$label"
  local status=0 cpu_before
  cpu_before=$(registry_cpu)
  /usr/bin/time -v "$kpromo" cip --thin-manifest-dir "$work/tree" --summary-json "$out.json" \
    --registry-rate-limit "$rate" "$@" >"$out.stdout" 2>"$out.stderr" || status=$?
  echo
  echo "== $label: kpromo cip --thin-manifest-dir TREE --registry-rate-limit $rate $* (exit $status)"
  [ -s "$out.json" ] || { tail -20 "$out.stderr" >&2; exit 1; }
  local repos
  repos=$(grep -o 'reading [0-9]* repositories' "$out.stderr" | grep -o '[0-9]*' || echo '?')
  jq -r --arg repos "$repos" --argjson rate "$rate" '
    def total: [.requests[]] | add // 0;
    ([.registries[] | total] | add) as $all
    | "outcome \(.outcome); \(.manifests) manifests, \(.edges) edges, repositories read \($repos)",
      "decisions: \(.decisions | to_entries | map("\(.key) \(.value)") | join(", "))",
      (.registries | to_entries[] | "  \(.key): \(.value | total) requests \(.value.requests | tojson)"),
      "requests: \($all) total, \(if .edges > 0 then ($all / .edges * 1000 | round / 1000) else 0 end) per edge; \(.write_requests) writes, \(.retries) retries",
      "phases: \(.phases_ms | map("\(.[0]) \(.[1]) ms") | join(", ")); total \(.total_ms) ms",
      "at the default 50 req/s per host the busiest host alone needs \([.registries[] | total] | max / 50 | round) s"
  ' "$out.json"
  grep -E 'Elapsed \(wall clock\)|Maximum resident set size|(User|System) time' "$out.stderr" | sed 's/^\s*/  /'
  echo "  registries' CPU time during the run: $(echo "$(registry_cpu) - $cpu_before" | bc) s"
  echo "  plan output: $(wc -l <"$out.stdout") lines, $(wc -c <"$out.stdout") bytes on stdout; $(wc -l <"$out.stderr") log lines"
}

run plan-only --parse-only
run dry-run
echo
echo "[${SECONDS}s] done; stopping the registries"
echo "registries: $(for name in "${names[@]}"; do printf '%s=127.0.0.1:%s ' "$name" "${port[$name]}"; done)"
