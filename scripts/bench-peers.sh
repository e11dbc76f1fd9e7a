#!/usr/bin/env bash
# Runs the same scenarios against Messenger and the peer servers of benches/peers (Node +
# ws 8, Node + socket.io 4, Bun pub/sub), REPEATS times (default 3), rotating the order each
# time, saves every line to target/bench-peers-results.txt and prints the side-by-side table
# (median and range over the repeats; scripts/bench-table.py).
#   usage: scripts/bench-peers.sh [REPEATS [SERVER...]]   (servers: messenger ws socketio bun)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
# Which servers (default: all four); MESSENGER_BIN picks the Messenger binary to run.
if [ $# -gt 1 ]; then servers=("${@:2}"); else servers=(messenger ws socketio bun); fi
messenger_bin=${MESSENGER_BIN:-target/messenger}
target_dir=${CARGO_TARGET_DIR:-target}
loadgen=${LOADGEN:-$target_dir/loadgen/release/loadgen}
ulimit -n 20000
mkdir -p target
out=target/bench-peers-results.txt
: > "$out"
scenarios=(
  "idle --conns 10000"
  "fanout --members 1000 --senders 10 --rate 50 --secs 10"
  "--aligned fanout --members 1000 --senders 10 --rate 50 --secs 10"
  "fanout --members 1000 --senders 10 --rate 50 --secs 5 --ramp"
  "rooms --rooms 1000 --members 5 --rate 10000 --secs 10"
  "rooms --rooms 1000 --members 5 --rate 2000 --secs 5 --ramp"
)
for ((r = 0; r < repeats; r++)); do
  for ((i = 0; i < ${#servers[@]}; i++)); do
    s=${servers[$(((i + r) % ${#servers[@]}))]}
    for sc in "${scenarios[@]}"; do
      if [ "$s" = messenger ]; then args=(--server-bin "$messenger_bin"); else args=(--peer "$s"); fi
      echo "==> repeat $((r + 1)) $s: $sc" | tee -a "$out"
      # shellcheck disable=SC2086
      "$loadgen" "${args[@]}" $sc 2>&1 | grep -vE '^  [0-9]+ (guests|sockets)' | tee -a "$out"
    done
  done
done
echo "results in $out"
echo "==> the table of docs/BENCHMARKS.md (scripts/bench-table.py)"
python3 scripts/bench-table.py "$out"
