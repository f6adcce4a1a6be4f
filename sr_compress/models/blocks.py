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
    """EDSR residual block without batch norm: ``x + res_scale * conv2(relu(conv1(x)))``.

    ``inner``: the width between conv1 and conv2 (default ``n_feats``; a slimmed block may differ)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0, k: int = 3, inner: int | None = None) -> None:
        super().__init__()
        inner = n_feats if inner is None else int(inner)
        self.conv1 = conv(n_feats, inner, k)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv(inner, n_feats, k)
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x))) * self.res_scale


def upsampler_stages(scale: int) -> list[int]:
    """The pixel-shuffle factors of the upsampler: ×4 = two ×2 stages, else one stage."""
    return [2, 2] if scale == 4 else [scale]


def upsampler(n_feats: int, scale: int, act: str | None = None,
              widths: list[int] | None = None) -> list[nn.Module]:
    """Pixel-shuffle upsampler: one conv + PixelShuffle per ×2 stage (×4 = two stages), or one ×3 stage.

    ``widths``: the channels after each stage's shuffle (default ``n_feats`` each; slimmed tails differ)."""
    stages = upsampler_stages(scale)
    widths = [n_feats] * len(stages) if widths is None else [int(w) for w in widths]
    if len(widths) != len(stages):
        raise ValueError(f"×{scale} upsampler has {len(stages)} stage(s), got {len(widths)} widths")
    mods: list[nn.Module] = []
    c = n_feats
    for r, w in zip(stages, widths, strict=True):
        mods += [conv(c, w * r * r), nn.PixelShuffle(r)]
        if act:
            mods.append(activation(act, w))
        c = w
    return mods


def upsampler_convs(prefix: str, scale: int, act: bool = False) -> list[tuple[str, int]]:
    """(key, r) of each upsampler conv when the upsampler's modules start at ``prefix.0``."""
    step = 3 if act else 2
    return [(f"{prefix}.{j * step}", r) for j, r in enumerate(upsampler_stages(scale))]


def width_list(value: list[int] | None, n: int, default: int, what: str) -> list[int]:
    """Per-layer widths from an optional hparam list (``None`` = ``default`` everywhere), checked."""
    if value is None:
        return [int(default)] * n
    widths = [int(v) for v in value]
    if len(widths) != n:
        raise ValueError(f"{what} needs {n} widths, got {len(widths)}")
    if min(widths, default=1) < 1:
        raise ValueError(f"{what} must be positive, got {widths}")
    return widths
