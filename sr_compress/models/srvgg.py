"""SRVGGNetCompact (Wang et al., Real-ESRGAN; ``realesrgan/archs/srvgg_arch.py``): a plain chain of 3×3
convs with PReLU (or ReLU / LeakyReLU 0.1), the last conv PixelShuffled to the output, plus the input image
upsampled by nearest neighbour. RGB in [0, 1]; the released ``realesr-animevideov3`` is 64 features,
16 body convs, ×4, PReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel, check_scale
from .blocks import activation, conv, width_list
from .groups import ChannelGroup, consumed_by, group, per_channel, produced_by
from .registry import register_model

ACTS = ("prelu", "relu", "lrelu")  # upstream act_type 'prelu', 'relu', 'leakyrelu' (slope 0.1)


@register_model("srvgg")
class SRVGGNetCompact(SRModel):
    """``tail(body(head(x))) + nearest(x)``: head = conv + act, ``n_conv`` body layers of conv + act, tail =
    conv (→ channels·s²) + PixelShuffle(s). ``widths``: head + one per body layer (a slimmed model)."""

    depth_hparam = "n_conv"
    per_block_hparams = {"widths": (1, 0)}
    plainify_refusal = ("it is already a plain chain of convs (with PReLU); its only skip is the "
                        "nearest-upsampled input image, which plainify has nothing to remove from")

    def __init__(self, scale: int = 4, n_feats: int = 64, n_conv: int = 16, act: str = "prelu",
                 channels: int = 3, widths: Sequence[int] | None = None) -> None:
        scale = check_scale(scale)
        if act not in ACTS:
            raise ValueError(f"unknown activation {act!r}; choose one of {', '.join(ACTS)}")
        w = width_list(widths, n_conv + 1, n_feats, "widths (head + body layers)")
        extra = {"widths": w} if widths is not None else {}
        super().__init__(scale=scale, n_feats=n_feats, n_conv=n_conv, act=act, channels=channels, **extra)
        self.head = nn.Sequential(conv(channels, w[0]), activation(act, w[0]))
        self.body = nn.ModuleList(nn.Sequential(conv(w[i], w[i + 1]), activation(act, w[i + 1]))
                                  for i in range(n_conv))
        self.tail = nn.Sequential(conv(w[-1], channels * scale * scale), nn.PixelShuffle(scale))

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_conv": 3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.head(x)
        for layer in self.body:
            r = layer(r)
        return self.tail(r) + F.interpolate(x, scale_factor=self.scale, mode="nearest")

    # -- slimming: every layer's output (with its PReLU slopes) is a group; the tail keeps the image width
    def _layers(self) -> list[tuple[str, str]]:
        return [("head.0", "head.1")] + [(f"body.{i}.0", f"body.{i}.1") for i in range(len(self.body))]

    def channel_groups(self) -> list[ChannelGroup]:
        keys = self._layers()
        nxt = [k for k, _ in keys[1:]] + ["tail.0"]
        return [group(k, self.get_submodule(k).out_channels, produced_by(self, k), per_channel(self, a),
                      consumed_by(self, n)) for (k, a), n in zip(keys, nxt, strict=True)]

    def with_widths(self, widths: dict[str, int]) -> dict:
        return {**self.hparams, "widths": [widths[k] for k, _ in self._layers()]}
