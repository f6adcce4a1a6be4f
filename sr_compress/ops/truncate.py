"""Operation ``truncate``: keep the first K body blocks of a checkpoint (ASRN elastic depth)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import save_checkpoint
from ..compress.truncate import TruncateReport, truncate
from ..config import defaults_of
from ..fileio import check_output
from .common import load_model

DEFAULTS = defaults_of(truncate)


@dataclass
class TruncateOutcome:
    path: Path
    report: TruncateReport  # its ``warnings`` (a depth never trained) are shown by the CLI and the recipe run


def truncate_checkpoint(path: str | Path, out: str | Path, *, blocks: int, seed: int = DEFAULTS["seed"],
                        force: bool = False) -> TruncateOutcome:
    """Cut the checkpoint ``path`` to its head, first ``blocks`` body blocks and tail; save it to ``out``."""
    check_output(out, inputs=(path,), force=force)
    new, report = truncate(load_model(path).model, blocks=blocks, seed=seed)
    return TruncateOutcome(save_checkpoint(new, out, force=force, inputs=(path,)), report)
