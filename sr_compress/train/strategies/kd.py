"""Knowledge distillation, the AIL paper's baseline (Eq. 10): ``l(y, S(x)) + β·l(T(x), S(x))``, β = 0.1."""

from __future__ import annotations

import torch

from ..losses import PIXEL_LOSSES, pixel_loss
from . import _options as opt
from .base import Batch, Strategy, TrainContext, register_strategy


@register_strategy("kd")
class KDStrategy(Strategy):
    """The student fits the ground truth and, with weight ``beta``, the teacher's output for the same input.

    ``criterion``: the pixel loss ``l`` (``mse`` as in VDSR/AIL, ``l1`` or ``charbonnier``), reduced as
    ``config.reduction`` says. Reports ``fit`` (the ground-truth term) and ``distill`` (the teacher term).
    """

    needs_teacher = True

    def __init__(self, beta: float = 0.1, criterion: str = "mse") -> None:
        beta = opt.number("kd", "beta", beta, minimum=0.0)
        criterion = opt.choice("kd", "criterion", criterion, list(PIXEL_LOSSES))
        super().__init__(beta=beta, criterion=criterion)
        self.beta, self.criterion = beta, pixel_loss(criterion)

    def loss(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        pred = ctx.forward(batch.x)
        fit = self.criterion(pred, batch.y, reduction=ctx.config.reduction)
        distill = self.criterion(pred, batch.teacher_y, reduction=ctx.config.reduction)
        ctx.metrics["fit"], ctx.metrics["distill"] = fit.detach(), distill.detach()
        return fit + self.beta * distill
