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

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..imresize import check_image, imresize, mirror_indices

DEGRADATIONS = ("bi", "bd", "dn")
BLUR_SIZE = 7
BLUR_SIGMA = 1.6
NOISE_LEVEL = 30.0 / 255.0


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
    check_image(x)
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
        return mirror_indices(idx, n).to(x.device)

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
    h, w = int(hr.shape[-2]), int(hr.shape[-1])
    if h < scale or w < scale:  # a 1×1 image has no ×2 LR
        from ..errors import DataError

        raise DataError(f"an image of {w}x{h} px is smaller than the scale ×{scale}: it has no LR image")
    if kind == "bd":
        return nearest_downsample(gaussian_blur(hr), scale)
    lr = imresize(hr, 1.0 / scale).clamp_(0.0, 1.0)
    return add_noise(lr, NOISE_LEVEL, generator=generator) if kind == "dn" else lr
