"""MATLAB-compatible bicubic resizing (``imresize``), used to make LR images, by bicubic-input models (VDSR),
for the bicubic reference row and for the chroma of Y models — so it lives outside ``train/``.

Agrees with MATLAB's ``imresize(x, scale, 'bicubic')`` to 6e-8 on the reference data (docs/data.md).

``imresize(x, scale, uint8=True)`` is MATLAB's *uint8* path of the version that made the published benchmark LR
files (SelfExSR's Set5/Set14/B100/Urban100, DIV2K's ``LR_bicubic``): replicated (clamped) borders, the first
pass rounded and saturated to 0–255 before the second, the result rounded half away from zero. It reproduces
those files bit for bit (tests/test_imresize_uint8.py on ../shared/data/benchmarks).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .errors import ConfigError, InputError


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def mirror_indices(idx: torch.Tensor, n: int) -> torch.Tensor:
    """0-based indices reflected at the borders with the edge pixel repeated (MATLAB's symmetric padding)."""
    m = idx % (2 * n)
    return torch.where(m < n, m, 2 * n - 1 - m)


@lru_cache(maxsize=64)
def _contributions(in_len: int, out_len: int, scale: float,
                   clamp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB imresize's ``contributions``: float64 weights, 0-based input indices, both (out_len, taps).
    Out-of-range indices are mirrored, or with ``clamp`` replaced by the nearest edge pixel (older MATLAB)."""
    k = scale if scale < 1 else 1.0  # antialiasing: the kernel is stretched by 1/scale when downscaling
    width = 4.0 / k
    u = torch.arange(1, out_len + 1, dtype=torch.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    idx = left[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)
    w = k * _cubic(k * (u[:, None] - idx))
    w = w / w.sum(1, keepdim=True)
    keep = (w != 0).any(0)
    i = idx[:, keep].long() - 1
    i = i.clamp(0, in_len - 1) if clamp else mirror_indices(i, in_len)
    return w[:, keep].contiguous(), i.contiguous()


def _resize_dim(x: torch.Tensor, dim: int, scale: float, clamp: bool = False) -> torch.Tensor:
    """Resize ``x`` along ``dim`` (-1 or -2) to ``ceil(size·scale)`` with the MATLAB bicubic kernel."""
    n = x.shape[dim]
    w, idx = _contributions(n, math.ceil(n * scale), float(scale), clamp)
    w = w.to(device=x.device, dtype=x.dtype)
    idx = idx.to(x.device)
    shape = (-1, 1) if dim == -2 else (-1,)
    out = None
    for t in range(idx.shape[1]):  # one gather per tap keeps memory at the output size
        term = x.index_select(dim, idx[:, t]) * w[:, t].view(shape)
        out = term if out is None else out + term
    return out


def check_image(x: torch.Tensor) -> None:
    """An InputError unless ``x`` is a float (C,H,W) or (N,C,H,W) tensor."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() not in (3, 4):
        desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"expected a float tensor (C,H,W) or (N,C,H,W), got {desc}")


def _round_u8(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's double → uint8 conversion: round half away from zero, saturate to 0–255 (still float64)."""
    return torch.floor(x + 0.5).clamp_(0.0, 255.0)


def imresize(x: torch.Tensor, scale: float, *, uint8: bool = False) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')``: cubic a=-0.5, antialiased downscaling, symmetric borders.

    ``x``: float (C,H,W) or (N,C,H,W), any range and float dtype (kept). Returns the same layout with spatial
    size ``ceil(H·scale) × ceil(W·scale)``. Rows are resized before columns, as MATLAB does for equal scales.

    ``uint8=True``: ``x`` is a ``torch.uint8`` image and the result is one, made as MATLAB's uint8 path made
    the published LR files: borders clamped (edge pixel replicated), each pass computed in float64 and
    rounded half away from zero and saturated to 0–255 (the first pass included).
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ConfigError(f"imresize scale must be a positive number, got {scale!r}")
    if uint8:
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() not in (3, 4):
            desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"imresize(uint8=True) takes a uint8 tensor (C,H,W) or (N,C,H,W), got {desc}")
        y = _round_u8(_resize_dim(x.to(torch.float64), -2, scale, clamp=True))
        return _round_u8(_resize_dim(y, -1, scale, clamp=True)).to(torch.uint8)
    check_image(x)
    return _resize_dim(_resize_dim(x, -2, scale), -1, scale)
