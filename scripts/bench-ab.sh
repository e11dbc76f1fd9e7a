#!/usr/bin/env bash
# Runs `make bench`'s scenarios against two builds of Messenger in one sitting, REPEATS times
# (default 3), alternating which goes first, with the same load tool, and prints the before /
# after table (scripts/bench-table.py --ab). For a change, build the old commit's release
# first and keep its binary and site, then build the new one:
#   usage: scripts/bench-ab.sh OLD_BIN OLD_SITE NEW_BIN NEW_SITE [REPEATS]
# Every line goes to target/bench-ab-results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n '2,7p' "$0"; exit 2; }
old_bin=$1 old_site=$2 new_bin=$3 new_site=$4 repeats=${5:-3}
target_dir=${CARGO_TARGET_DIR:-target}
loadgen=${LOADGEN:-$target_dir/loadgen/release/loadgen}
ulimit -n 20000
mkdir -p target
out=target/bench-ab-results.txt
: > "$out"
scenarios=(
  "idle --conns 19000"
  "fanout --members 100 --senders 10 --rate 500 --secs 10"
  "fanout --members 1000 --senders 10 --rate 50 --secs 10"
  "--aligned fanout --members 1000 --senders 10 --rate 50 --secs 10"
  "fanout --members 1000 --senders 10 --rate 50 --secs 5 --ramp"
  "rooms --rooms 1000 --members 5 --rate 10000 --secs 10"
  "rooms --rooms 1000 --members 5 --rate 2000 --secs 5 --ramp"
  "durable --senders 16 --inflight 32 --secs 10"
)
run() { # which, scenario...
  local which=$1 bin site
  shift
  if [ "$which" = before ]; then bin=$old_bin site=$old_site; else bin=$new_bin site=$new_site; fi
  echo "==> repeat $r $which: $*" | tee -a "$out"
  if [ "$1" = fcp ]; then
    MESSENGER_BIN=$bin MESSENGER_SITE_ROOT=$site node end2end/bench/fcp.mjs 20 2>&1 | tee -a "$out"
  elif [ "$1" = island ]; then
    MESSENGER_BIN=$bin MESSENGER_SITE_ROOT=$site node end2end/bench/island.mjs 200 300 2>&1 | tee -a "$out"
  else
    # shellcheck disable=SC2068
    MESSENGER_SITE_ROOT=$site "$loadgen" --server-bin "$bin" $@ 2>&1 \
      | grep -vE '^  [0-9]+ (guests|sockets)' | tee -a "$out"
  fi
}
for ((r = 1; r <= repeats; r++)); do
  if ((r % 2)); then order=(before after); else order=(after before); fi
  for sc in "${scenarios[@]}" fcp island; do
    for which in "${order[@]}"; do
      # shellcheck disable=SC2086
      run "$which" $sc
    done
  done
done
echo "results in $out"
python3 scripts/bench-table.py --ab "$out"
