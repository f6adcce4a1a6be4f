"""FSRCNN (Dong et al. 2016): feature extraction, shrink, mapping, expand, transposed-conv upsampling."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel, check_scale
from .registry import register_model


@register_model("fsrcnn")
class FSRCNN(SRModel):
    """FSRCNN(d, s, m); every conv but the last is followed by PReLU. ``channels=1`` is the paper's Y model."""

    def __init__(self, scale: int = 2, d: int = 56, s: int = 12, m: int = 4, channels: int = 1) -> None:
        scale = check_scale(scale)
        super().__init__(scale=scale, d=d, s=s, m=m, channels=channels)
        self.head = nn.Sequential(nn.Conv2d(channels, d, 5, padding=2), nn.PReLU(d),
                                  nn.Conv2d(d, s, 1), nn.PReLU(s))
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)) for _ in range(m))
        self.tail = nn.Sequential(
            nn.Conv2d(s, d, 1), nn.PReLU(d),
            nn.ConvTranspose2d(d, channels, 9, stride=scale, padding=4, output_padding=scale - 1),
        )

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "d": 8, "s": 4, "m": 2, "channels": 3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.head(x)
        for layer in self.body:
            r = layer(r)
        return self.tail(r)
