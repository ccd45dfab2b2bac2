#!/usr/bin/env python3
"""tests/bench/peers_report.py: medians, spreads, ratios and RSS per idle connection."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "peers_report.py")


def cell(server, transport, scenario, rps, p50=100.0, p99=200.0, errors=0, **extra):
    record = {"server": server, "transport": transport, "scenario": scenario,
              "lg": {"rps": rps, "lat_us": {"p50": p50, "p99": p99}, "errors": errors, "conn_errors": 0}}
    record.update(extra)
    return record


class PeersReport(unittest.TestCase):
    def report(self, runs):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for i, records in enumerate(runs):
                path = os.path.join(d, f"run{i}.jsonl")
                with open(path, "w", encoding="utf-8") as f:
                    for r in records:
                        f.write(json.dumps(r) + "\n")
                paths.append(path)
            out = subprocess.run([sys.executable, REPORT, *paths], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            return out.stdout

    def row(self, text, scenario, transport, server):
        rows = [line for line in text.splitlines()
                if line.startswith(f"| {scenario}") and f"| {transport} | {server} |" in line]
        self.assertEqual(len(rows), 1, text)
        return [c.strip() for c in rows[0].strip("|").split("|")]

    def test_medians_and_ratios_of_three_runs(self):
        runs = [[cell("hello", "unix", "S2", h), cell("ref1", "unix", "S2", r)]
                for h, r in ((90, 100), (300, 120), (100, 110))]
        text = self.report(runs)
        ours = self.row(text, "S2", "unix", "hello-server")
        # median 100 of 90/300/100; spread (300 - 90) / 100; ratio 100 / median(100, 120, 110)
        self.assertEqual(ours[3], "100")
        self.assertEqual(ours[4], "210%")
        self.assertEqual(ours[-1], "0.91×")
        self.assertEqual(self.row(text, "S2", "unix", "C epoll reference (1 thread)")[3], "110")
        self.assertIn("Medians of 3 runs", text)

    def test_rss_per_idle_connection(self):
        s4 = cell("hello", "tcp", "S4", 1000, rss_before_kb=1000, rss_after_kb=9000, held=10000)
        text = self.report([[s4]])
        # (9000 - 1000) KiB * 1024 / 10,000 connections
        self.assertEqual(self.row(text, "S4", "tcp", "hello-server")[8], "819")
        self.assertIn("| S4 10,000 idle + S2 load |", text)

    def test_errors_are_summed(self):
        text = self.report([[cell("hello", "unix", "S1", 10, errors=2)], [cell("hello", "unix", "S1", 10, errors=3)]])
        self.assertEqual(self.row(text, "S1", "unix", "hello-server")[7], "5")


if __name__ == "__main__":
    unittest.main()
