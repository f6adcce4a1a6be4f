"""FSRCNN (Dong et al. 2016): feature extraction, shrink, mapping, expand, transposed-conv upsampling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import SRModel, check_scale
from .blocks import width_list
from .groups import ChannelGroup, consumed_by, group, per_channel, produced_by
from .registry import register_model


@register_model("fsrcnn")
class FSRCNN(SRModel):
    """FSRCNN(d, s, m); every conv but the last is followed by PReLU. ``channels=1`` is the paper's Y model."""
    plainify_refusal = ("it has no skip to remove, and its PReLU activations and ConvTranspose upsampler (deconv) are "
                        "not conv / ReLU / pixel shuffle")

    depth_hparam = "m"
    per_block_hparams = {"widths": (2, 1)}  # d, s, one per mapping layer, the expanding conv

    def __init__(self, scale: int = 2, d: int = 56, s: int = 12, m: int = 4, channels: int = 1,
                 widths: Sequence[int] | None = None) -> None:
        scale = check_scale(scale)
        w = width_list(widths, m + 3, 0, "widths") if widths is not None else [d, s, *[s] * m, d]
        extra = {"widths": w} if widths is not None else {}
        super().__init__(scale=scale, d=d, s=s, m=m, channels=channels, **extra)
        self.head = nn.Sequential(nn.Conv2d(channels, w[0], 5, padding=2), nn.PReLU(w[0]),
                                  nn.Conv2d(w[0], w[1], 1), nn.PReLU(w[1]))
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(w[i + 1], w[i + 2], 3, padding=1), nn.PReLU(w[i + 2]))
                                  for i in range(m))
        self.tail = nn.Sequential(
            nn.Conv2d(w[m + 1], w[m + 2], 1), nn.PReLU(w[m + 2]),
            nn.ConvTranspose2d(w[m + 2], channels, 9, stride=scale, padding=4, output_padding=scale - 1),
        )

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "d": 8, "s": 4, "m": 2, "channels": 3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.head(x)
        for layer in self.body:
            r = layer(r)
        return self.tail(r)

    # -- slimming: every conv's output (with its PReLU slopes) is a group; the deconv keeps the image width
    def _convs(self) -> list[tuple[str, str]]:
        """(conv, its PReLU) in order, the transposed conv last."""
        pairs = [("head.0", "head.1"), ("head.2", "head.3")]
        pairs += [(f"body.{i}.0", f"body.{i}.1") for i in range(len(self.body))]
        return pairs + [("tail.0", "tail.1"), ("tail.2", "")]

    def channel_groups(self) -> list[ChannelGroup]:
        convs = self._convs()
        return [group(k, self.get_submodule(k).out_channels, produced_by(self, k), per_channel(self, act),
                      consumed_by(self, nxt)) for (k, act), (nxt, _) in zip(convs[:-1], convs[1:], strict=True)]

    def with_widths(self, widths: dict[str, int]) -> dict:
        return {**self.hparams, "widths": [widths[k] for k, _ in self._convs()[:-1]]}
