"""EDSR (Lim et al. 2017) in the canonical layout shared by EDSR-PyTorch, BasicSR and MMagic."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import DEFAULT_RGB_MEAN, MeanShift, SRModel, check_scale
from .blocks import ResBlock, conv, upsampler
from .registry import register_model


@register_model("edsr")
class EDSR(SRModel):
    """``sub_mean → head → body (+ body_conv, global skip) → tail (pixel-shuffle upsampler, conv) → add_mean``.

    ``img_range`` is the scale the network computes in: 255 for EDSR-PyTorch and BasicSR weights, 1 for MMagic.
    """

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_blocks: int = 16,
        res_scale: float = 1.0,
        channels: int = 3,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DEFAULT_RGB_MEAN,
    ) -> None:
        scale = check_scale(scale)
        rgb_mean = [float(m) for m in rgb_mean]
        if len(rgb_mean) != channels:
            raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {channels} channels")
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, res_scale=float(res_scale),
                         channels=channels, img_range=float(img_range), rgb_mean=rgb_mean)
        self.sub_mean = MeanShift(tuple(rgb_mean), img_range, sign=-1)
        self.head = conv(channels, n_feats)
        self.body = nn.ModuleList(ResBlock(n_feats, res_scale) for _ in range(n_blocks))
        self.body_conv = conv(n_feats, n_feats)
        self.tail = nn.Sequential(*upsampler(n_feats, scale), conv(n_feats, channels))
        self.add_mean = MeanShift(tuple(rgb_mean), img_range, sign=+1)

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_blocks": 2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(self.sub_mean(x))
        r = f
        for block in self.body:
            r = block(r)
        return self.add_mean(self.tail(self.body_conv(r) + f))
