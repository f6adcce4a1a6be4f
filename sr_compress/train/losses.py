"""Pixel losses, BasicSR style: an element-wise function, then a reduction.

Every loss takes ``pred`` and ``target`` of the same shape (NCHW, usually in [0, 1]) and an optional per-pixel
``weight`` that broadcasts against them (e.g. ``N×1×H×W`` for a 3-channel image). The weight multiplies *both*
prediction and target before the difference, ``f(w·pred − w·target)``, which is the form AIL
(``Σ (w·S(x) − w·y)²``, effective weight w²) and PSPL (``L1(m·SR, m·HR)``) use. ``"mean"`` divides by the
number of elements (not by the sum of the weights), ``"sum"`` adds them up, ``"none"`` returns the map.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ConfigError

REDUCTIONS = ("mean", "sum", "none")
CHARBONNIER_EPS = 1e-3  # on the [0, 1] scale


def reduce_loss(loss: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Reduce an element-wise loss map: ``"mean"``, ``"sum"`` or ``"none"`` (unchanged)."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ConfigError(f"unknown loss reduction {reduction!r}; choose one of: {', '.join(REDUCTIONS)}")


def _difference(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if weight is None:
        return pred - target
    return weight * pred - weight * target


def l1_loss(pred: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
            reduction: str = "mean") -> torch.Tensor:
    """``|w·pred − w·target|`` reduced."""
    return reduce_loss(_difference(pred, target, weight).abs(), reduction)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
             reduction: str = "mean") -> torch.Tensor:
    """``(w·pred − w·target)²`` reduced."""
    return reduce_loss(_difference(pred, target, weight).square(), reduction)


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                     reduction: str = "mean", eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """``sqrt((w·pred − w·target)² + eps²)`` reduced: a smooth L1."""
    d = _difference(pred, target, weight)
    return reduce_loss(torch.sqrt(d.square() + eps * eps), reduction)


PIXEL_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "charbonnier": charbonnier_loss,
}


def pixel_loss(name: str) -> Callable[..., torch.Tensor]:
    """The loss function registered as ``name`` (``l1``, ``mse``, ``charbonnier``)."""
    if name not in PIXEL_LOSSES:
        raise ConfigError(f"unknown pixel loss {name!r}; choose one of: {', '.join(PIXEL_LOSSES)}")
    return PIXEL_LOSSES[name]


# -- the SSIM *training* map (PSPL) ---------------------------------------------------------------------------------
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian (sums to 1) whose outer product is SSIM's 2-D window."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _blur(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter per channel, zero padded, same size (equal to the 11×11 2-D window)."""
    c, k = t.shape[1], g.numel()
    t = torch.nn.functional.conv2d(t, g.view(1, 1, k, 1).expand(c, 1, k, 1), padding=(k // 2, 0), groups=c)
    return torch.nn.functional.conv2d(t, g.view(1, 1, 1, k).expand(c, 1, 1, k), padding=(0, k // 2), groups=c)


def training_ssim_map(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0,
                      window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, k1: float = SSIM_K1,
                      k2: float = SSIM_K2) -> torch.Tensor:
    """SSIM of every pixel of every channel (NCHW → NCHW), batched, **detached** (no gradient ever flows).

    This is the map a training loss weights pixels with (PSPL), not the evaluation metric: it is float32 on
    the training device, same size as the input (the 11×11 Gaussian window, σ 1.5, is zero-padded at the
    borders, as in the pytorch-ssim code PSPL builds on), with constants ``C1 = (k1·data_range)²`` and
    ``C2 = (k2·data_range)²``. The evaluation SSIM (:func:`sr_compress.metrics.ssim` on
    :func:`sr_compress.metrics.ssim_map`) is Y-channel, float64, on 8-bit values 0–255, "valid" filtered (no
    padding) and averaged — the numbers the papers' tables quote. Inside the valid region the two maps agree.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"training_ssim_map needs two NCHW tensors of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    with torch.no_grad():
        x, y = pred.detach(), target.detach()
        g = gaussian_window(window, sigma, dtype=x.dtype, device=x.device)
        mu_x, mu_y = _blur(x, g), _blur(y, g)
        sxx = _blur(x * x, g) - mu_x * mu_x
        syy = _blur(y * y, g) - mu_y * mu_y
        sxy = _blur(x * y, g) - mu_x * mu_y
        c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2))
