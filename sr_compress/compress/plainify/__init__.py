"""Plainify: a residual (EDSR-style) teacher → a plain conv/ReLU chain, as one stage with one entry point.

- :func:`plainify` returns one :class:`PlainifyOutcome` whose ``mode`` says which of the two it made:
  ``"exact"`` — the exact plain equivalent (:mod:`.exact`, verified in float64; no bridges), or
  ``"winning"`` — the MemSR winning-initialised thin student (:mod:`.winning_init`: SVD of the teacher's
  features) with its 1×1 bridges, which the distillation strategy ``memsr`` reads back from the checkpoint.
- Which families can be plainified is declared by each family (``SRModel.plainify_refusal``, next to
  ``channel_groups()``); :func:`.exact.teacher_chain` reads the supported ones.
- Loading and saving are the operation's job (:mod:`sr_compress.ops.plainify`), not this package's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError, PlainifyError
from ...models import SRModel
from .exact import SCHEMES, ExactReport, plainify_exact
from .winning_init import (
    DEFAULT_COLUMNS,
    DEFAULT_PATCH,
    DEFAULT_PATCHES,
    SHIFT_COEF,
    TAILS,
    Bridge,
    WinningReport,
    bridges_extra,
    winning_init,
)

__all__ = ["SCHEMES", "TAILS", "PlainifyError", "PlainifyOutcome", "parse_bytes", "plainify"]

#: the width rule when none of eps / width / memory_budget is given
DEFAULT_EPS = 0.05

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
    """The plain model and its report. ``mode``: "exact" (``report`` an :class:`ExactReport`, no bridges) or
    "winning" (a :class:`WinningReport`; ``bridges`` for the ``memsr`` strategy, ``extra`` their checkpoint
    entry). ``path``: where the operation saved it (None until saved)."""

    mode: str
    model: SRModel
    report: ExactReport | WinningReport
    bridges: list[Bridge] = field(default_factory=list)
    path: Path | None = None

    @property
    def extra(self) -> dict[str, Any]:
        """The checkpoint's extra entries (the bridges; nothing for the exact equivalent)."""
        return bridges_extra(self.bridges, self.model) if self.bridges else {}

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, **self.report.to_dict()}


def plainify(teacher: SRModel, *, eps: float | None = None, width: int | None = None,
             memory_budget: int | str | None = None, size: tuple[int, int] = (1920, 1080),
             exact_only: bool = False, scheme: str = "pair", tail: str = "copy", round_to: int = 1,
             shift_c: float | None = None, seed: int = 0, data: Any = None, patches: int = DEFAULT_PATCHES,
             patch_size: int = DEFAULT_PATCH, columns: int = DEFAULT_COLUMNS, shift_coef: float = SHIFT_COEF,
             **options: Any) -> PlainifyOutcome:
    """``exact_only``: the exact plain equivalent under ``scheme`` (no SVD, no bridges). Otherwise the winning
    initialisation with widths from exactly one of ``eps``, ``width`` or ``memory_budget`` (default ε =
    :data:`DEFAULT_EPS`); ``data``/``patches``/``patch_size``/``columns``/``shift_coef`` as
    :func:`.winning_init.winning_init` takes them (these are their one set of defaults)."""
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if exact_only:
        if any(v is not None for v in (eps, width, memory_budget)) or tail != "copy" or round_to != 1:
            raise ConfigError("--exact-only writes the exact equivalent: it takes no --eps/--width/"
                              "--memory-budget/--round-to and keeps the teacher's tail (--tail copy)")
        model, report = plainify_exact(teacher, scheme=scheme, shift_c=shift_c, seed=seed)
        return PlainifyOutcome("exact", model, report)
    if eps is None and width is None and memory_budget is None:
        eps = DEFAULT_EPS
    budget = parse_bytes(memory_budget) if memory_budget is not None else None
    student, bridges, report = winning_init(teacher, eps=eps, width=width, memory_budget=budget, size=size,
                                            tail=tail, round_to=round_to, seed=seed, data=data, patches=patches,
                                            patch_size=patch_size, columns=columns, shift_coef=shift_coef,
                                            **options)
    return PlainifyOutcome("winning", student, report, list(bridges))
