"""Checks of strategy hyper-parameters: a bad value is a ConfigError naming the strategy and the option."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ...errors import ConfigError


def number(strategy: str, name: str, value: Any, *, minimum: float | None = None, positive: bool = False) -> float:
    """``value`` as a finite float (≥ ``minimum``; > 0 when ``positive``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value >= minimum
    if ok and positive:
        ok = value > 0
    if not ok:
        bound = " > 0" if positive else (f" >= {minimum:g}" if minimum is not None else "")
        raise ConfigError(f"strategy {strategy}: {name} must be a finite number{bound}, got {value!r}")
    return float(value)


def choice(strategy: str, name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"strategy {strategy}: {name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)
