#!/usr/bin/env python3
"""Medians of several runs of the peer benchmark, as one Markdown table with ratios.

Usage: peers_report.py RESULTS.jsonl...   (one file per run; each line one cell of the matrix)

Each cell (server, transport, scenario) gets the median of its runs' requests per second and
latencies, the spread of the runs ((max - min) / median), and the ratio of hello's median to
each peer's. S4 also gets the server's RSS per idle connection: the growth of its resident set
while the load generator holds its idle connections, divided by their number.
"""
import json
import statistics
import sys
from collections import defaultdict

SCENARIOS = {
    "S1": "S1 connect per request, c=8",
    "S2": "S2 lockstep, c=50",
    "S3": "S3 pipelined x16, c=50",
    "S4": "S4 {held} idle + S2 load",
}
NAMES = {
    "hello": "hello-server",
    "ref1": "C epoll reference (1 thread)",
    "asio": "plain Asio coroutine server",
    "redis": "redis 7 (PING)",
    "pyaio": "Python asyncio",
}


def load(paths):
    """cell -> list of run records"""
    cells = defaultdict(list)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if record.get("scenario") not in SCENARIOS or "lg" not in record:
                    continue
                cells[(record["server"], record["transport"], record["scenario"])].append(record)
    return cells


def rss_per_idle(record):
    held = record.get("held") or 0
    if not held or "rss_after_kb" not in record:
        return None
    return (record["rss_after_kb"] - record["rss_before_kb"]) * 1024 / held


def summarise(records):
    rps = [r["lg"].get("rps", 0) for r in records]
    errors = sum(r["lg"].get("errors", 0) + r["lg"].get("conn_errors", 0) for r in records)
    med = statistics.median(rps)
    rss = [x for x in (rss_per_idle(r) for r in records) if x is not None]
    return {
        "rps": med,
        "spread": (max(rps) - min(rps)) / med if med else 0,
        "p50": statistics.median(r["lg"]["lat_us"]["p50"] for r in records if "lat_us" in r["lg"]),
        "p99": statistics.median(r["lg"]["lat_us"]["p99"] for r in records if "lat_us" in r["lg"]),
        "errors": errors,
        "rss": statistics.median(rss) if rss else None,
        "runs": len(records),
        "held": max((r.get("held") or 0) for r in records),
    }


def main(paths):
    cells = {key: summarise(records) for key, records in load(paths).items()}
    servers = [s for s in NAMES if any(key[0] == s for key in cells)]
    peers = [s for s in servers if s != "hello"]
    transports = [t for t in ("unix", "tcp") if any(key[1] == t for key in cells)]
    print(f"Medians of {len(paths)} runs. ratio = hello-server's req/s / the peer's, same run set.\n")
    header = "| scenario | transport | server | req/s | spread | p50 µs | p99 µs | errors | RSS B/idle conn |"
    header += "".join(f" hello ÷ {p} |" for p in peers)
    print(header)
    print("|---|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(peers))
    for scenario, title in SCENARIOS.items():
        held = max((cell["held"] for key, cell in cells.items() if key[2] == scenario), default=0)
        title = title.format(held=f"{held:,}")
        for transport in transports:
            for server in servers:
                cell = cells.get((server, transport, scenario))
                if cell is None:
                    continue
                rss = f"{cell['rss']:,.0f}" if cell["rss"] is not None else ""
                row = (f"| {title} | {transport} | {NAMES[server]} | {cell['rps']:,.0f} | {cell['spread']:.0%} | "
                       f"{cell['p50']:.1f} | {cell['p99']:.1f} | {cell['errors']} | {rss} |")
                for peer in peers:
                    other = cells.get((peer, transport, scenario))
                    ours = cells.get(("hello", transport, scenario))
                    if server == "hello" and other and ours and other["rps"]:
                        row += f" {ours['rps'] / other['rps']:.2f}× |"
                    else:
                        row += " |"
                print(row)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: peers_report.py RESULTS.jsonl...")
    main(sys.argv[1:])
