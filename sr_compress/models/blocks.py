"""Building blocks shared by the model families."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = ("relu", "identity", "prelu", "lrelu")


def conv(c_in: int, c_out: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    """A 'same' convolution (zero padding k // 2)."""
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias)


def activation(name: str, channels: int = 1) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "identity":
        return nn.Identity()
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "lrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: ``x + res_scale * conv2(relu(conv1(x)))``."""

    def __init__(self, n_feats: int, res_scale: float = 1.0, k: int = 3) -> None:
        super().__init__()
        self.conv1 = conv(n_feats, n_feats, k)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv(n_feats, n_feats, k)
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x))) * self.res_scale


def upsampler(n_feats: int, scale: int, act: str | None = None) -> list[nn.Module]:
    """Pixel-shuffle upsampler: one conv + PixelShuffle per ×2 stage (×4 = two stages), or one ×3 stage."""
    stages = [2, 2] if scale == 4 else [scale]
    mods: list[nn.Module] = []
    for r in stages:
        mods += [conv(n_feats, n_feats * r * r), nn.PixelShuffle(r)]
        if act:
            mods.append(activation(act, n_feats))
    return mods
