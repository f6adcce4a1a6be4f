"""The ``plainify`` stage as one call: exact plain equivalent or winning-initialised student, saved with its
bridges (what ``srcompress plainify`` and the recipe stage ``plainify`` run)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import SRModel
from .plainify import SCHEMES, plainify_exact
from .winning_init import bridges_extra, winning_init

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str | int | float) -> int:
    """"200MB" → 200·10⁶, "1.5GiB" → 1.5·2³⁰, a bare number is bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmg]i?b|b)?\s*", str(text).lower())
    if not m:
        raise ConfigError(f"memory size must look like 200MB, 1.5GiB or a byte count, got {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2) or ""]
    if value <= 0:
        raise ConfigError(f"memory size must be positive, got {text!r}")
    return int(value)


@dataclass
class PlainifyOutcome:
    path: Path | None
    model: SRModel
    extra: dict[str, Any]
    report: Any  # ExactReport or WinningReport

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, **self.report.to_dict()}


def plainify(teacher: SRModel, *, eps: float | None = None, width: int | None = None,
             memory_budget: int | str | None = None, size: tuple[int, int] = (1920, 1080),
             exact_only: bool = False, scheme: str = "pair", tail: str = "copy", round_to: int = 1,
             shift_c: float | None = None, seed: int = 0, data: Any = None, **options: Any) -> PlainifyOutcome:
    """``exact_only``: the exact plain equivalent under ``scheme`` (no SVD, no bridges). Otherwise the winning
    initialisation with widths from exactly one of ``eps``, ``width`` or ``memory_budget`` (default ε = 0.05)."""
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if exact_only:
        if any(v is not None for v in (eps, width, memory_budget)) or tail != "copy" or round_to != 1:
            raise ConfigError("--exact-only writes the exact equivalent: it takes no --eps/--width/"
                              "--memory-budget/--round-to and keeps the teacher's tail (--tail copy)")
        model, report = plainify_exact(teacher, scheme=scheme, shift_c=shift_c, seed=seed)
        return PlainifyOutcome(None, model, {}, report)
    if eps is None and width is None and memory_budget is None:
        eps = 0.05
    budget = parse_bytes(memory_budget) if memory_budget is not None else None
    student, bridges, report = winning_init(teacher, eps=eps, width=width, memory_budget=budget, size=size,
                                            tail=tail, round_to=round_to, seed=seed, data=data, **options)
    return PlainifyOutcome(None, student, bridges_extra(bridges, student), report)


def plainify_file(source: str | os.PathLike, out: str | os.PathLike, *, force: bool = False,
                  overrides: dict[str, Any] | None = None, **options: Any) -> PlainifyOutcome:
    """Load ``source`` (any supported checkpoint format), :func:`plainify` it, save it (with its bridges)."""
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..fileio import check_output

    check_output(out, force=force, inputs=(source,))  # fail before the (long) work, not after
    loaded = load_checkpoint(source, overrides=overrides)
    outcome = plainify(loaded.model, **options)
    outcome.path = save_checkpoint(outcome.model, out, extra=outcome.extra, force=force, inputs=(source,))
    return outcome
