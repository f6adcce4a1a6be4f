"""IMDN (Hui et al., "Lightweight Image Super-Resolution with Information Multi-distillation Network",
ACM MM 2019): information multi-distillation blocks with contrast-aware channel attention.

Layer order and constants from the released code (Zheng222/IMDN ``model/block.py`` ``IMDModule``,
``model/architecture.py`` ``IMDN``): LeakyReLU slope 0.05; each block splits ``d`` distilled channels off
three times; CCA reduction 16; the block outputs are concatenated, fused by a 1×1 conv + LeakyReLU and a 3×3
conv, the head output added back, then one conv + PixelShuffle. RGB in [0, 1], no mean shift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CCA
from .base import SRModel, check_scale
from .blocks import conv
from .registry import register_model

SLOPE = 0.05


class IMDB(nn.Module):
    """One information multi-distillation block (upstream ``IMDModule``); ``d`` distilled channels."""

    def __init__(self, n_feats: int, d: int, cca_feats: int) -> None:
        super().__init__()
        self.d, self.rest = d, n_feats - d
        self.c1 = conv(n_feats, n_feats)
        self.c2 = conv(self.rest, n_feats)
        self.c3 = conv(self.rest, n_feats)
        self.c4 = conv(self.rest, d)
        self.cca = CCA(4 * d, cca_feats)
        self.c5 = conv(4 * d, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r = torch.split(F.leaky_relu(self.c1(x), SLOPE), (self.d, self.rest), dim=1)
        d2, r = torch.split(F.leaky_relu(self.c2(r), SLOPE), (self.d, self.rest), dim=1)
        d3, r = torch.split(F.leaky_relu(self.c3(r), SLOPE), (self.d, self.rest), dim=1)
        out = torch.cat([d1, d2, d3, self.c4(r)], dim=1)
        return self.c5(self.cca(out)) + x


@register_model("imdn")
class IMDN(SRModel):
    """``head → IMDB × n_blocks → lrelu(fuse(concat of every block output)) → body_conv (+ head) → tail``.

    ``distilled`` (d): channels split off per step (upstream ``int(n_feats · 0.25)``; 4·d = n_feats);
    ``cca_feats``: the CCA bottleneck (upstream 4·d // 16).
    """

    depth_hparam = None  # the fuse conv reads every block's output: no block can be dropped
    per_block_hparams = {}
    global_context = "its contrast-aware channel attention pools statistics over the whole image"
    plainify_refusal = ("it is not a residual chain of convs: its blocks split channels, concatenate the "
                        "block outputs and gate them with a channel attention that pools over the whole image")

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 6, channels: int = 3,
                 distilled: int | None = None, cca_feats: int | None = None) -> None:
        scale = check_scale(scale)
        d = int(n_feats * 0.25) if distilled is None else int(distilled)
        cca = (4 * d) // 16 if cca_feats is None else int(cca_feats)
        if not 0 < d < n_feats or cca < 1 or n_blocks < 1:
            raise ValueError(f"need 0 < distilled < n_feats, cca_feats >= 1, n_blocks >= 1 "
                             f"(got {d}, {n_feats}, {cca}, {n_blocks})")
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, channels=channels, distilled=d,
                         cca_feats=cca)
        self.head = conv(channels, n_feats)
        self.body = nn.ModuleList(IMDB(n_feats, d, cca) for _ in range(n_blocks))
        self.fuse = conv(n_feats * n_blocks, n_feats, 1)
        self.body_conv = conv(n_feats, n_feats)
        self.tail = nn.Sequential(conv(n_feats, channels * scale * scale), nn.PixelShuffle(scale))

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 12, "n_blocks": 2, "distilled": 3, "cca_feats": 2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        outs, r = [], f
        for block in self.body:
            r = block(r)
            outs.append(r)
        fused = F.leaky_relu(self.fuse(torch.cat(outs, dim=1)), SLOPE)
        return self.tail(self.body_conv(fused) + f)
