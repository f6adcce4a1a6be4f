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
