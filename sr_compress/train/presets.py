"""Named bundles of trainer settings (``TrainConfig`` fields) that reproduce a paper's schedule.

``srcompress train/finetune --preset NAME`` and a recipe's ``preset = "NAME"`` start from these; options given
explicitly (and ``--set`` / a stage's ``train`` table) override them.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .strategies.ail import AIL_OFFICIAL

PRESETS: Registry[dict[str, Any]] = Registry("preset")
# the AIL paper's VDSR schedule: round 0 + 10 update rounds, SGD 0.1 reset each round, ×0.1 every 10 epochs
PRESETS.add("ail-official", AIL_OFFICIAL)


def list_presets() -> list[str]:
    return PRESETS.names()


def preset_settings(name: str | None) -> dict[str, Any]:
    """The settings of preset ``name`` (a copy; ``None`` → none)."""
    return {} if name is None else dict(PRESETS.get(name))
