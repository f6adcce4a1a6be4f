"""MSRResNet (BasicSR's SRResNet without batch norm): residual body, LeakyReLU upsampler, bilinear skip."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel, check_scale
from .blocks import ResBlock, conv, upsampler
from .registry import register_model


@register_model("msrresnet")
class MSRResNet(SRModel):
    """``lrelu(conv_first) → body → lrelu upsampler → lrelu(conv_hr) → conv_last``, plus bilinear(x)."""

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 16, channels: int = 3) -> None:
        scale = check_scale(scale)
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, channels=channels)
        self.head = nn.Sequential(conv(channels, n_feats), nn.LeakyReLU(0.1, inplace=True))
        self.body = nn.ModuleList(ResBlock(n_feats) for _ in range(n_blocks))
        self.tail = nn.Sequential(
            *upsampler(n_feats, scale, act="lrelu"),
            conv(n_feats, n_feats), nn.LeakyReLU(0.1, inplace=True),
            conv(n_feats, channels),
        )

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_blocks": 2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.head(x)
        for block in self.body:
            r = block(r)
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.tail(r) + base
