"""Plain pixel-loss training: ``loss = f(S(x), y)`` with f = L1, MSE or Charbonnier (no teacher)."""

from __future__ import annotations

import torch

from ..losses import pixel_loss
from .base import Batch, Strategy, TrainContext, register_strategy


class PixelStrategy(Strategy):
    """Base of the plain strategies: the configured reduction (``config.reduction``) of one pixel loss."""

    criterion = "l1"

    def loss(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        pred = ctx.forward(batch.x)
        return pixel_loss(self.criterion)(pred, batch.y, reduction=ctx.config.reduction)


@register_strategy("l1")
class L1Strategy(PixelStrategy):
    """Mean (or summed) absolute error to the HR target — the usual SR objective (EDSR, PSPL's limit)."""

    criterion = "l1"


@register_strategy("mse")
class MSEStrategy(PixelStrategy):
    """Mean (or summed) squared error to the HR target (VDSR, AIL's plain student)."""

    criterion = "mse"


@register_strategy("charbonnier")
class CharbonnierStrategy(PixelStrategy):
    """Charbonnier (smooth L1, eps = 1e-3 on [0, 1] data)."""

    criterion = "charbonnier"
