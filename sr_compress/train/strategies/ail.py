"""AIL — adaptive importance learning (AIL paper; maths, constants and our choices: docs/strategies.md).

Every pixel (every element: pixel and channel for RGB models) gets an importance ``w ∈ [0, 1]`` that
multiplies prediction and target, ``loss = l(w·S(x), w·y)`` (effective weight w² for MSE):

- round 0: ``w = w0 = g(e)``, ``e = |T(x) − y|`` from the frozen teacher, ``g(e) = z / (1 + exp((e − μ0)·α0))``
  with ``z = 1 + exp(−μ0·α0)`` so that ``g(0) = 1``;
- round t ≥ 1: ``d = σ·|S_{t−1}(x) − y|`` from a frozen snapshot of the student taken when round t started,
  ``w = clamp(w0 + λ_t·exp(−d), 0, 1)``, ``λ_t = λ0 + λ_step·(t − 1)`` — the closed-form minimiser of
  ``d·w + (w − w0)(ln((w − w0)/λ) − 1)`` on ``w0 ≤ w ≤ 1`` (Theorem 1).

Both w0 and d are recomputed for every batch under ``no_grad`` (nothing is stored per pixel), so the data
may be augmented freely. Rounds are the trainer's ``config.rounds`` (each with a fresh optimiser and scheduler).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..losses import PIXEL_LOSSES, pixel_loss
from . import _options as opt
from .base import Batch, Strategy, TrainContext, register_strategy

INITS = ("teacher", "zeros", "random")

#: The official schedule (VDSR release of the AIL paper) as TrainConfig fields: SGD lr 0.1 reset every round,
#: ×0.1 every 10 epochs of 1000 iterations, momentum 0.9, weight decay 1e-4, gradient-norm clip 0.4, summed
#: loss, round 0 (teacher importance) + T = 10 update rounds. ``steps`` is left to the caller (a multiple of 11).
AIL_OFFICIAL: dict[str, Any] = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "grad_clip": 0.4, "reduction": "sum",
    "scheduler": "step", "step_size": 10_000, "gamma": 0.1, "epoch_length": 1000, "rounds": 11,
}


def teacher_importance(err: torch.Tensor, mu0: float = 0.01, alpha0: float = 100.0) -> torch.Tensor:
    """``g(e) = z / (1 + exp((e − μ0)·α0))``, ``z = 1 + exp(−μ0·α0)`` (so ``g(0) = 1``), for errors in [0, 1].

    Written as ``z·sigmoid(−(e − μ0)·α0)``, which does not overflow for large errors."""
    z = 1.0 + math.exp(-mu0 * alpha0)
    return z * torch.sigmoid(-(err - mu0) * alpha0)


def round_lambda(t: int, lambda0: float = 0.15, lambda_step: float = 0.15) -> float:
    """``λ_t = λ0 + λ_step·(t − 1)`` for update round ``t ≥ 1``."""
    return lambda0 + lambda_step * (t - 1)


def update_importance(w0: torch.Tensor, d: torch.Tensor, lam: float) -> torch.Tensor:
    """Theorem 1's minimiser ``clamp(w0 + λ·exp(−d), 0, 1)``."""
    return (w0 + lam * torch.exp(-d)).clamp(0.0, 1.0)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with no trainable parameter (a round's snapshot)."""
    return copy.deepcopy(model).eval().requires_grad_(False)


@register_strategy("ail")
class AILStrategy(Strategy):
    """Importance-weighted pixel loss with importance from the teacher, refined every round (see the module).

    Options: ``init`` (``teacher``; ``zeros`` and ``random`` are the paper's ablations init_0 / init_r and need
    no teacher — random draws w0 ~ U(0, 1) per element from a generator seeded by (seed, step, rank)), ``mu0``,
    ``alpha0``, ``sigma``, ``lambda0``, ``lambda_step``, ``criterion`` (``mse`` as in the paper), ``data_range``
    (the value range errors are divided by before ``g`` and ``σ`` apply: 1 for the trainer's [0, 1] data).
    Reports ``importance`` (mean w of the batch) and ``importance_round`` (mean over the round so far).
    """

    needs_teacher = True

    def __init__(self, init: str = "teacher", mu0: float = 0.01, alpha0: float = 100.0, sigma: float = 10.0,
                 lambda0: float = 0.15, lambda_step: float = 0.15, criterion: str = "mse",
                 data_range: float = 1.0) -> None:
        init = opt.choice("ail", "init", init, INITS)
        mu0 = opt.number("ail", "mu0", mu0)
        alpha0 = opt.number("ail", "alpha0", alpha0, positive=True)
        sigma = opt.number("ail", "sigma", sigma, minimum=0.0)
        lambda0 = opt.number("ail", "lambda0", lambda0, minimum=0.0)
        lambda_step = opt.number("ail", "lambda_step", lambda_step, minimum=0.0)
        criterion = opt.choice("ail", "criterion", criterion, list(PIXEL_LOSSES))
        data_range = opt.number("ail", "data_range", data_range, positive=True)
        super().__init__(init=init, mu0=mu0, alpha0=alpha0, sigma=sigma, lambda0=lambda0,
                         lambda_step=lambda_step, criterion=criterion, data_range=data_range)
        self.init, self.mu0, self.alpha0, self.sigma = init, mu0, alpha0, sigma
        self.lambda0, self.lambda_step, self.data_range = lambda0, lambda_step, data_range
        self.criterion = pixel_loss(criterion)
        self.needs_teacher = init == "teacher"  # the ablations run without one
        self.snapshot: nn.Module | None = None
        self._model: nn.Module | None = None
        self._device: torch.device | None = None
        self._round_sum, self._round_n = 0.0, 0

    # -- the maths, per batch -------------------------------------------------------------------------------------
    @torch.no_grad()
    def initial_importance(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        """w0 for this batch (round 0's importance)."""
        if self.init == "teacher":
            return teacher_importance((batch.teacher_y - batch.y).abs() / self.data_range, self.mu0, self.alpha0)
        if self.init == "zeros":
            return torch.zeros_like(batch.y)
        g = torch.Generator().manual_seed((ctx.config.seed * 1_000_003 + ctx.step) * 131 + ctx.rank)
        return torch.rand(batch.y.shape, generator=g).to(batch.y.device)

    @torch.no_grad()
    def importance(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        """w for this batch: w0 in round 0, Theorem 1's update from the round's snapshot afterwards."""
        w0 = self.initial_importance(ctx, batch)
        if ctx.round == 0:
            return w0
        if self.snapshot is None:
            raise ConfigError(f"ail: round {ctx.round} has no snapshot of the previous round's student")
        d = self.sigma * (self.snapshot(batch.x) - batch.y).abs() / self.data_range
        return update_importance(w0, d, round_lambda(ctx.round, self.lambda0, self.lambda_step))

    def loss(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        w = self.importance(ctx, batch)
        pred = ctx.forward(batch.x)
        mean_w = float(w.mean())
        self._round_sum, self._round_n = self._round_sum + mean_w, self._round_n + 1
        ctx.metrics["importance"] = mean_w
        ctx.metrics["importance_round"] = self._round_sum / self._round_n
        return self.criterion(pred, batch.y, weight=w, reduction=ctx.config.reduction)

    # -- rounds and state -----------------------------------------------------------------------------------------
    def on_train_start(self, ctx: TrainContext) -> None:
        self._model, self._device = ctx.model, ctx.device

    def on_round_start(self, ctx: TrainContext) -> None:
        """Round t ≥ 1 freezes the student as it ended round t − 1 (S_{t−1}); round 0 needs none."""
        self.snapshot = frozen_copy(ctx.model) if ctx.round > 0 else None
        self._round_sum, self._round_n = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        snap = {k: v.detach().clone() for k, v in self.snapshot.state_dict().items()} if self.snapshot else {}
        return {"snapshot": snap, "round_sum": self._round_sum, "round_n": self._round_n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._round_sum, self._round_n = float(state["round_sum"]), int(state["round_n"])
        self.snapshot = None
        if state["snapshot"]:
            if self._model is None:
                raise ConfigError("ail: state restored before training started (on_train_start)")
            snap = frozen_copy(self._model)
            snap.load_state_dict(state["snapshot"])
            self.snapshot = snap.to(self._device)
