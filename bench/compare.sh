#!/usr/bin/env bash
# Strata, Mosquitto and rumqttd side by side on this machine.
#
# Installs Mosquitto from Debian's packages and rumqttd with `cargo install`
# (into target/bench-tools) when missing, builds Strata in release mode,
# then for each broker in turn: starts it on 127.0.0.1 pinned to CPU 0, runs
# every scenario with `strata bench` pinned to CPU 1, and stops it by PID.
# Prints one table: each broker's figure and Strata's ratio to the best peer.
# The paced latency scenarios run five times, alternating brokers, and the
# table gives the median of each figure.
#
# Usage: bench/compare.sh [--quick] [--durable | --tls] [--ab STRATA_BINARY] [--rounds N]
#   --quick    3 s runs, 1k connections, fewer paced publishers
#   --durable  the durable path instead: QoS 1 fan-in to persistent
#              subscribers, Strata with a data directory (fsync always, then
#              never) against Mosquitto with persistence on
#   --tls      the transports instead: every broker's listener is TLS (an
#              ECDSA P-256 certificate from `strata ca`), with QoS 1 fan-in
#              and QoS 0 fan-out at a fixed load and full handshakes at 500
#              new connections per second, idle TLS connections, then the
#              same fan-in and fan-out over plain TCP beside them, against
#              Mosquitto with a TLS listener; and fan-in over WebSocket
#              beside TCP (Strata only: Debian's Mosquitto 2.0.11 is built
#              without WebSocket support)
#   --ab BIN   this Strata against another Strata binary (an earlier build)
#              instead of the peers: every scenario runs --rounds times
#              (default 5), alternating the two, and the table gives medians
#   --rounds N rounds of every scenario (default 1; the paced latency
#              scenarios always run at least LATENCY_ROUNDS times)
#   --acl      Strata with a 1,000-line ACL file against Strata without one
#              (fan-in and fan-out at fixed rates; five alternating rounds
#              unless --rounds says otherwise): the cost of authorization
#   --only RE  only the scenarios whose name matches the regular expression
# Results (JSON lines) are kept in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
CONNS=10000
# Paced publishers: a thousand, and a fleet of 5,000 at 10 msg/s each.
PACED=1000
FLEET=5000
FLEET_RATE=50000
DURABLE=0
TLS=0
ACL=0
AB=
ROUNDS=1
ONLY=
# The paced latency scenarios run this many times, alternating brokers; the
# table gives the median (one run's p99 is a few wake-ups of an idle vCPU,
# and on a shared host five rounds still swung the one-pair median from
# 1.18x to 0.91x between runs of the same code).
LATENCY_ROUNDS=9
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) DURATION=3; CONNS=1000; PACED=200; FLEET=1000; FLEET_RATE=10000; LATENCY_ROUNDS=3 ;;
    --durable) DURABLE=1 ;;
    --tls) TLS=1 ;;
    --acl) ACL=1; LATENCY_ROUNDS=0; [[ $ROUNDS == 1 ]] && ROUNDS=5 ;;
    --ab) AB=$(realpath "$2"); shift; LATENCY_ROUNDS=0; [[ $ROUNDS == 1 ]] && ROUNDS=5 ;;
    --rounds) ROUNDS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

tools=target/bench-tools
results=bench/results
mkdir -p "$tools" "$results"
run_id=$(date -u +%Y%m%dT%H%M%SZ)
out="$results/$run_id.jsonl"

need_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if [[ -z $AB && $ACL == 0 ]] && ! command -v mosquitto >/dev/null && [[ ! -x /usr/sbin/mosquitto ]]; then
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [[ -z $AB && $ACL == 0 && ! -x "$tools/bin/rumqttd" ]]; then
  # Not --locked: its lock file pins a metrics release that rustc 1.95 refuses.
  cargo install rumqttd --version 0.20.0 --root "$tools" >/dev/null
fi
RUMQTTD="$tools/bin/rumqttd"
cargo build --release -p strata >/dev/null 2>&1 || cargo build --release -p strata
STRATA=target/release/strata

PORT=21883
# The port is $PORT unless a scenario names its own (-p).
BENCH=(taskset -c 1 "$STRATA" bench -h 127.0.0.1 --json)
# The TLS and WebSocket listeners' ports, beside the plain one.
TLS_PORT=28883
WS_PORT=28080
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

