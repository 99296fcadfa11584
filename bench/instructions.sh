#!/usr/bin/env bash
# Instructions per delivered message of one or more Strata builds, counted
# by callgrind (valgrind), for differences smaller than this machine's
# timing noise. For each scenario and build, in turn: the broker runs under
# callgrind, `strata bench` loads it for a fixed time, the broker stops
# (SIGTERM, a graceful shutdown), and the instructions it executed, less
# those of a run with no load, are divided by the messages delivered.
#
# Usage: bench/instructions.sh [-d SECONDS] BINARY [BINARY...]
# Prints one line per scenario and build; JSON lines go to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
if [[ ${1:-} == -d ]]; then DURATION=$2; shift 2; fi
[[ $# -ge 1 ]] || { echo "usage: $0 [-d SECONDS] BINARY [BINARY...]" >&2; exit 2; }
command -v valgrind >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
cargo build --release -p strata >/dev/null 2>&1 || cargo build --release -p strata
BENCH=target/release/strata
PORT=21884
work=$(mktemp -d)
trap 'rm -rf "$work"; [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null || true' EXIT
printf '[[listener]]\nbind = "127.0.0.1:%s"\n[sys]\ninterval_secs = 0\n[limits]\nmax_inflight = 100\n' "$PORT" > "$work/strata.toml"
mkdir -p bench/results
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ)-instructions.jsonl"

# Batched writes (the generator's ceiling), then one packet per write at a
# rate the broker keeps up with under callgrind (which runs it tens of times
# slower): an overloaded broker reads more per wake, and counts less.
scenarios=(
  "fan-in qos0|--writes batched --scenario fan-in -n 10 -q 0 -s 64"
  "fan-in qos1|--writes batched --scenario fan-in -n 10 -q 1 -s 64"
  "fan-out qos1|--writes batched --scenario fan-out -n 100 -q 1 -s 64"
  "per-packet fan-in qos0 @ 2k/s|--scenario fan-in -n 10 -q 0 -s 64 -r 2000"
  "per-packet fan-in qos1 @ 2k/s|--scenario fan-in -n 10 -q 1 -s 64 -r 2000"
)

# Runs BINARY under callgrind with `strata bench ARGS` against it (none:
# no load); prints "instructions delivered".
measure() {
  local bin=$1 args=$2 file="$work/callgrind.out"
  rm -f "$file"
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$file" \
    "$bin" serve -q --in-memory --config "$work/strata.toml" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  local delivered=0
  if [[ -n $args ]]; then
    # shellcheck disable=SC2086
    delivered=$(taskset -c 1 "$BENCH" bench -h 127.0.0.1 -p "$PORT" --json -d "$DURATION" $args \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])')
  fi
  kill -TERM "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
  local ir
  ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$file")
  echo "$ir $delivered"
}

for s in "${scenarios[@]}"; do
  name=${s%%|*} args=${s#*|}
  for bin in "$@"; do
    read -r idle _ < <(measure "$bin" "")
    read -r ir delivered < <(measure "$bin" "$args")
    per=$(python3 -c "print(round(($ir - $idle) / $delivered, 1))")
    printf '%-30s %-40s %10s msg %12s instructions/msg\n' "$name" "$bin" "$delivered" "$per"
    printf '{"name":"%s","binary":"%s","delivered":%s,"instructions":%s,"idle_instructions":%s,"per_message":%s}\n' \
      "$name" "$bin" "$delivered" "$ir" "$idle" "$per" >> "$out"
  done
done
echo "raw results: $out" >&2
