"""Evaluation: per-image and mean PSNR/SSIM (Y and RGB) of a model, with a bicubic reference row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .infer import super_resolve
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
    from .metrics import psnr, ssim

    return ImageScore(name, psnr(sr, hr, crop=scale, y=True), ssim(sr, hr, crop=scale, y=True),
                      psnr(sr, hr, crop=scale, y=False))


def evaluate_model(model: SRModel, pairs: list, *, method: str | None = None,
                   keep_outputs: bool = False) -> EvalReport:
    """Super-resolve every ``EvalPair(name, lr, hr)`` (RGB (3,h,w)/(3,H,W) in [0,1]) and score it."""
    return _evaluate(method or model.arch, model.scale, pairs, lambda lr: super_resolve(model, lr), keep_outputs)


def evaluate_bicubic(pairs: list, scale: int, *, keep_outputs: bool = False) -> EvalReport:
    """The bicubic (MATLAB-compatible) reference row."""
    from .train.degrade import imresize

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