conf_dir=$(mktemp -d)
trap 'rm -rf "$conf_dir"; [[ -n "${BROKER_PID:-}" ]] && kill "$BROKER_PID" 2>/dev/null || true' EXIT
cat > "$conf_dir/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 100
max_connections -1
# Small packets leave at once, as Strata's do (TCP_NODELAY): with Nagle's
# algorithm on, Mosquitto's default, a packet can wait for the peer's ACK.
set_tcp_nodelay true
CONF
cat > "$conf_dir/rumqttd.toml" <<CONF
id = 0
[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:$PORT"
next_connection_delay_ms = 0
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20480
max_inflight_count = 100
dynamic_filters = true
CONF
# Every broker gets the same window of 100 unacknowledged QoS 1/2
# messages per client (Mosquitto's max_inflight_messages, rumqttd's
# max_inflight_count, Strata's limits.max_inflight, whose default is 64).
cat > "$conf_dir/strata.toml" <<CONF
[[listener]]
bind = "127.0.0.1:$PORT"
[sys]
interval_secs = 0
[limits]
max_inflight = 100
CONF
# The durable variants: a data directory on the disk the repository is on.
for policy in always never; do
  { cat "$conf_dir/strata.toml"; printf '[storage]\ndata_dir = "%s"\nfsync = "%s"\n' "$conf_dir/data-$policy" "$policy"; } \
    > "$conf_dir/strata-$policy.toml"
done
sed -e 's/^persistence false/persistence true/' "$conf_dir/mosquitto.conf" > "$conf_dir/mosquitto-persist.conf"
# The TLS variants: the plain listener, and a TLS one with a certificate
# from `strata ca` (ECDSA P-256), the same files for every broker.
"$STRATA" ca init "$conf_dir/ca" >/dev/null
"$STRATA" ca issue --ca "$conf_dir/ca" --server localhost,127.0.0.1 >/dev/null
{ cat "$conf_dir/strata.toml"; printf '[[listener]]\nbind = "127.0.0.1:%s"\ntransport = "tls"\ncertfile = "%s"\nkeyfile = "%s"\n' \
    "$TLS_PORT" "$conf_dir/ca/localhost.pem" "$conf_dir/ca/localhost.key"
  printf '[[listener]]\nbind = "127.0.0.1:%s"\ntransport = "ws"\n' "$WS_PORT"; } > "$conf_dir/strata-tls.toml"
{ cat "$conf_dir/mosquitto.conf"; printf 'listener %s 127.0.0.1\ncertfile %s\nkeyfile %s\n' \
    "$TLS_PORT" "$conf_dir/ca/localhost.pem" "$conf_dir/ca/localhost.key"
  # Started as root, Mosquitto drops to its own user, which cannot read
  # the 0600 key in this 0700 directory.
  [[ $(id -u) -eq 0 ]] && echo "user root"; } > "$conf_dir/mosquitto-tls.conf"
echo "persistence_location $conf_dir/" >> "$conf_dir/mosquitto-persist.conf"
# The ACL variant: 1,000 rule lines in Mosquitto's syntax. The bench's
# clients are anonymous: ten deny lines and 300 lines that do not match
# come before the one that lets them publish and read bench/#, then 200
# users' sections and 489 patterns (which every client is checked against
# when its own lines do not decide).
{
  for i in $(seq 1 10); do echo "topic deny other/secret/$i"; done
  for i in $(seq 1 300); do echo "topic readwrite other/$i/#"; done
  echo "topic readwrite bench/#"
  for i in $(seq 1 200); do printf 'user u%s
topic readwrite users/u%s/#
' "$i" "$i"; done
  for i in $(seq 1 489); do echo "pattern read devices/%c/$i/#"; done
} > "$conf_dir/acl"
{ cat "$conf_dir/strata.toml"; printf '[auth]\nacl_file = "%s"\n' "$conf_dir/acl"; } > "$conf_dir/strata-acl.toml"

start_broker() {
  # Every run starts from an empty data directory.
  rm -rf "$conf_dir"/data-*
  case "$1" in
    # In memory, as Mosquitto and rumqttd run in the main table.
    strata) taskset -c 0 "$STRATA" serve -q --in-memory --config "$conf_dir/strata.toml" >/dev/null 2>&1 & ;;
    strata-base) taskset -c 0 "$AB" serve -q --in-memory --config "$conf_dir/strata.toml" >/dev/null 2>&1 & ;;
    mosquitto) taskset -c 0 "$MOSQUITTO" -c "$conf_dir/mosquitto.conf" >/dev/null 2>&1 & ;;
    rumqttd) taskset -c 0 "$RUMQTTD" -c "$conf_dir/rumqttd.toml" -q >/dev/null 2>&1 & ;;
    strata-fsync-always) taskset -c 0 "$STRATA" serve -q --config "$conf_dir/strata-always.toml" >/dev/null 2>&1 & ;;
    strata-base-fsync-always) taskset -c 0 "$AB" serve -q --config "$conf_dir/strata-always.toml" >/dev/null 2>&1 & ;;
    strata-fsync-never) taskset -c 0 "$STRATA" serve -q --config "$conf_dir/strata-never.toml" >/dev/null 2>&1 & ;;
    mosquitto-persist) taskset -c 0 "$MOSQUITTO" -c "$conf_dir/mosquitto-persist.conf" >/dev/null 2>&1 & ;;
    strata-acl) taskset -c 0 "$STRATA" serve -q --in-memory --config "$conf_dir/strata-acl.toml" >/dev/null 2>&1 & ;;
    strata-tls) taskset -c 0 "$STRATA" serve -q --in-memory --config "$conf_dir/strata-tls.toml" >/dev/null 2>&1 & ;;
    strata-base-tls) taskset -c 0 "$AB" serve -q --in-memory --config "$conf_dir/strata-tls.toml" >/dev/null 2>&1 & ;;
    mosquitto-tls) taskset -c 0 "$MOSQUITTO" -c "$conf_dir/mosquitto-tls.conf" >/dev/null 2>&1 & ;;
  esac
  BROKER_PID=$!
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$BROKER_PID" 2>/dev/null || { echo "$1 exited at start" >&2; return 1; }
    sleep 0.05
  done
  echo "$1 did not listen on $PORT" >&2
  return 1
}

