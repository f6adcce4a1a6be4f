"""The fuzz budget itself: a case really runs under a memory limit, and overruns fail the case."""

from __future__ import annotations

import pytest
from _fuzz_budget import STATS, budget


def test_a_case_cannot_allocate_past_the_limit():
    import numpy as np

    with pytest.raises(MemoryError):
        with budget("_selftest", "allocate 64 GiB"):
            np.ones(8 * 2**30)  # 64 GiB: refused by RLIMIT_AS instead of swapping the machine
    STATS.pop("_selftest", None)


def test_an_overrun_fails_the_case(monkeypatch):
    import _fuzz_budget

    monkeypatch.setattr(_fuzz_budget, "MAX_SECONDS", 0.0)
    with pytest.raises(AssertionError, match="took"):
        with budget("_selftest", "too slow"):
            pass
    STATS.pop("_selftest", None)
