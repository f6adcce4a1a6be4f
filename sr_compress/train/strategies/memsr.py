"""MemSR's initialisation-aware feature distillation (docs/plainify.md).

``loss = L1(S(x), y) + c_e · mean_i MSE(M_i(F_i^S), F_i^T)`` over the student layers that have a bridge — every
decomposed layer, i.e. all but the last two features (the last body layer, kept at teacher width, and the
tail). ``M_i`` is a trainable 1×1 conv (``teacher state ≈ M_i·student feature + b_i``) initialised from the
bridges ``plainify`` stores beside the student's weights (``bridges="winning"``) or at random
(``bridges="random"``, the paper's FDInit ablation). ``c_e = c0 · decay^(epoch / E)`` (epoch = whole epochs
completed, E = the run's total epochs), so it decays per epoch (the released config runs one long epoch and
never decays).

Scale (**choice**, documented): features are compared in 0–255 units and the feature term is divided by 255,
which keeps the official balance of ``L1 + 0.3·MSE`` computed on 0–255 data, with our L1 on [0, 1] images.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...models.capture import capture_outputs
from ..losses import pixel_loss
from .base import Batch, Strategy, TrainContext, register_strategy

BRIDGE_INITS = ("winning", "random")


@register_strategy("memsr")
class MemSRStrategy(Strategy):
    """L1 + decaying bridged feature MSE to the residual teacher's states (needs the plainify bridges)."""

    needs_teacher_features = True

    def __init__(self, bridges: str = "winning", c0: float = 0.3, decay: float = 1e-5) -> None:
        if bridges not in BRIDGE_INITS:
            raise ConfigError(f"memsr: bridges must be one of {', '.join(BRIDGE_INITS)}, got {bridges!r}")
        if not (c0 >= 0 and 0 < decay <= 1):
            raise ConfigError(f"memsr: need c0 ≥ 0 and 0 < decay ≤ 1, got c0={c0}, decay={decay}")
        super().__init__(bridges=bridges, c0=float(c0), decay=float(decay))
        self._spec: list[dict[str, Any]] | None = None
        self._weights: list[nn.Parameter] = []
        self._biases: list[nn.Parameter] = []

    # -- where the bridges come from ---------------------------------------------------------------------------
    def use_checkpoint_extra(self, extra: dict[str, Any]) -> None:
        spec = extra.get("bridges")
        if not spec:
            raise ConfigError("memsr needs the bridges that `srcompress plainify` stores beside the student's "
                              "weights; this student checkpoint has none (make it with srcompress plainify)")
        try:
            self._spec = [{"weight": torch.as_tensor(b["weight"]).detach().clone().float(),
                           "bias": torch.as_tensor(b["bias"]).detach().clone().float(),
                           "teacher_modules": [str(m) for m in b["teacher_modules"]],
                           "student_module": str(b["student_module"])} for b in spec]
        except (KeyError, TypeError) as e:
            raise ConfigError(f"memsr: malformed bridges entry in the checkpoint ({e})") from None
        for i, b in enumerate(self._spec):
            if b["weight"].dim() != 2 or b["bias"].shape != (b["weight"].shape[0],):
                raise ConfigError(f"memsr: bridge {i} has weight {tuple(b['weight'].shape)} and bias "
                                  f"{tuple(b['bias'].shape)}; expected (C, r) and (C,)")

    def teacher_feature_names(self, teacher: nn.Module) -> list[str]:
        """The teacher modules whose outputs form the bridged states, in the teacher's forward order."""
        self._require_spec()
        names = {m for b in self._spec for m in b["teacher_modules"]}
        modules = [n for n, _ in teacher.named_modules()]  # definition order = forward order for EDSR
        missing = sorted(names - set(modules))
        if missing:
            raise ConfigError(f"memsr: the teacher has no module(s) {missing[:3]} named by the bridges; "
                              f"use the teacher the student was plainified from")
        self._teacher_order = _forward_order(teacher, names)
        return self._teacher_order

    def on_train_start(self, ctx: TrainContext) -> None:
        self._require_spec()
        if self._weights:
            return
        modules = dict(ctx.model.named_modules())
        g = torch.Generator().manual_seed(int(ctx.config.seed) + 7919)
        for i, b in enumerate(self._spec):
            conv = getattr(modules.get(b["student_module"]), "conv", None)
            c, r = b["weight"].shape
            if conv is None or conv.out_channels != r:
                raise ConfigError(f"memsr: bridge {i} expects {r} channels from student layer "
                                  f"{b['student_module']!r}, which has "
                                  f"{getattr(conv, 'out_channels', 'no conv')}; use the plainify output's bridges")
            if self.params["bridges"] == "winning":
                w, bias = b["weight"], b["bias"]
            else:  # nn.Conv2d's default 1×1 init: U(±1/sqrt(r)) for weight and bias
                bound = 1.0 / math.sqrt(r)
                w = (torch.rand(c, r, generator=g) * 2 - 1) * bound
                bias = (torch.rand(c, generator=g) * 2 - 1) * bound
            self._weights.append(nn.Parameter(w.clone().to(ctx.device)))
            self._biases.append(nn.Parameter(bias.clone().to(ctx.device)))

    def extra_params(self) -> list[nn.Parameter]:
        return [p for pair in zip(self._weights, self._biases, strict=True) for p in pair]

    def coefficient(self, ctx: TrainContext) -> float:
        """``c0 · decay^(e / E)``: e = whole epochs completed (``floor(ctx.epoch)``), E = ``ctx.total_epochs``."""
        total = ctx.total_epochs
        return self.params["c0"] * self.params["decay"] ** (math.floor(ctx.epoch) / total if total > 0 else 0.0)

    # -- the loss ------------------------------------------------------------------------------------------------
    def loss(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        self._require_spec()
        names = [b["student_module"] for b in self._spec]
        with capture_outputs(ctx.model, names) as feats:
            pred = ctx.forward(batch.x)
        pixel = pixel_loss("l1")(pred, batch.y, reduction=ctx.config.reduction)
        if batch.teacher_features is None:
            raise ConfigError("memsr: the trainer gave no teacher features (is a teacher set?)")
        teacher = dict(zip(self._teacher_order, batch.teacher_features, strict=True))
        unit = 255.0 / float(ctx.model.hparams.get("img_range", 1.0) or 1.0)
        terms = []
        for b, s, w, bias in zip(self._spec, feats, self._weights, self._biases, strict=True):
            target = torch.cat([teacher[m] for m in b["teacher_modules"]], 1)
            est = F.conv2d(s, w[:, :, None, None], bias)
            terms.append(F.mse_loss(est * unit, target * unit))
        feat = torch.stack(terms).mean() / 255.0
        c_e = self.coefficient(ctx)
        ctx.metrics["pixel"] = pixel.detach()
        ctx.metrics["feature_mse"] = feat.detach()
        ctx.metrics["c_e"] = c_e
        return pixel + c_e * feat

    def _require_spec(self) -> None:
        if self._spec is None:
            raise ConfigError("memsr needs the plainify bridges: train the student checkpoint written by "
                              "`srcompress plainify` (its bridges reach the strategy through the checkpoint)")


def _forward_order(teacher: nn.Module, names: set[str]) -> list[str]:
    """``names`` in the order a forward pass produces them (probed once on a tiny input)."""
    order: list[str] = []
    modules = dict(teacher.named_modules())
    handles = [modules[n].register_forward_hook(lambda _m, _i, _o, n=n: order.append(n)) for n in names]
    try:
        p = next(teacher.parameters())
        x = torch.zeros(1, int(getattr(teacher, "channels", 3)), 4, 4, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            teacher(x)
    finally:
        for h in handles:
            h.remove()
    seen: list[str] = []
    for n in order:
        if n not in seen:
            seen.append(n)
    return seen
