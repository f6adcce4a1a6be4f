"""Named bundles of trainer settings (``TrainConfig`` fields) that reproduce a paper's schedule.

``srcompress train/finetune --preset NAME`` and a recipe's ``preset = "NAME"`` start from these; options given
explicitly (and ``--set`` / a stage's ``train`` table) override them.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .strategies.ail import AIL_OFFICIAL

PRESETS: dict[str, dict[str, Any]] = {
    # the AIL paper's VDSR schedule: round 0 + 10 update rounds, SGD 0.1 reset each round, ×0.1 every 10 epochs
    "ail-official": AIL_OFFICIAL,
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def preset_settings(name: str | None) -> dict[str, Any]:
    """The settings of preset ``name`` (a copy; ``None`` → none)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    return dict(PRESETS[name])