stop_broker() {
  kill "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=
}

# name | strata bench arguments. Clients write one packet per write, as
# devices do, unless the name says "batched" (the generator's ceiling:
# 64 KiB of packets per write, past what real clients send).
#  - "@ RATE": a fixed offered load from the raw clients, which cost the
#    generator little; the broker's CPU share is the figure, with p99.
#  - "rumqttc": the rumqttc crate's clients, as fast as they go.
scenarios=(
  "fan-in qos0 @ 20k/s, 10 clients|--scenario fan-in -n 10 -q 0 -s 64 -r 20000 -d $DURATION"
  "fan-in qos1 @ 20k/s, 10 clients|--scenario fan-in -n 10 -q 1 -s 64 -r 20000 -d $DURATION"
  "fan-in qos0 @ 20k/s, $PACED clients|--scenario fan-in -n $PACED -q 0 -s 64 -r 20000 -d $DURATION"
  "fan-in qos1 @ 20k/s, $PACED clients|--scenario fan-in -n $PACED -q 1 -s 64 -r 20000 -d $DURATION"
  "fan-in qos0 @ $FLEET_RATE/s, $FLEET clients|--scenario fan-in -n $FLEET -q 0 -s 64 -r $FLEET_RATE -d $DURATION"
  "fan-out qos0 @ 100k/s, 100 subscribers|--scenario fan-out -n 100 -q 0 -s 64 -r 1000 -d $DURATION"
  "rumqttc fan-in qos0, 10 -> 1|--client rumqttc --scenario fan-in -n 10 -q 0 -s 64 -d $DURATION"
  "rumqttc fan-out qos1, 1 -> 100|--client rumqttc --scenario fan-out -n 100 -q 1 -s 64 -d $DURATION"
  "$CONNS idle connections|--scenario idle -n $CONNS --ramp 0"
  "$CONNS qos1 subscriptions|--scenario subscriptions -n $CONNS -q 1"
  "batched fan-in qos0|--writes batched --scenario fan-in -n 10 -q 0 -s 64 -d $DURATION"
  "batched fan-in qos1|--writes batched --scenario fan-in -n 10 -q 1 -s 64 -d $DURATION"
  "batched fan-out qos0|--writes batched --scenario fan-out -n 100 -q 0 -s 64 -d $DURATION"
  "batched fan-out qos1|--writes batched --scenario fan-out -n 100 -q 1 -s 64 -d $DURATION"
)
latency=(
  "100 pairs qos1 10k/s|--scenario pairs -n 100 -q 1 -s 64 -r 10000 -d $DURATION"
  "1 pair qos1 1k/s|--scenario pairs -n 1 -q 1 -s 64 -r 1000 -d $DURATION"
)

brokers=(strata mosquitto rumqttd)
if [[ -n $AB ]]; then
  brokers=(strata strata-base)
fi
if [[ $DURABLE == 1 ]]; then
  brokers=(strata-fsync-always strata-fsync-never mosquitto-persist)
  [[ -n $AB ]] && brokers=(strata-fsync-always strata-base-fsync-always)
  scenarios=(
    "durable fan-in qos1, 10 publishers|--writes batched --scenario fan-in -n 10 -q 1 -s 64 -d $DURATION --persistent --inflight 1024"
    "durable fan-in qos1, 50 publishers|--writes batched --scenario fan-in -n 50 -q 1 -s 64 -d $DURATION --persistent --inflight 1024"
    "durable fan-in qos1 @ 20k/s, $PACED clients|--scenario fan-in -n $PACED -q 1 -s 64 -r 20000 -d $DURATION --persistent"
  )
  latency=()
