"""ASRN's training objective: deep supervision (DSL) and progressive self-distillation (PSD), docs/asrn.md.

``L = L_routine + L_DSL + λ·L_PSD`` on a multi-depth model (``ctx.forward_depths``): ``L_routine`` is the pixel
loss of the full-depth output, ``L_DSL`` the mean pixel loss of the intermediate outputs (the shared upsampler
after blocks 1..N-1), and ``L_PSD`` makes each block's attention map follow the next block's (a stop-gradient
on the teacher side). ``dsl=False, psd=False`` is the paper's "SS" baseline (only the last output is
supervised); ``psd_mode="deepest"`` (every block follows the last one) is our ablation.
"""

from __future__ import annotations

import torch

from ...errors import ConfigError
from ..losses import PIXEL_LOSSES, pixel_loss
from .base import Batch, Strategy, TrainContext, register_strategy

PSD_MODES = ("next", "deepest")


def attention_map(f: torch.Tensor) -> torch.Tensor:
    """``a(F) = Σ_c |F_c|`` of an (N, C, h, w) feature map, flattened to (N, h·w) and L2-normalised per sample."""
    a = f.abs().sum(dim=1).flatten(1)
    return a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)


def psd_loss(features: list[torch.Tensor], mode: str = "next", reduction: str = "mean") -> torch.Tensor:
    """``Σ_pairs mean_batch ‖a(student) − stopgrad(a(teacher))‖₂`` over the blocks' outputs F_1..F_N.

    ``next``: pairs (F_{n-1}, F_n) for n = 2..N (the next block teaches the previous one);
    ``deepest``: pairs (F_n, F_N) for n = 1..N-1. ``reduction="sum"`` sums over the batch instead.
    Zero for a single block. Gradients reach only the student side of each pair.
    """
    if mode not in PSD_MODES:
        raise ConfigError(f"psd_mode must be one of {', '.join(PSD_MODES)}, got {mode!r}")
    maps = [attention_map(f) for f in features]
    pairs = zip(maps[:-1], maps[1:], strict=True) if mode == "next" else ((m, maps[-1]) for m in maps[:-1])
    total = features[-1].new_zeros(())
    for student, teacher in pairs:
        dist = (student - teacher.detach()).norm(dim=1)
        total = total + (dist.sum() if reduction == "sum" else dist.mean())
    return total


@register_strategy("dsl_psd")
class DslPsdStrategy(Strategy):
    """Deep supervision + progressive self-distillation for multi-depth models (ASRN).

    ``dsl``: add the mean loss of the intermediate outputs; ``psd``: add ``lam`` × the PSD loss;
    ``psd_mode``: ``next`` (paper) or ``deepest`` (ablation); ``criterion``: the pixel loss (l1, mse, charbonnier).
    Metrics per step: ``l_routine``, ``l_dsl``, ``l_psd``.
    """

    def __init__(self, dsl: bool = True, psd: bool = True, lam: float = 0.1, psd_mode: str = "next",
                 criterion: str = "l1") -> None:
        if psd_mode not in PSD_MODES:
            raise ConfigError(f"dsl_psd: psd_mode must be one of {', '.join(PSD_MODES)}, got {psd_mode!r}")
        if criterion not in PIXEL_LOSSES:
            raise ConfigError(f"dsl_psd: criterion must be one of {', '.join(PIXEL_LOSSES)}, got {criterion!r}")
        if not (isinstance(lam, (int, float)) and lam >= 0):
            raise ConfigError(f"dsl_psd: lam must be a number >= 0, got {lam!r}")
        super().__init__(dsl=bool(dsl), psd=bool(psd), lam=float(lam), psd_mode=psd_mode, criterion=criterion)

    @property
    def deeply_supervised(self) -> bool:
        """Whether the intermediate depths were trained (what truncate checks in provenance)."""
        return bool(self.params["dsl"] or self.params["psd"])

    def loss(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        out = ctx.forward_depths(batch.x)
        f, red, p = pixel_loss(self.params["criterion"]), ctx.config.reduction, self.params
        routine = f(out.outputs[-1], batch.y, reduction=red)
        total, ctx.metrics["l_routine"] = routine, routine.detach()
        if p["dsl"] and len(out.outputs) > 1:
            dsl = torch.stack([f(o, batch.y, reduction=red) for o in out.outputs[:-1]]).mean()
            total, ctx.metrics["l_dsl"] = total + dsl, dsl.detach()
        if p["psd"] and len(out.features) > 1:
            psd = psd_loss(out.features, p["psd_mode"], red)
            total, ctx.metrics["l_psd"] = total + p["lam"] * psd, psd.detach()
        return total
