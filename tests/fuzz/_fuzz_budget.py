"""The fuzz suite's shared budget: every generated case runs under a memory limit (RLIMIT_AS) with its wall
time and peak-RSS growth (VmHWM, reset per case) recorded; the totals are printed at the end of the run (and
written as JSON to ``$SRCOMPRESS_FUZZ_SUMMARY`` when set): the numbers docs/troubleshooting.md quotes.

Reproducible: every test uses :data:`FUZZ` (``derandomize=True``, no example database), so CI generates the
same cases on every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from hypothesis import HealthCheck, settings

#: Per case: at most this long (s), this much peak-RSS growth (MiB), and this much address space on top of
#: what the process had when the case started (GiB; a terabyte allocation fails instead of swapping).
MAX_SECONDS = 10.0
MAX_RSS_GROWTH_MB = 512.0
ADDRESS_SPACE_HEADROOM_GB = 4.0


def fuzz_settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much],
                    print_blob=True)


@dataclass
class Stats:
    cases: int = 0
    worst_s: float = 0.0
    worst_case_s: str = ""
    worst_rss_mb: float = 0.0
    worst_case_rss: str = ""
    total_s: float = 0.0


STATS: dict[str, Stats] = {}


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0  # pragma: no cover - not Linux


def _vm_size() -> int:
    return _status_kb("VmSize") * 1024


def _reset_peak() -> float:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; return the RSS in MiB."""
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    return _status_kb("VmRSS") / 1024


def _peak_mb() -> float:
    return _status_kb("VmHWM") / 1024


@contextlib.contextmanager
def budget(category: str, label: str) -> Iterator[None]:
    """Run one generated case under RLIMIT_AS (current size + headroom); record its time and RSS growth and
    fail it if it used more than :data:`MAX_SECONDS` or :data:`MAX_RSS_GROWTH_MB`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + int(ADDRESS_SPACE_HEADROOM_GB * 2**30)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    rss0, t0 = _reset_peak(), time.perf_counter()
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        dt, grew = time.perf_counter() - t0, _peak_mb() - rss0
        s = STATS.setdefault(category, Stats())
        s.cases += 1
        s.total_s += dt
        if dt > s.worst_s:
            s.worst_s, s.worst_case_s = dt, label[:160]
        if grew > s.worst_rss_mb:
            s.worst_rss_mb, s.worst_case_rss = grew, label[:160]
    assert dt < MAX_SECONDS, f"{label}: took {dt:.1f} s"
    assert grew < MAX_RSS_GROWTH_MB, f"{label}: peak RSS grew by {grew:.0f} MiB"


def print_summary(terminalreporter) -> None:
    """The fuzz numbers at the end of a pytest run (called from tests/conftest.py's terminal-summary hook)."""
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
