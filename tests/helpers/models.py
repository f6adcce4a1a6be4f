"""Tiny models and checkpoints of every registered family (4-16 channels, seeded): the shared builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sr_compress.checkpoint import save_checkpoint
from sr_compress.models import SRModel, build_model, list_models, tiny_hparams

#: every registered family (tests parametrised over it cover a new family automatically)
FAMILIES = list_models()


def tiny_model(arch: str = "edsr", for_scale: int = 2, seed: int = 0, **over: Any) -> SRModel:
    """The family's tiny test variant for ``for_scale`` with seeded initial weights; ``over`` replaces hparams
    (``scale=3`` alone changes only the scale hparam of the ×``for_scale`` variant)."""
    torch.manual_seed(seed)
    return build_model(arch, **{**tiny_hparams(arch, for_scale), **over})


def tiny_checkpoint(path: str | Path, arch: str = "edsr", seed: int = 0, scale: int = 2,
                    extra: dict[str, Any] | None = None, **over: Any) -> Path:
    """:func:`tiny_model` saved (our format) to ``path``; ``extra``: checkpoint extra entries."""
    save_checkpoint(tiny_model(arch, scale, seed, **over), path, extra=extra)
    return Path(path)
