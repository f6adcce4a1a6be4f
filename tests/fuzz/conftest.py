"""Prints the fuzz suite's numbers (cases, worst time and memory per category) at the end of the run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from _fuzz_budget import STATS


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook signature
    if not STATS:
        return
    tr = terminalreporter
    tr.section("srcompress fuzz summary")
    total = sum(s.cases for s in STATS.values())
    for name, s in sorted(STATS.items()):
        tr.write_line(f"{name:12s} {s.cases:5d} cases  {s.total_s:6.1f} s  worst {s.worst_s:5.2f} s "
                      f"({s.worst_case_s[:60]})  worst peak-RSS growth {s.worst_rss_mb:6.1f} MiB "
                      f"({s.worst_case_rss[:60]})")
    tr.write_line(f"{'total':12s} {total:5d} cases  {sum(s.total_s for s in STATS.values()):6.1f} s")
    out = os.environ.get("SRCOMPRESS_FUZZ_SUMMARY")
    if out:
        with open(out, "w") as f:
            json.dump({k: asdict(v) for k, v in STATS.items()}, f, indent=2)