fi
if [[ $TLS == 1 ]]; then
  brokers=(strata-tls mosquitto-tls)
  [[ -n $AB ]] && brokers=(strata-tls strata-base-tls)
  tls="-p $TLS_PORT --transport tls --cafile $conf_dir/ca/ca.pem --tls-name localhost"
  scenarios=(
    "tls fan-in qos1 @ 20k/s, 10 clients|$tls --scenario fan-in -n 10 -q 1 -s 64 -r 20000 -d $DURATION"
    "tls fan-in qos0 @ 20k/s, 10 clients|$tls --scenario fan-in -n 10 -q 0 -s 64 -r 20000 -d $DURATION"
    "tls fan-out qos0 @ 100k/s, 100 subscribers|$tls --scenario fan-out -n 100 -q 0 -s 64 -r 1000 -d $DURATION"
    "tls handshakes @ 500/s|$tls --scenario connect -r 500 -d $DURATION"
    "tls $CONNS idle connections|$tls --scenario idle -n $CONNS --ramp 0"
    "tcp fan-in qos1 @ 20k/s, 10 clients|--scenario fan-in -n 10 -q 1 -s 64 -r 20000 -d $DURATION"
    "tcp fan-in qos0 @ 20k/s, 10 clients|--scenario fan-in -n 10 -q 0 -s 64 -r 20000 -d $DURATION"
    "tcp fan-out qos0 @ 100k/s, 100 subscribers|--scenario fan-out -n 100 -q 0 -s 64 -r 1000 -d $DURATION"
    "ws fan-in qos0 @ 20k/s, 10 clients|-p $WS_PORT --transport ws --scenario fan-in -n 10 -q 0 -s 64 -r 20000 -d $DURATION"
    "ws fan-in qos0, 10 -> 1|-p $WS_PORT --transport ws --scenario fan-in -n 10 -q 0 -s 64 -d $DURATION"
    "tcp fan-in qos0, 10 -> 1|--scenario fan-in -n 10 -q 0 -s 64 -d $DURATION"
  )
  latency=()
fi

if [[ $ACL == 1 ]]; then
  brokers=(strata strata-acl)
  scenarios=(
    "fan-in qos1 @ 20k/s, 10 clients|--scenario fan-in -n 10 -q 1 -s 64 -r 20000 -d $DURATION"
    "fan-in qos1 @ 20k/s, $PACED clients|--scenario fan-in -n $PACED -q 1 -s 64 -r 20000 -d $DURATION"
    "fan-out qos0 @ 100k/s, 100 subscribers|--scenario fan-out -n 100 -q 0 -s 64 -r 1000 -d $DURATION"
  )
  latency=()
fi

if [[ -n $ONLY ]]; then
  keep() { local s; for s in "$@"; do [[ ${s%%|*} =~ $ONLY ]] && printf '%s\n' "$s"; done; return 0; }
  mapfile -t scenarios < <(keep "${scenarios[@]}")
  mapfile -t latency < <(keep "${latency[@]+"${latency[@]}"}")
fi

# One scenario against one broker: start it, run, record, stop it.
run_one() {
  local broker=$1 name=${2%%|*} args=${2#*|}
  # Debian's Mosquitto has no WebSocket listener.
  [[ $broker == mosquitto* && $name == ws* ]] && return 0
  start_broker "$broker"
  echo "== $broker: $name" >&2
  local port=(-p "$PORT")
  [[ " $args " == *" -p "* ]] && port=()
  # shellcheck disable=SC2086
  if line=$("${BENCH[@]}" "${port[@]}" --pid "$BROKER_PID" $args 2>/dev/null); then
    echo "{\"broker\":\"$broker\",\"name\":\"$name\",\"result\":$line}" >> "$out"
  else
    echo "{\"broker\":\"$broker\",\"name\":\"$name\",\"result\":null}" >> "$out"
  fi
  stop_broker
}

for _ in $(seq 1 "$ROUNDS"); do
  for broker in "${brokers[@]}"; do
    for s in "${scenarios[@]}"; do
      run_one "$broker" "$s"
    done
  done
done
if [[ ${#latency[@]} -gt 0 ]]; then
  for _ in $(seq 1 "$(( ROUNDS > LATENCY_ROUNDS ? ROUNDS : LATENCY_ROUNDS ))"); do
    for broker in "${brokers[@]}"; do
      for s in "${latency[@]}"; do
        run_one "$broker" "$s"
      done
    done
  done
fi

python3 bench/table.py "$out" "${brokers[@]}"
echo "raw results: $out" >&2
