#!/usr/bin/env bash
# Runs one load-tool scenario against NODES Messenger nodes on PostgreSQL and NATS
# (docs/SCALING.md; docs/BENCHMARKS.md, "Several nodes"): a fresh database on the machine's
# PostgreSQL, the machine's NATS, the nodes on free ports, the load tool's sockets spread
# over them in turn (HTTP to the first), CPU and memory summed over the nodes.
#   usage: scripts/bench-nodes.sh NODES SCENARIO [ARGS...]
#   e.g.   scripts/bench-nodes.sh 3 fanout --members 1000 --senders 10 --rate 50 --secs 10
# Environment: MESSENGER_BIN (default target/messenger), LOADGEN, BENCH_POSTGRES (default
# postgres://postgres@127.0.0.1:5432/postgres), BENCH_NATS (default nats://127.0.0.1:4222;
# `none`: one node on PostgreSQL without NATS, nor the shared rate that comes with it).
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=$1
shift
bin=${MESSENGER_BIN:-target/messenger}
target_dir=${CARGO_TARGET_DIR:-target}
loadgen=${LOADGEN:-$target_dir/loadgen/release/loadgen}
admin=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
nats=${BENCH_NATS:-nats://127.0.0.1:4222}
ulimit -n 20000
work=$(mktemp -d)
db=messenger_bench_$$
url="${admin%/*}/$db"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
"$bin" --database "$url" --key-file "$work/ring" keys init >/dev/null
# The rooms scenario's rooms, as the load tool seeds them for a server of its own.
if [ "$1" = rooms ]; then
  rooms=1000
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = --rooms ] && rooms=${args[$((i + 1))]}
  done
  if [ "$rooms" -gt 1 ]; then
    RUST_LOG=warn "$bin" --database "$url" rooms add --numbered "$rooms" "Load room" >/dev/null
  fi
fi
urls=()
for ((n = 0; n < nodes; n++)); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The same relaxed limits the load tool gives a server of its own: it measures the engine.
  if [ "$nats" = none ]; then unset MESSENGER_NATS; else export MESSENGER_NATS=$nats; fi
  MESSENGER_ADDR=127.0.0.1:$port MESSENGER_DATABASE=$url \
    MESSENGER_NATS_PREFIX=bench$$ MESSENGER_KEY_FILE=$work/ring \
    MESSENGER_ANALYTICS_DATABASE=$work/analytics-$n.db MESSENGER_MEDIA_STORE=$work/media \
    MESSENGER_SEND_RATE=1000000 MESSENGER_FRAME_RATE=1000000 \
    MESSENGER_MAX_SOCKETS_PER_USER=1000000 MESSENGER_MAX_SOCKETS_PER_ADDRESS=1000000 \
    MESSENGER_GUESTS_PER_ADDRESS=1000000000/1s MESSENGER_VERIFICATION=off RUST_LOG=warn \
    "$bin" >/dev/null &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
done
for u in "${urls[@]}"; do
  for _ in $(seq 200); do curl -sf "$u/health" >/dev/null && break; sleep 0.1; done
done
joined_urls=$(IFS=,; echo "${urls[*]}")
joined_pids=$(IFS=,; echo "${pids[*]}")
# CPU seconds of every process named $1 (PostgreSQL's backends, nats-server), for the
# capacity model: what the database and NATS spent on the run.
cpu_of() {
  local total=0 p
  for p in $(pgrep -x "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
pg0=$(cpu_of postgres)
nats0=$(cpu_of nats-server)
echo "==> $nodes node(s): $*"
"$loadgen" --url "$joined_urls" --pid "$joined_pids" "$@"
pg1=$(cpu_of postgres)
nats1=$(cpu_of nats-server)
echo "==> over the run (setup included): PostgreSQL $(echo "scale=2; ($pg1 - $pg0) / 100" | bc) CPU-s, NATS $(echo "scale=2; ($nats1 - $nats0) / 100" | bc) CPU-s"
