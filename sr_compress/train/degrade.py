"""Degradations that make LR images from HR images: MATLAB-compatible bicubic, blur-downsample, noise.

Every function takes a float tensor with channels at dim -3, laid out (C,H,W) or (N,C,H,W), values in [0, 1]
(any range works for the linear operations), and keeps its dtype and device.

The three benchmark degradations (RDN, Zhang et al. 2018, whose data-preparation scripts define them):

- ``bi``: ``imresize(hr, 1/scale)``, MATLAB's antialiased bicubic, clipped to [0, 1] (its overshoot at edges
  is what saturating 8-bit LR files lose too).
- ``bd``: 7×7 Gaussian blur with σ = 1.6 (replicate border, as MATLAB ``imfilter(..., 'replicate')``), then
  MATLAB ``imresize(..., 1/scale, 'nearest')``, which keeps HR pixel ``scale//2`` of every ``scale`` pixels.
- ``dn``: ``bi``, then additive Gaussian noise of level 30 on the 0–255 scale (σ = 30/255), then clipped to
  [0, 1]. RDN stores its LR as uint8, which saturates at 0 and 255 and rounds; we keep the saturation (the
  clip) but not the rounding, so LR stays continuous.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError

DEGRADATIONS = ("bi", "bd", "dn")
BLUR_SIZE = 7
BLUR_SIGMA = 1.6
NOISE_LEVEL = 30.0 / 255.0


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _mirror(idx: torch.Tensor, n: int) -> torch.Tensor:
    """0-based indices reflected at the borders with the edge pixel repeated (MATLAB's symmetric padding)."""
    m = idx % (2 * n)
    return torch.where(m < n, m, 2 * n - 1 - m)


@lru_cache(maxsize=64)
def _contributions(in_len: int, out_len: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB imresize's ``contributions``: float64 weights, 0-based input indices, both (out_len, taps)."""
    k = scale if scale < 1 else 1.0  # antialiasing: the kernel is stretched by 1/scale when downscaling
    width = 4.0 / k
    u = torch.arange(1, out_len + 1, dtype=torch.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    idx = left[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)
    w = k * _cubic(k * (u[:, None] - idx))
    w = w / w.sum(1, keepdim=True)
    keep = (w != 0).any(0)
    return w[:, keep].contiguous(), _mirror(idx[:, keep].long() - 1, in_len).contiguous()


def _resize_dim(x: torch.Tensor, dim: int, scale: float) -> torch.Tensor:
    """Resize ``x`` along ``dim`` (-1 or -2) to ``ceil(size·scale)`` with the MATLAB bicubic kernel."""
    n = x.shape[dim]
    w, idx = _contributions(n, math.ceil(n * scale), float(scale))
    w = w.to(device=x.device, dtype=x.dtype)
    idx = idx.to(x.device)
    shape = (-1, 1) if dim == -2 else (-1,)
    out = None
    for t in range(idx.shape[1]):  # one gather per tap keeps memory at the output size
        term = x.index_select(dim, idx[:, t]) * w[:, t].view(shape)
        out = term if out is None else out + term
    return out


def _check_image(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() not in (3, 4):
        desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"expected a float tensor (C,H,W) or (N,C,H,W), got {desc}")


def imresize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')``: cubic a=-0.5, antialiased downscaling, symmetric borders.

    ``x``: float (C,H,W) or (N,C,H,W), any range and float dtype (kept). Returns the same layout with spatial
    size ``ceil(H·scale) × ceil(W·scale)``. Rows are resized before columns, as MATLAB does for equal scales.
    """
    _check_image(x)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ConfigError(f"imresize scale must be a positive number, got {scale!r}")
    return _resize_dim(_resize_dim(x, -2, scale), -1, scale)


def mod_crop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop bottom/right so height and width are multiples of ``scale`` (MATLAB ``modcrop``); (...,H,W)."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def check_degradation(kind: str) -> str:
    """``kind`` lower-cased if it names a degradation, else a ConfigError listing the choices."""
    k = str(kind).lower()
    if k not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {kind!r}; choose one of: {', '.join(DEGRADATIONS)}")
    return k


def gaussian_kernel_1d(size: int, sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd ``size``; its outer product is ``fspecial('gaussian', size, σ)``."""
    r = (size - 1) / 2.0
    x = torch.arange(size, dtype=torch.float64) - r
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur with replicate borders (MATLAB ``imfilter(x, fspecial(...), 'replicate')``)."""
    _check_image(x)
    batched = x if x.dim() == 4 else x.unsqueeze(0)
    c, p = batched.shape[1], size // 2
    g = gaussian_kernel_1d(size, sigma, x.dtype).to(x.device)
    y = F.pad(batched, (p, p, p, p), mode="replicate")
    y = F.conv2d(y, g.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)
    y = F.conv2d(y, g.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return y if x.dim() == 4 else y[0]


def nearest_downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB ``imresize(x, 1/scale, 'nearest')``: keeps pixel ``scale//2`` of every ``scale`` (0-based)."""
    def pick(n: int) -> torch.Tensor:
        idx = torch.arange(math.ceil(n / scale)) * scale + scale // 2
        return _mirror(idx, n).to(x.device)

    return x.index_select(-2, pick(x.shape[-2])).index_select(-1, pick(x.shape[-1]))


def add_noise(x: torch.Tensor, sigma: float = NOISE_LEVEL, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` plus Gaussian noise of std ``sigma`` (same units as ``x``), clipped to [0, 1].

    The noise is drawn on the generator's device (CPU by default) and moved to ``x``'s device, so a seeded CPU
    generator gives the same noise wherever ``x`` lives. ``generator=None`` uses torch's global RNG.
    """
    dev = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=dev)
    return (x + sigma * noise.to(x.device)).clamp_(0.0, 1.0)


def degrade(hr: torch.Tensor, scale: int, kind: str = "bi", *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Make the LR image of ``hr`` (float (C,H,W) or (N,C,H,W) in [0,1]) with degradation ``kind``.

    ``bi``: MATLAB bicubic ``imresize(hr, 1/scale)``. ``bd``: 7×7 Gaussian σ=1.6 (replicate) then MATLAB
    nearest downsampling (RDN's BD). ``dn``: ``bi`` plus Gaussian noise σ = 30/255 drawn from ``generator``.
    The result is clipped to [0,1], like the saturating 8-bit LR files of the benchmarks (not rounded).
    Mod-crop ``hr`` first (:func:`mod_crop`) to get exactly ``H/scale × W/scale``; otherwise the LR size is
    ``ceil(H/scale) × ceil(W/scale)``.
    """
    kind = check_degradation(kind)
    if kind == "bd":
        return nearest_downsample(gaussian_blur(hr), scale)
    lr = imresize(hr, 1.0 / scale).clamp_(0.0, 1.0)
    return add_noise(lr, NOISE_LEVEL, generator=generator) if kind == "dn" else lr
