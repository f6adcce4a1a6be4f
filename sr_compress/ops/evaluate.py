"""Operation ``eval``: the scores of a model on images (with a bicubic row and crops), on the AIL release's
npz protocol, or at every depth of an elastic model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import LoadedModel
from ..compress.truncate import ElasticTable, evaluate_depths
from ..errors import ConfigError
from ..evaluate import (
    EvalReport,
    comparison_rows,
    eval_pairs_for,
    evaluate_bicubic,
    evaluate_model,
    load_npz_y,
    npz_y_psnr,
)
from ..fileio import check_output
from ..models import SRModel
from ..visual import save_comparison
from .common import load_model

NPZ_PROTOCOL = "npz bicubic Y, unrounded float, scale px shaved"


def evaluate_images(model: SRModel, *, data: str | Path | None = None, degradation: str = "bi",
                    with_bicubic: bool = True, label: str | None = None, crops: str | Path | None = None,
                    force: bool = False) -> list[EvalReport]:
    """Scores of ``model`` (and bicubic) on the validation photos or a folder (HR-only or HR/LR pairs).

    ``crops``: also write a PNG of the same detailed window per image (bicubic | model | HR), 2× zoomed.
    """
    if crops is not None:
        check_output(crops, force=force)
    pairs = eval_pairs_for(data, model.scale, degradation)
    keep = crops is not None
    reports = [evaluate_model(model, pairs, method=label, keep_outputs=keep)]
    if with_bicubic:
        reports.append(evaluate_bicubic(pairs, model.scale, keep_outputs=keep))
    if crops is not None:
        save_comparison(crops, comparison_rows(reports, pairs), force=force)
    return reports


@dataclass
class NpzScores:
    """Y-PSNR per image and mean under the AIL release's protocol (MATLAB bicubic Y inputs from the npz)."""

    data: str
    scale: int
    images: dict[str, float]
    protocol: str = NPZ_PROTOCOL

    @property
    def mean_psnr_y(self) -> float:
        return sum(self.images.values()) / len(self.images)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "scale": self.scale, "protocol": self.protocol, "images": dict(self.images),
                "mean_psnr_y": self.mean_psnr_y}


def evaluate_npz(model: SRModel, data: str | Path) -> NpzScores:
    """The AIL release's protocol: unrounded float Y-PSNR, scale px shaved (Y-channel bicubic-input models)."""
    if model.channels != 1 or not model.pre_upsample:
        raise ConfigError(f"an .npz of bicubic Y inputs is for Y-channel bicubic-input models (VDSR), not "
                          f"{model.arch} with {model.channels} channels")
    images = load_npz_y(data)
    return NpzScores(str(data), model.scale,
                     {name: npz_y_psnr(model, [(name, lr, gt)], model.scale) for name, lr, gt in images})


@dataclass
class EvalOutcome:
    """``mode``: "images" (``reports``: the model's, then bicubic's), "npz" (``npz``) or "depths" (``depths``)."""

    mode: str
    loaded: LoadedModel
    reports: list[EvalReport] = field(default_factory=list)
    npz: NpzScores | None = None
    depths: ElasticTable | None = None


def evaluate(model: str | Path, *, data: str = "default", degradation: str = "bi", bicubic: bool = True,
             crops: str | Path | None = None, all_depths: bool = False, overrides: dict[str, Any] | None = None,
             force: bool = False) -> EvalOutcome:
    """Evaluate the checkpoint ``model``: an ``.npz`` ``data`` selects the npz protocol; ``all_depths`` the
    elastic table (every depth N..1); otherwise per-image scores (``crops``: also the comparison PNG)."""
    loaded = load_model(model, overrides=overrides)
    m = loaded.model
    if str(data).lower().endswith(".npz"):
        return EvalOutcome("npz", loaded, npz=evaluate_npz(m, data))
    if all_depths:
        return EvalOutcome("depths", loaded, depths=evaluate_depths(m, eval_pairs_for(data, m.scale, degradation)))
    reports = evaluate_images(m, data=data, degradation=degradation, with_bicubic=bicubic, label=Path(model).name,
                              crops=crops, force=force)
    return EvalOutcome("images", loaded, reports)
