#!/usr/bin/env python3
"""Turns the output of scripts/bench-peers.sh (target/bench-peers-results.txt) into the
side-by-side table of docs/BENCHMARKS.md: median (min-max) over the repeats, and the ratio
of Messenger's median to Bun's. With --ab, the output of scripts/bench-ab.sh instead: every
scenario of `make bench`, before and after a change, and after / before.

    usage: scripts/bench-table.py [target/bench-peers-results.txt]
           scripts/bench-table.py --ab [target/bench-ab-results.txt]
"""
import re
import statistics
import sys
from collections import defaultdict

SERVERS = ["messenger", "ws", "socketio", "bun"]
HEADERS = ["Messenger", "ws 8", "socket.io 4", "Bun 1.4"]

# (row label, scenario prefix, metric, unit)
ROWS = [
    ("RSS per idle connection (10,000 sockets)", "idle", "kib", "KiB"),
    ("fan-out 1000 at 50 msgs/s: p50", "fanout --members 1000 --senders 10 --rate 50 --secs 10", "p50", "ms"),
    ("same: p99", "fanout --members 1000 --senders 10 --rate 50 --secs 10", "p99", "ms"),
    ("same: deliveries per server CPU-second", "fanout --members 1000 --senders 10 --rate 50 --secs 10", "per_cpu", "k"),
    ("fan-out 1000 at 50 msgs/s, senders aligned: p99", "--aligned fanout", "p99", "ms"),
    ("same: deliveries per server CPU-second", "--aligned fanout", "per_cpu", "k"),
    ("fan-out 1000, ramp ×1.5 from 50 msgs/s: max deliveries/s with p99 < 100 ms", "fanout --members 1000 --senders 10 --rate 50 --secs 5 --ramp", "ramp", "k"),
    ("rooms 1000 × 5 at 10k msgs/s: p50", "rooms --rooms 1000 --members 5 --rate 10000", "p50", "ms"),
    ("same: p99", "rooms --rooms 1000 --members 5 --rate 10000", "p99", "ms"),
    ("same: deliveries per server CPU-second", "rooms --rooms 1000 --members 5 --rate 10000", "per_cpu", "k"),
    ("rooms 1000 × 5, ramp ×1.5 from 2000 msgs/s after a 3 s warm-up: max deliveries/s with p99 < 100 ms", "rooms --rooms 1000 --members 5 --rate 2000 --secs 5 --ramp", "ramp", "k"),
]

# The rows of `make bench`'s scenarios, for --ab.
AB_ROWS = [
    ("RSS per idle connection (19,000 sockets)", "idle", "kib", "KiB"),
    ("fan-out 100 at 500 msgs/s: p99", "fanout --members 100 --senders 10 --rate 500", "p99", "ms"),
    ("same: deliveries per server CPU-second", "fanout --members 100 --senders 10 --rate 500", "per_cpu", "k"),
    ("fan-out 1000 at 50 msgs/s: p50", "fanout --members 1000 --senders 10 --rate 50 --secs 10", "p50", "ms"),
    ("same: p99", "fanout --members 1000 --senders 10 --rate 50 --secs 10", "p99", "ms"),
    ("same: deliveries per server CPU-second", "fanout --members 1000 --senders 10 --rate 50 --secs 10", "per_cpu", "k"),
    ("fan-out 1000 at 50 msgs/s, senders aligned: p99", "--aligned fanout", "p99", "ms"),
    ("same: deliveries per server CPU-second", "--aligned fanout", "per_cpu", "k"),
    ("fan-out 1000, ramp: max deliveries/s with p99 < 100 ms", "fanout --members 1000 --senders 10 --rate 50 --secs 5 --ramp", "ramp", "k"),
    ("rooms 1000 × 5 at 10k msgs/s: p50", "rooms --rooms 1000 --members 5 --rate 10000", "p50", "ms"),
    ("same: p99", "rooms --rooms 1000 --members 5 --rate 10000", "p99", "ms"),
    ("same: deliveries per server CPU-second", "rooms --rooms 1000 --members 5 --rate 10000", "per_cpu", "k"),
    ("rooms 1000 × 5, ramp: max deliveries/s with p99 < 100 ms", "rooms --rooms 1000 --members 5 --rate 2000 --secs 5 --ramp", "ramp", "k"),
    ("durable writes, 16 senders: commits/s", "durable", "commits", "k"),
    ("same: server CPU per message", "durable", "us_per_msg", "us"),
    ("sign-in page first contentful paint, median of 20", "fcp", "fcp", "ms"),
    ("island: script time per incoming message (200 contacts)", "island", "island_script", "ms"),
    ("same: main-thread task time per message", "island", "island_task", "ms"),
]

TALLY = re.compile(
    r"latency p50 ([\d.]+) ms p90 [\d.]+ ms p99 ([\d.]+) ms .*?lost (\d+), duplicated (\d+), "
    r"out of order (\d+), server CPU \S+ s \((\d+) deliveries per CPU-second\)"
)


