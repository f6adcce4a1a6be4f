"""Attention blocks of the lightweight SR families: contrast-aware channel attention (IMDN) and enhanced spatial
attention (RFDN, RLFN). Written from the papers; layer order, kernel sizes, strides and padding follow the
released upstream code so that released weights compute exactly what they compute there."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_std(x: torch.Tensor) -> torch.Tensor:
    """Per-channel spatial standard deviation (population), (N, C, 1, 1), in IMDN's order of operations."""
    n = x.size(2) * x.size(3)
    mean = x.sum(3, keepdim=True).sum(2, keepdim=True) / n
    var = (x - mean).pow(2).sum(3, keepdim=True).sum(2, keepdim=True) / n
    return var.pow(0.5)


class CCA(nn.Module):
    """Contrast-aware channel attention (Hui et al., IMDN 2019): ``x · σ(W₂ relu(W₁ (std(x) + mean(x))))``.

    The statistics are taken over the whole image, so the output at a pixel depends on every input pixel."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(channels, inner, 1), nn.ReLU(), nn.Conv2d(inner, channels, 1),
                                     nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_std(x) + F.adaptive_avg_pool2d(x, 1)
        return x * self.conv_du(y)


class ESA(nn.Module):
    """Enhanced spatial attention (Liu et al., RFANet 2020) as RFDN and RLFN use it.

    ``conv1`` (1×1, C → f) → ``conv2`` (3×3, stride 2, no padding) → max-pool 7, stride 3 → [RFDN:
    ``relu(conv_max)``, ``relu(conv3)``, ``conv3_``; RLFN: ``conv3``] → bilinear resize to the input size
    (align_corners False) → + ``conv_f(conv1 x)`` → ``conv4`` (1×1, f → C) → sigmoid gate on ``x``.

    ``inner`` = (conv1 out, conv2 out, conv3 out = conv_f out) widths, equal (f) in released weights.
    The input must be at least 15×15 (the pooling window must fit after the stride-2 conv).
    """

    MIN_SIZE = 15

    def __init__(self, channels: int, inner: tuple[int, int, int], rfdn: bool) -> None:
        super().__init__()
        f1, f2, f3 = inner
        self.rfdn = bool(rfdn)
        self.conv1 = nn.Conv2d(channels, f1, 1)
        self.conv_f = nn.Conv2d(f1, f3, 1)
        if self.rfdn:
            self.conv_max = nn.Conv2d(f2, f2, 3, padding=1)
        self.conv2 = nn.Conv2d(f1, f2, 3, stride=2, padding=0)
        if self.rfdn:
            self.conv3 = nn.Conv2d(f2, f2, 3, padding=1)
            self.conv3_ = nn.Conv2d(f2, f3, 3, padding=1)
        else:
            self.conv3 = nn.Conv2d(f2, f3, 3, padding=1)
        self.conv4 = nn.Conv2d(f3, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        if self.rfdn:
            c = self.conv3_(F.relu(self.conv3(F.relu(self.conv_max(c)))))
        else:
            c = self.conv3(c)
        c = F.interpolate(c, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c + self.conv_f(c1_)))
