"""ASRN (adjustable-depth SR): Multi-scale Aggregation Blocks and one upsampler shared by every depth.

No public code exists; the layout follows the paper as docs/asrn.md describes it, and the
details the paper leaves open are our choices (marked "ours" below and in docs/asrn.md).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import DepthOutputs, SRModel, check_scale
from .blocks import conv
from .registry import register_model

#: (kernel, stride, padding) of the transposed conv per scale: output = (H-1)·s - 2p + k = s·H.
DECONV = {2: (6, 2, 2), 3: (7, 3, 2), 4: (8, 4, 2)}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: view (N, g, C/g, H, W), swap the two channel axes, flatten back.

    Output channel ``j·g + i`` is input channel ``i·(C/g) + j`` (each output group mixes every input group).
    """
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MAB(nn.Module):
    """Multi-scale Aggregation Block: ``x + fuse_out(shuffle(concat(y_1..y_g)))`` with
    ``(x_1..x_g) = split(fuse_in(x))``, ``y_1 = K_1(x_1)``, ``y_i = K_i(x_i + y_{i-1})``, ``K_i`` = 3×3 conv + ReLU.

    The chain gives group i a receptive field of 2i+1 pixels: the block aggregates several scales at once.
    """

    def __init__(self, n_feats: int, groups: int = 4) -> None:
        super().__init__()
        if n_feats % groups:
            raise ValueError(f"n_feats {n_feats} must be divisible by groups {groups}")
        self.groups, width = groups, n_feats // groups
        self.fuse_in = nn.Conv2d(n_feats, n_feats, 1)
        self.convs = nn.ModuleList(nn.Sequential(conv(width, width), nn.ReLU()) for _ in range(groups))
        self.fuse_out = nn.Conv2d(n_feats, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.chunk(self.fuse_in(x), self.groups, dim=1)
        ys: list[torch.Tensor] = []
        for part, k in zip(parts, self.convs, strict=True):
            ys.append(k(part if not ys else part + ys[-1]))
        return x + self.fuse_out(channel_shuffle(torch.cat(ys, dim=1), self.groups))


class SharedUpsampler(nn.Module):
    """``1×1 bottleneck (+ReLU, ours) → ConvTranspose2d(kernel, stride, padding per scale) (+ReLU, ours) →
    3×3 conv to RGB``; one parameter set applied after any block."""

    def __init__(self, n_feats: int, up_feats: int, scale: int, channels: int) -> None:
        super().__init__()
        k, s, p = DECONV[scale]
        self.bottleneck = nn.Sequential(nn.Conv2d(n_feats, up_feats, 1), nn.ReLU())
        self.deconv = nn.Sequential(nn.ConvTranspose2d(up_feats, up_feats, k, stride=s, padding=p), nn.ReLU())
        self.to_rgb = conv(up_feats, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(self.deconv(self.bottleneck(x)))


@register_model("asrn")
class ASRN(SRModel):
    """``head (3×3 conv → ReLU → 1×1 conv, ours) → MAB × n_blocks → tail (shared upsampler)``, on [0, 1] RGB.

    ``forward(x)`` gives the full-depth output, ``forward(x, depth=k)`` the output after the first k blocks
    (1 ≤ k ≤ n_blocks) and ``forward(x, all_depths=True)`` every depth in one pass (:class:`DepthOutputs`).
    """

    multi_depth = True

    def __init__(self, scale: int = 2, n_feats: int = 96, n_blocks: int = 5, groups: int = 4, up_feats: int = 24,
                 channels: int = 3) -> None:
        scale = check_scale(scale)
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, groups=groups, up_feats=up_feats,
                         channels=channels)
        self.head = nn.Sequential(conv(channels, n_feats), nn.ReLU(), nn.Conv2d(n_feats, n_feats, 1))
        self.body = nn.ModuleList(MAB(n_feats, groups) for _ in range(n_blocks))
        self.tail = SharedUpsampler(n_feats, up_feats, scale, channels)

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_blocks": 2, "groups": 4, "up_feats": 4}

    @property
    def n_depths(self) -> int:
        return len(self.body)

    def forward(self, x: torch.Tensor, depth: int | None = None,
                all_depths: bool = False) -> torch.Tensor | DepthOutputs:
        if all_depths:
            return self.forward_all(x)
        k = self.n_depths if depth is None else self._check_depth(depth)
        f = self.head(x)
        for block in self.body[:k]:
            f = block(f)
        return self.tail(f)

    def forward_all(self, x: torch.Tensor) -> DepthOutputs:
        """Every depth's output in one pass: ``outputs[k-1]`` = ``forward(x, depth=k)``, ``features[k-1]`` the
        output of block k (N, n_feats, h, w)."""
        f, outputs, features = self.head(x), [], []
        for block in self.body:
            f = block(f)
            features.append(f)
            outputs.append(self.tail(f))
        return DepthOutputs(outputs, features)

    def _check_depth(self, depth: int) -> int:
        if not 1 <= depth <= self.n_depths:
            raise ValueError(f"depth must be in 1..{self.n_depths}, got {depth}")
        return int(depth)
