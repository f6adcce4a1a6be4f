"""VDSR (Kim et al. 2016) with pytorch-vdsr semantics: Y channel, bicubic-upscaled input, global residual."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel, check_scale
from .blocks import conv
from .registry import register_model


@register_model("vdsr")
class VDSR(SRModel):
    """``x + tail(body(relu(head(x))))`` on the bicubic-upscaled image; every body layer is conv + ReLU.

    ``scale`` records which scale the model is used for (the released weights serve ×2, ×3 and ×4 alike).
    """

    pre_upsample = True

    def __init__(self, scale: int = 2, n_feats: int = 64, n_layers: int = 18, bias: bool = False,
                 channels: int = 1) -> None:
        scale = check_scale(scale)
        super().__init__(scale=scale, n_feats=n_feats, n_layers=n_layers, bias=bool(bias), channels=channels)
        self.head = nn.Sequential(conv(channels, n_feats, bias=bias), nn.ReLU(inplace=True))
        self.body = nn.ModuleList(
            nn.Sequential(conv(n_feats, n_feats, bias=bias), nn.ReLU(inplace=True)) for _ in range(n_layers)
        )
        self.tail = conv(n_feats, channels, bias=bias)

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_layers": 3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.head(x)
        for layer in self.body:
            r = layer(r)
        return self.tail(r) + x
