"""BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` computes it (the SR field's evaluation convention).

All functions take float tensors in [0, 1], channels at dim -3 (CHW or NCHW), and return the same layout.
Y lies in [16/255, 235/255], Cb/Cr in [16/255, 240/255].
"""

from __future__ import annotations

import torch

_M = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
                  dtype=torch.float64) / 255.0
_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255.0


def _apply(x: torch.Tensor, m: torch.Tensor, offset: torch.Tensor | None, pre: torch.Tensor | None) -> torch.Tensor:
    if x.shape[-3] != 3:
        raise ValueError(f"expected 3 channels at dim -3, got shape {tuple(x.shape)}")
    m = m.to(device=x.device, dtype=x.dtype)
    if pre is not None:
        x = x - pre.to(x).view(3, 1, 1)
    y = torch.einsum("ij,...jhw->...ihw", m, x)
    if offset is not None:
        y = y + offset.to(x).view(3, 1, 1)
    return y


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    return _apply(x, _M, _OFFSET, None)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return _apply(x, torch.linalg.inv(_M), None, _OFFSET)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """The Y channel, keeping the channel dim (size 1)."""
    return rgb_to_ycbcr(x)[..., :1, :, :]
