#!/usr/bin/env bash
# Weft benchmark: backend direct vs. Weft sidecar pair vs. nginx pair vs.
# HAProxy pair, all on loopback. See bench/README.md.
#
#   bench/run.sh                                   # full run (~10 min)
#   RUNS=1 DURATION=3 LAT_DURATION=3 bench/run.sh  # quick run (~1 min)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"

# Settings (environment variables). Record the ones the caller set, so the
# report can show the exact command.
SETTINGS="WEFT_SIDECAR WEFT_APPLY WEFT_SIDECAR_ARGS RUNS LAT_RUNS DURATION LAT_DURATION RATE LAT_CONNS CONNS PATHS WARMUP WEFT_WAIT QUIET_WAIT FOREIGN_MAX RETRIES RESULTS_DIR KEEP_TMP SKIP_INSTALL"
CMDLINE=""
for v in $SETTINGS; do
  if [ -n "${!v+x}" ]; then CMDLINE+="$v=$(printf '%q' "${!v}") "; fi
done
CMDLINE+="bench/run.sh"

RUNS="${RUNS:-3}"                 # repetitions of every measurement (medians reported)
DURATION="${DURATION:-10}"        # seconds per wrk run
LAT_DURATION="${LAT_DURATION:-10}" # seconds per fixed-rate run (plus 1 s warm-up)
LAT_RUNS="${LAT_RUNS:-$RUNS}"     # fixed-rate runs per path (their samples are also pooled)
RATE="${RATE:-1000}"              # fixed rate, requests/s
LAT_CONNS="${LAT_CONNS:-32}"      # connections of the fixed-rate generator
CONNS="${CONNS:-32 128}"          # wrk connection counts
PATHS="${PATHS:-direct weft nginx haproxy}"
WARMUP="${WARMUP:-2}"             # seconds of wrk warm-up per path
WEFT_WAIT="${WEFT_WAIT:-15}"      # seconds to wait for the consumer sidecar to route
QUIET_WAIT="${QUIET_WAIT:-120}"   # before each run, wait up to this many s for other processes to stop using the CPUs
FOREIGN_MAX="${FOREIGN_MAX:-10}"  # % of a CPU used by other processes above which a run is repeated
RETRIES="${RETRIES:-2}"           # at most this many repeats of a disturbed run (least disturbed kept)
RESULTS_DIR="${RESULTS_DIR:-$BENCH_DIR/results}"
KEEP_TMP="${KEEP_TMP:-0}"         # 1: keep the temp dir (configs, logs)
SKIP_INSTALL="${SKIP_INSTALL:-0}" # 1: never call apt-get
WEFT_APPLY="${WEFT_APPLY:-}"      # resources weft apply takes before the sidecars start, e.g. bench/configs/routes-10.yaml
WEFT_SIDECAR="${WEFT_SIDECAR:-slim}" # sidecars from the slim build (-tags sidecaronly) or the full weft binary
WEFT_SIDECAR_ARGS="${WEFT_SIDECAR_ARGS:-}" # more flags for both sidecars; %w: the work dir, %n: the sidecar's name (e.g. --access-log %w/%n.log)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- tools -----------------------------------------------------------------
command -v go >/dev/null || die "go is not installed"
declare -A PKG=([wrk]=wrk [nginx]=nginx [haproxy]=haproxy [gnuplot]=gnuplot-nox [taskset]=util-linux [getconf]=libc-bin)
missing=()
for tool in "${!PKG[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$SKIP_INSTALL" = 1 ] && die "missing packages: ${missing[*]} (SKIP_INSTALL=1)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "missing packages ${missing[*]}; run as root or install them"
    SUDO=sudo
  fi
  log "installing with apt-get: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# Debian's packages may start system-wide nginx/haproxy services on some
# machines; they use their own ports and are left alone. Ours run from a temp
# dir on ports chosen at run time.

# ---- build -----------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/weft-bench.XXXXXX")"
cleanup() {
  if [ "$KEEP_TMP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
mkdir -p "$TMP/bin" "$TMP/work"

cd "$REPO_DIR"
log "building backend, loadgen and harness"
go build -o "$TMP/bin/backend" ./bench/backend
go build -o "$TMP/bin/loadgen" ./bench/loadgen
go build -o "$TMP/bin/harness" ./bench/harness

WEFT_SKIP=""
case " $PATHS " in
  *weft*)
    log "building weft (go build -o <tmp>/weft ./cmd/weft)"
    if ! go build -o "$TMP/bin/weft" ./cmd/weft >"$TMP/weft-build.log" 2>&1; then
      WEFT_SKIP="weft does not build yet (go build ./cmd/weft): $(head -c 400 "$TMP/weft-build.log" | tr '\n' ' ')"
      log "SKIPPING the weft path: $WEFT_SKIP"
    fi
    cp "$TMP/bin/weft" "$TMP/bin/weft-sidecar"
    case "$WEFT_SIDECAR" in
      slim)
        log "building the slim sidecar (go build -tags sidecaronly -o <tmp>/weft-sidecar ./cmd/weft)"
        go build -tags sidecaronly -o "$TMP/bin/weft-sidecar" ./cmd/weft ;;
      full) ;;
      *) die "WEFT_SIDECAR=$WEFT_SIDECAR: want slim or full" ;;
    esac
    ;;
esac

# ---- pinning ---------------------------------------------------------------
NCPU="$(getconf _NPROCESSORS_ONLN)"
if [ "$NCPU" -ge 2 ]; then
  LG_CPU=0 SRV_CPU=1
else
  log "warning: only $NCPU CPU: no pinning, load generator and servers share it"
  LG_CPU="" SRV_CPU=""
fi

# ---- run -------------------------------------------------------------------
HARNESS=("$TMP/bin/harness"
  -bench-dir "$BENCH_DIR" -repo-dir "$REPO_DIR" -bin-dir "$TMP/bin" -work-dir "$TMP/work"
  -results-dir "$RESULTS_DIR" -runs "$RUNS" -lat-runs "$LAT_RUNS" -duration "${DURATION}s" -lat-duration "${LAT_DURATION}s"
  -warmup "${WARMUP}s" -rate "$RATE" -lat-conns "$LAT_CONNS" -conns "$CONNS" -paths "$PATHS"
  -weft-sidecar "$WEFT_SIDECAR" -lg-cpu "$LG_CPU" -srv-cpu "$SRV_CPU" -weft-wait "${WEFT_WAIT}s" -weft-skip "$WEFT_SKIP"
  -weft-apply "$(if [ -n "$WEFT_APPLY" ]; then realpath "$WEFT_APPLY"; fi)" -weft-sidecar-args "$WEFT_SIDECAR_ARGS"
  -quiet-wait "${QUIET_WAIT}s" -foreign-max "$FOREIGN_MAX" -retries "$RETRIES"
  -command "$CMDLINE")
if [ -n "$LG_CPU" ]; then
  # The harness itself (sampling /proc, starting wrk) stays off the server CPU.
  taskset -c "$LG_CPU" "${HARNESS[@]}"
else
  "${HARNESS[@]}"
fi
