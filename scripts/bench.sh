#!/usr/bin/env bash
# Runs the load scenarios of docs/BENCHMARKS.md against a fresh release server each time and
# prints the results (also saved to target/bench-results.txt), then measures the sign-in page's
# first contentful paint and the island's work per incoming message in headless Chromium.
#   usage: scripts/bench.sh [quick]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
loadgen=${LOADGEN:-$target_dir/loadgen/release/loadgen}
server=target/messenger
# Sockets on both sides: this machine allows 20,000 open files per process.
ulimit -n 20000
mkdir -p target
out=target/bench-results.txt
: > "$out"
run() {
  echo "==> loadgen $*" | tee -a "$out"
  "$loadgen" --server-bin "$server" "$@" 2>&1 | tee -a "$out"
}
if [ "${1:-}" = quick ]; then
  run fanout --members 100 --senders 5 --rate 200 --secs 5
  run durable --senders 8 --secs 5
  exit 0
fi
run idle --conns 19000
run fanout --members 100 --senders 10 --rate 500 --secs 10
run fanout --members 1000 --senders 10 --rate 50 --secs 10
run --aligned fanout --members 1000 --senders 10 --rate 50 --secs 10
run fanout --members 1000 --senders 10 --rate 50 --secs 5 --ramp
run rooms --rooms 1000 --members 5 --rate 10000 --secs 10
run rooms --rooms 1000 --members 5 --rate 2000 --secs 5 --ramp
run durable --senders 16 --inflight 32 --secs 10
run uploads --users 20 --mb 25
run flood --senders 16 --rate 10 --sockets 20 --secs 10
# A day of Messenger: 10,000 users with contacts, presence, sign-outs and resync (the
# largest number served with p99 < 100 ms is found with `day --ramp`; docs/BENCHMARKS.md).
run day --users 10000 --secs 60
echo "==> first contentful paint of the sign-in page (end2end/bench/fcp.mjs)" | tee -a "$out"
node end2end/bench/fcp.mjs 20 2>&1 | tee -a "$out"
echo "==> the island's work per incoming message (end2end/bench/island.mjs)" | tee -a "$out"
node end2end/bench/island.mjs 200 300 2>&1 | tee -a "$out"
echo "results in $out"
