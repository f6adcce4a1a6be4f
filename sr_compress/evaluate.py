"""Evaluation: per-image and mean PSNR/SSIM (Y and RGB) of a model, with a bicubic reference row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.datasets import eval_pairs
from .errors import DataError
from .fileio import require_file
from .imresize import imresize
from .infer import super_resolve
from .metrics import psnr, ssim
from .models import SRModel


@dataclass
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float


@dataclass
class EvalReport:
    """Scores of one method (a model, or bicubic) on a list of images. PSNR in dB, Y = BT.601 luma."""

    method: str
    scale: int
    images: list[ImageScore] = field(default_factory=list)
    #: the super-resolved images by name ((3,H,W) RGB in [0,1]) when asked for (``keep_outputs``); not serialised
    outputs: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def mean(self) -> ImageScore:
        n = max(len(self.images), 1)
        return ImageScore("mean", *(sum(getattr(i, k) for i in self.images) / n
                                    for k in ("psnr_y", "ssim_y", "psnr_rgb")))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        return cls(d["method"], int(d["scale"]), [ImageScore(**i) for i in d["images"]])

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "scale": self.scale, "mean": asdict(self.mean),
                "images": [asdict(i) for i in self.images],
                "convention": "Y (BT.601) and RGB, 8-bit rounded, `scale` px cropped per border; SSIM 11x11 "
                              "Gaussian sigma 1.5 on Y"}


def score(name: str, sr: torch.Tensor, hr: torch.Tensor, scale: int) -> ImageScore:
    """Scores of one (3,H,W) or (1,3,H,W) RGB prediction in [0,1] against its HR image."""
    return ImageScore(name, psnr(sr, hr, crop=scale, y=True), ssim(sr, hr, crop=scale, y=True),
                      psnr(sr, hr, crop=scale, y=False))


def eval_pairs_for(data: str | Path | None, scale: int, degradation: str = "bi") -> list:
    """Validation pairs of ``data``: the bundled photos (None / "default") or a folder (HR-only or HR/LR)."""
    return eval_pairs(None if data in (None, "default") else Path(data), scale, degradation=degradation)


def evaluate_model(model: SRModel, pairs: list, *, method: str | None = None,
                   keep_outputs: bool = False) -> EvalReport:
    """Super-resolve every ``EvalPair(name, lr, hr)`` (RGB (3,h,w)/(3,H,W) in [0,1]) and score it."""
    return _evaluate(method or model.arch, model.scale, pairs, lambda lr: super_resolve(model, lr), keep_outputs)


def evaluate_bicubic(pairs: list, scale: int, *, keep_outputs: bool = False) -> EvalReport:
    """The bicubic (MATLAB-compatible) reference row."""
    return _evaluate("bicubic", scale, pairs, lambda lr: imresize(lr, scale).clamp(0, 1), keep_outputs)


def _evaluate(method: str, scale: int, pairs: list, upscale, keep_outputs: bool) -> EvalReport:
    report = EvalReport(method, scale)
    for p in pairs:
        sr = upscale(p.lr.unsqueeze(0))[0]
        report.images.append(score(p.name, sr, p.hr, scale))
        if keep_outputs:
            report.outputs[p.name] = sr
    return report


def comparison_rows(reports: list[EvalReport], pairs: list) -> list:
    """Rows for :func:`sr_compress.visual.comparison_image`: bicubic first, then the models, then HR."""
    ordered = sorted(reports, key=lambda r: r.method != "bicubic")
    return [(p.name, [*((r.method, r.outputs[p.name]) for r in ordered), ("HR", p.hr)]) for p in pairs]


# -- the reference VDSR protocol (../shared/data/set5/matlab_bicubic_x{s}.npz) ---------------------------------------
NPZ_IMAGES = ("bird", "butterfly", "head", "woman")  # the upstream baby inputs are missing


def load_npz_y(path: str | Any, images: tuple[str, ...] = NPZ_IMAGES, *,
               crop: int | None = None) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, bicubic-upscaled Y as (1,1,H,W) float32, ground-truth Y as (1,H,W) float64), values in [0, 1],
    from one of the AIL release's MATLAB npz files. ``crop``: keep only a centred ``crop``×``crop`` window
    (quick looks; the reference numbers are for the full images)."""
    z = np.load(require_file(path, "npz file"))
    out = []
    for n in images:
        try:
            lr, gt = z[f"{n}_bicubic_ycbcr"][..., 0], z[f"{n}_gt_ycbcr"][..., 0]
        except KeyError:
            raise DataError(f"{path}: no arrays for image {n!r}") from None
        if crop is not None:
            h, w = gt.shape
            t, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
            lr, gt = lr[t:t + crop, left:left + crop], gt[t:t + crop, left:left + crop]
        out.append((n, torch.from_numpy(lr.astype(np.float32))[None, None],
                    torch.from_numpy(gt.astype(np.float64))[None]))
    return out


def npz_y_psnr(model: SRModel, images: list[tuple[str, torch.Tensor, torch.Tensor]], scale: int) -> float:
    """Mean Y-PSNR of a Y-channel pre-upsampling model (VDSR) under the reference protocol: the model runs on
    the npz bicubic Y, its output is clipped to [0, 1] (by :func:`~sr_compress.metrics.psnr`), ``scale`` px are
    shaved at every border, and it is compared *unrounded* with the float ground truth — the protocol that
    reproduces the AIL release's table to ±0.01 dB (tests/test_reference_vdsr.py)."""
    if model.channels != 1 or not model.pre_upsample:
        raise ValueError(f"the npz protocol takes a Y-channel pre-upsampling model, not {model.arch}")
    model = model.eval()
    with torch.no_grad():
        values = [psnr(model(lr)[0], gt, crop=scale, y=True, quantize=False) for _, lr, gt in images]
    return float(sum(values) / len(values))