def parse(path):
    """{(server, scenario): [ {metric: value} per repeat ]}, and the count of bad runs."""
    runs = defaultdict(list)
    bad = []
    current = None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        head = re.match(r"==> repeat \d+ (\S+): (.*)$", line)
        if head:
            current = {"server": head.group(1), "scenario": head.group(2).strip()}
            runs[(current["server"], current["scenario"])].append(current)
            continue
        if current is None:
            continue
        m = re.search(r"= ([\d.]+) KiB per connection", line)
        if m:
            current["kib"] = float(m.group(1))
        m = re.search(r"ramp result: highest rate with p99 < 100 ms: \d+ messages/s = (\d+) deliveries/s", line)
        if m:
            current["ramp"] = float(m.group(1))
        m = re.search(r"ramp result: even (\d+)/s was over the limit", line)
        if m:
            current["ramp_below"] = True
        m = re.search(r"= (\d+) commits/s.*\(([\d.]+) us per message\)", line)
        if m:
            current["commits"] = float(m.group(1))
            current["us_per_msg"] = float(m.group(2))
        m = re.search(r"^island: .* script ([\d.]+) ms, task ([\d.]+) ms per message", line)
        if m:
            current["island_script"] = float(m.group(1))
            current["island_task"] = float(m.group(2))
        m = re.search(r"^fcp: .* median ([\d.]+) ms", line)
        if m:
            current["fcp"] = float(m.group(1))
        m = TALLY.search(line)
        if m and "ramp" not in current["scenario"]:
            current["p50"] = float(m.group(1))
            current["p99"] = float(m.group(2))
            current["per_cpu"] = float(m.group(6))
        if m and sum(int(m.group(i)) for i in (3, 4, 5)) > 0:
            bad.append((current["server"], current["scenario"], line))
    return runs, bad


def fmt(value, unit, bare=False):
    if unit == "ms":
        return f"{value:.1f}" + ("" if bare else " ms")
    if unit == "us":
        return f"{value:.1f}" + ("" if bare else " µs")
    if unit == "KiB":
        return f"{value:.2f}" + ("" if bare else " KiB")
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.1f}k"


def cell(samples, metric, unit):
    values = [s[metric] for s in samples if metric in s]
    below = sum(1 for s in samples if s.get("ramp_below"))
    if not values and not below:
        return "n/a", None
    if metric == "ramp":
        # A ramp that failed its first step counts as below the start (shown as "< start").
        ordered = sorted(values)
        if below:
            ordered = [0.0] * below + ordered
        med = statistics.median_low(ordered)
        def text(v):
            return "below start" if v == 0 else fmt(v, unit)

        return f"{text(med)} ({text(ordered[0])} to {text(ordered[-1])})", med
    med = statistics.median(values)
    low, high = fmt(min(values), unit, True), fmt(max(values), unit, True)
    return f"{fmt(med, unit)} ({low}-{high})", med


def ab_table(path):
    runs, bad = parse(path)
    print("| Scenario | Before | After | After / before |")
    print("|---|---|---|---|")
    for label, prefix, metric, unit in AB_ROWS:
        cells, meds = [], {}
        for server in ["before", "after"]:
            samples = [s for (srv, sc), rs in runs.items() if srv == server and sc.startswith(prefix) for s in rs]
            text, med = cell(samples, metric, unit)
            cells.append(text)
            meds[server] = med
        b, a = meds["before"], meds["after"]
        ratio = f"{a / b:.2f}" if a and b else "n/a"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    repeats = max((len(rs) for rs in runs.values()), default=0)
    print(f"\n{repeats} repeats; runs with a lost, duplicated or reordered message: {len(bad)}")
    for server, scenario, line in bad:
        print(f"  {server} {scenario}: {line}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--ab":
        return ab_table(sys.argv[2] if len(sys.argv) > 2 else "target/bench-ab-results.txt")
    path = sys.argv[1] if len(sys.argv) > 1 else "target/bench-peers-results.txt"
    runs, bad = parse(path)
    print("| Scenario | " + " | ".join(HEADERS) + " | Messenger vs Bun |")
    print("|---|" + "---|" * (len(HEADERS) + 1))
    for label, prefix, metric, unit in ROWS:
        cells, meds = [], {}
        for server in SERVERS:
            samples = [s for (srv, sc), rs in runs.items() if srv == server and sc.startswith(prefix) for s in rs]
            text, med = cell(samples, metric, unit)
            cells.append(text)
            meds[server] = med
        m, b = meds["messenger"], meds["bun"]
        ratio = f"{m / b:.2f}×" if m and b else "n/a"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    repeats = max((len(rs) for rs in runs.values()), default=0)
    print(f"\n{repeats} repeats; runs with a lost, duplicated or reordered message: {len(bad)}")
    for server, scenario, line in bad:
        print(f"  {server} {scenario}: {line}")


if __name__ == "__main__":
    main()
