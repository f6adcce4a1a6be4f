"""The CLI's contract for bad input, checked one way everywhere."""

from __future__ import annotations


def one_error_line(err: str) -> str:
    """The only non-empty stderr line (no traceback): what a user sees for bad input."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
