"""Operation ``slim``: a checkpoint (any supported format) slimmed by ρ, saved as our checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import LoadedModel, save_checkpoint
from ..compress.slim import SlimReport, slim
from ..config import defaults_of
from ..fileio import check_output
from .common import load_model

#: the stage's defaults (select, init, round_to, seed, size), written once: in :func:`compress.slim.slim`
DEFAULTS = defaults_of(slim)


@dataclass
class SlimOutcome:
    path: Path
    report: SlimReport
    loaded: LoadedModel  # the input (its guesses are worth showing)


def default_output(model: str | Path, rho: float) -> Path:
    """``MODEL_slim<ρ>.pt`` beside MODEL."""
    return Path(model).with_name(f"{Path(model).stem}_slim{rho:g}.pt")


def slim_checkpoint(path: str | Path, *, rho: float, out: str | Path | None = None, select: str = DEFAULTS["select"],
                    init: str = DEFAULTS["init"], round_to: int = DEFAULTS["round_to"], seed: int = DEFAULTS["seed"],
                    size: tuple[int, int] = DEFAULTS["size"], overrides: dict[str, Any] | None = None,
                    force: bool = False) -> SlimOutcome:
    """Slim the checkpoint at ``path`` by ``rho`` and save the student to ``out`` (default
    :func:`default_output`)."""
    out = Path(out) if out is not None else default_output(path, rho)
    check_output(out, inputs=(path,), force=force)
    loaded = load_model(path, overrides=overrides)
    student, report = slim(loaded.model, rho, select=select, init=init, round_to=round_to, seed=seed, size=size)
    written = save_checkpoint(student, out, force=force, inputs=(path,))
    return SlimOutcome(written, report, loaded)
