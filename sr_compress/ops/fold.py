"""Operation ``fold``: a plain student's channel offsets (plainify's mean shift) folded out of its activations,
saved as a new plain checkpoint — the step before int8 that makes plain students quantise (docs/quantize.md).

``border="bias"`` (default) folds each offset into the next layer's bias: no constant channel, so nothing
dominates the int8 weight scales, but the border ring (about one LR pixel per layer) changes, because the
next layer's zero padding no longer stands for the offset. A short fine-tune repairs the ring (measured in
docs/results.md); then ``quantize`` the fine-tuned student. ``border="exact"`` keeps the float model exact with
a constant channel (what ``quantize`` does by itself; saved here to inspect or fine-tune it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import save_checkpoint
from ..compress.base import record_stage
from ..compress.equalize import BORDERS, DEFAULT_MARGIN, EqualizeReport, equalize_plain
from ..deploy.quantize import DEFAULT_PATCH, calibration_patches, model_info
from ..errors import ConfigError
from ..fileio import check_output
from ..validate import finite_float
from .common import data_inputs, load_model

#: the stage's defaults, written once (the CLI and the recipe stage read them)
DEFAULTS: dict[str, Any] = {"border": "bias", "margin": DEFAULT_MARGIN, "patches": 16,
                            "patch_size": DEFAULT_PATCH, "calib": "default"}


@dataclass
class FoldOutcome:
    path: Path
    report: EqualizeReport
    #: largest |folded − original| output difference over the calibration patches, whole patch (border
    #: included) and beyond ``border_px`` LR pixels of every edge (model output units)
    max_diff: float
    max_diff_interior: float
    border_px: int


def fold_file(model: str | Path, out: str | Path, *, border: str = DEFAULTS["border"],
              margin: float = DEFAULTS["margin"], calib: str | Path | None = DEFAULTS["calib"],
              patches: int = DEFAULTS["patches"], patch_size: int = DEFAULTS["patch_size"], seed: int = 0,
              force: bool = False) -> FoldOutcome:
    """Fold the offsets of the plain checkpoint ``model`` (statistics from ``patches`` LR patches of ``calib``:
    a folder, or "default" = the bundled training photos) and save the result to ``out``."""
    if border not in BORDERS:
        raise ConfigError(f"unknown border {border!r}; choose one of {', '.join(BORDERS)}")
    margin = finite_float(margin, "margin")
    if not 0 <= margin < 1 or patches < 1 or patch_size < 8:
        raise ConfigError("need 0 ≤ margin < 1, patches ≥ 1 and patch_size ≥ 8")
    check_output(out, force=force, inputs=(model, *data_inputs(calib)))
    source = load_model(model).model.eval()
    if source.arch != "plain":
        raise ConfigError(f"fold rewrites plain students (plainify's output); {model} is {source.arch}")
    lr = torch.from_numpy(calibration_patches(calib, model_info(source), patches, patch_size, seed))
    folded, report = equalize_plain(source, lr, margin=margin, border=border)
    record_stage(folded, source, "fold", border=border, margin=margin, calib=str(calib), patches=patches,
                 patch_size=patch_size, seed=seed)
    ring = len(source.hparams["layers"])  # each 3×3 layer reaches one LR pixel further in from the edge
    with torch.no_grad():
        diff = (folded(lr) - source(lr)).abs().amax((0, 1))
    s = source.scale
    inner = diff[ring * s:-ring * s, ring * s:-ring * s] if diff.shape[0] > 2 * ring * s else diff[:0]
    path = save_checkpoint(folded, out, force=force, inputs=(model,))
    return FoldOutcome(path, report, float(diff.max()), float(inner.max()) if inner.numel() else float("nan"),
                       ring)
