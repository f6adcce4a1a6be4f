"""VDSR (Kim et al. 2016) with pytorch-vdsr semantics: Y channel, bicubic-upscaled input, global residual."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import SRModel, check_scale
from .blocks import conv, width_list
from .groups import ChannelGroup, consumed_by, group, produced_by
from .registry import register_model


@register_model("vdsr")
class VDSR(SRModel):
    """``x + tail(body(relu(head(x))))`` on the bicubic-upscaled image; every body layer is conv + ReLU.

    ``scale`` records which scale the model is used for (the released weights serve ×2, ×3 and ×4 alike).
    """
    plainify_refusal = ("its only skip is the global image residual, which the plain-graph check already accepts when "
                        "declared (export reports it plain); there is no skip across a ReLU to remove")

    pre_upsample = True
    depth_hparam = "n_layers"
    per_block_hparams = {"widths": (1, 0)}  # head, then one width per body layer

    def __init__(self, scale: int = 2, n_feats: int = 64, n_layers: int = 18, bias: bool = False,
                 channels: int = 1, widths: Sequence[int] | None = None) -> None:
        scale = check_scale(scale)
        w = width_list(widths, n_layers + 1, n_feats, "widths (head + body layers)")
        extra = {"widths": w} if widths is not None else {}
        super().__init__(scale=scale, n_feats=n_feats, n_layers=n_layers, bias=bool(bias), channels=channels,
                         **extra)
        self.head = nn.Sequential(conv(channels, w[0], bias=bias), nn.ReLU(inplace=True))
        self.body = nn.ModuleList(
            nn.Sequential(conv(w[i], w[i + 1], bias=bias), nn.ReLU(inplace=True)) for i in range(n_layers)
        )
        self.tail = conv(w[-1], channels, bias=bias)

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_layers": 3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.head(x)
        for layer in self.body:
            r = layer(r)
        return self.tail(r) + x

    # -- slimming: every layer's output is its own group (the global residual is on the image)
    def channel_groups(self) -> list[ChannelGroup]:
        keys = ["head.0"] + [f"body.{i}.0" for i in range(len(self.body))] + ["tail"]
        return [group(k, self.get_submodule(k).out_channels, produced_by(self, k), consumed_by(self, nxt))
                for k, nxt in zip(keys[:-1], keys[1:], strict=True)]

    def with_widths(self, widths: dict[str, int]) -> dict:
        keys = ["head.0"] + [f"body.{i}.0" for i in range(len(self.body))]
        return {**self.hparams, "widths": [widths[k] for k in keys]}
