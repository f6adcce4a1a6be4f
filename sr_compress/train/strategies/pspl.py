"""PSPL — pixel-level self-paced learning (PSPL paper; maths, constants and our choices: docs/strategies.md).

``m_s = SSIM(SR, HR)`` per pixel and channel (:func:`~sr_compress.train.losses.training_ssim_map`, detached),
attention ``m_a = γ·exp(−((m_s − μ)/δ)²)`` with ``δ = α·age + β``, loss ``L1(m_a·SR, m_a·HR)``. ``age`` is the trainer's
``ctx.epoch`` (epochs elapsed as a fraction, advanced every iteration; ``epoch_length`` iterations per epoch,
1000 in the official code) — it is a function of the step, so it survives a resume by construction. As δ
grows, m_a → γ everywhere and PSPL becomes plain L1 (scaled by γ).
"""

from __future__ import annotations

import torch

from ..losses import l1_loss, training_ssim_map
from . import _options as opt
from .base import Batch, Strategy, TrainContext, register_strategy

SSIM_RANGES = ("proper", "faithful")
DELTA_MIN = 1e-6  # δ = 0 (age 0 with β = 0) would divide by zero: the map is then ~0 except where m_s = μ


def pspl_delta(age: float, alpha: float = 1.0, beta: float = 0.0) -> float:
    """``δ = α·age + β``, guarded to at least ``DELTA_MIN``."""
    return max(alpha * age + beta, DELTA_MIN)


def pspl_attention(m_s: torch.Tensor, delta: float, gamma: float = 2.0, mu: float = -1.0) -> torch.Tensor:
    """``γ·exp(−((m_s − μ)/δ)²)`` (detached)."""
    return (gamma * torch.exp(-((m_s.detach() - mu) / delta) ** 2)).detach()


@register_strategy("pspl")
class PSPLStrategy(Strategy):
    """L1 weighted per pixel by an SSIM-driven attention that fades to uniform as training ages.

    Options: ``gamma`` (2), ``mu`` (−1), ``alpha`` (1), ``beta`` (0) and ``ssim_range``: ``proper`` (default,
    our choice) computes SSIM on [0, 1] data with the constants meant for [0, 1]; ``faithful`` reproduces the
    official code, which feeds 0–255 values to those same constants (so they are 255² times too small and the
    map is noisy in flat regions). Reports ``attention`` (mean m_a), ``ssim`` (mean m_s), ``delta`` and ``age``.
    """

    def __init__(self, gamma: float = 2.0, mu: float = -1.0, alpha: float = 1.0, beta: float = 0.0,
                 ssim_range: str = "proper") -> None:
        gamma = opt.number("pspl", "gamma", gamma, positive=True)
        mu = opt.number("pspl", "mu", mu)
        alpha = opt.number("pspl", "alpha", alpha, minimum=0.0)
        beta = opt.number("pspl", "beta", beta)
        ssim_range = opt.choice("pspl", "ssim_range", ssim_range, SSIM_RANGES)
        super().__init__(gamma=gamma, mu=mu, alpha=alpha, beta=beta, ssim_range=ssim_range)
        self.gamma, self.mu, self.alpha, self.beta, self.ssim_range = gamma, mu, alpha, beta, ssim_range

    def similarity(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """m_s on [0, 1] model-space data (``faithful``: the official 0–255 values with [0, 1] constants)."""
        if self.ssim_range == "faithful":
            return training_ssim_map(pred * 255.0, target * 255.0, data_range=1.0)
        return training_ssim_map(pred, target, data_range=1.0)

    def attention(self, pred: torch.Tensor, target: torch.Tensor, age: float) -> torch.Tensor:
        delta = pspl_delta(age, self.alpha, self.beta)
        return pspl_attention(self.similarity(pred, target), delta, self.gamma, self.mu)

    def loss(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        pred = ctx.forward(batch.x)
        age = ctx.epoch
        m_s = self.similarity(pred, batch.y)
        delta = pspl_delta(age, self.alpha, self.beta)
        m_a = pspl_attention(m_s, delta, self.gamma, self.mu)
        ctx.metrics.update(attention=float(m_a.mean()), ssim=float(m_s.mean()), delta=delta, age=age)
        return l1_loss(pred, batch.y, weight=m_a, reduction=ctx.config.reduction)
