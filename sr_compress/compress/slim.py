"""Channel slimming by ρ (AIL paper §4; docs/slim.md): same topology, every inner width × (1 − ρ).

Three steps, as in Torch-Pruning but without a generic tracer:

1. **analysis** — the model family declares its coupled channel groups (``SRModel.channel_groups``: the skip
   path of a residual net is one group, each block's inner width its own, a PixelShuffle(r) couples r²
   conv outputs to one feature channel);
2. **scoring** — ``l1``: a group's channel scores the sum, over the convs producing it, of the L1 norm of its
   filter(s); ``random``: a seeded random choice (the paper's baseline);
3. **surgery** — the model is rebuilt from ``with_widths`` (plain data, so it loads like any checkpoint) and
   every tensor keeps the chosen channels of each group it belongs to.

The input and output convs keep their widths (their outer channels are the image's). ``init="scratch"``
keeps the slim architecture but initialises it afresh (seeded): the paper's students start that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.datasets import default_images
from ..errors import ConfigError, VerificationError
from ..infer import to_model_space
from ..metrics import macs_by_module
from ..models import SRModel, build_model, count_params
from ..models.capture import capture_outputs
from ..models.groups import ChannelGroup, Member
from .base import StageReport, record_stage

SELECTS = ("l1", "random")
INITS = ("copy", "scratch")


@dataclass
class SlimReport(StageReport):
    """Per-group widths, per-layer widths/params/MACs before and after, and totals at ``size`` (LR W×H)."""

    size: tuple[int, int] = (320, 180)
    groups: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    gains: dict[str, float] = field(default_factory=dict)  # calibration gain per group (1 = unchanged)


def slim_width(width: int, rho: float, round_to: int = 1) -> int:
    """``round(width·(1−ρ))`` (halves round up), then up to a multiple of ``round_to``, never above ``width``."""
    w = math.floor(width * (1.0 - rho) + 0.5)
    if round_to > 1 and w > 0:
        w = min(width, -(-w // round_to) * round_to)
    return w


def slim(model: SRModel, rho: float, *, select: str = "l1", init: str = "copy", round_to: int = 1, seed: int = 0,
         calibrate: bool = True, size: tuple[int, int] = (320, 180)) -> tuple[SRModel, SlimReport]:
    """A copy of ``model`` with every coupled channel group cut to :func:`slim_width` of its width.

    ``rho`` is the fraction of channels removed, in (0, 1). ``select``: which channels stay (``l1`` the most
    important, ``random`` a seeded random subset); ``init``: ``copy`` their weights from ``model`` or
    ``scratch`` (a fresh seeded initialisation of the slim architecture). ``calibrate`` (with ``copy``):
    rescale each group's producers so the student's activations keep the teacher's magnitude
    (:func:`calibrate_gains`) — without it a deep chain loses a factor at every layer (a 20-layer VDSR cut to
    13 of 64 channels ends with activations ~1e-6 of the teacher's, and does not train). ``size``: the LR
    input size the report counts MACs at. The input model is not changed and the global RNG is not touched.
    """
    _check_args(rho, select, init, round_to)
    groups = model.channel_groups()
    widths = {g.name: slim_width(g.width, rho, round_to) for g in groups}
    empty = [f"{g.name} (width {g.width})" for g in groups if widths[g.name] < 1]
    if empty:
        raise ConfigError(f"ρ = {rho} leaves no channel in {', '.join(empty[:3])}; use a smaller rho")
    keep = choose_channels(model, groups, widths, select=select, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = build_model(model.arch, **model.with_widths(widths)).to(_dtype_device(model))
    gains: dict[str, float] = {}
    if init == "copy":
        _copy_kept(model, new, groups, keep)
        if calibrate:
            was_training = model.training
            gains = calibrate_gains(model.eval(), new, groups, keep, calibration_batch(model, seed=seed))
            model.train(was_training)  # the input model is left as it was
    new.eval()
    params = {"rho": rho, "select": select, "init": init, "round_to": round_to, "seed": seed,
              "calibrate": calibrate}
    record_stage(new, model, "slim", **params, widths=widths)
    report = _report(model, new, groups, widths, params, size)
    report.gains = gains
    return new, report


def _check_args(rho: float, select: str, init: str, round_to: int) -> None:
    if not (isinstance(rho, (int, float)) and 0.0 < float(rho) < 1.0):
        raise ConfigError(f"rho is the fraction of channels removed and must be in (0, 1), got {rho!r}")
    if select not in SELECTS:
        raise ConfigError(f"unknown select {select!r}; choose one of {', '.join(SELECTS)}")
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if not (isinstance(round_to, int) and round_to >= 1):
        raise ConfigError(f"round_to must be a positive integer, got {round_to!r}")


def _dtype_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


# -- scoring ------------------------------------------------------------------------------------------------------
def group_importance(model: nn.Module, g: ChannelGroup) -> torch.Tensor:
    """Group-level L1 importance: per group channel, the summed L1 norms of the filters producing it."""
    state = model.state_dict()
    score = torch.zeros(g.width, dtype=torch.float64)
    for m in g.producers:
        w = state[f"{m.key}.weight"].detach().double().abs()
        per = w.movedim(m.dim, 0).reshape(w.shape[m.dim], -1).sum(1)
        score += per.reshape(g.width, m.expand).sum(1)
    return score


def choose_channels(model: nn.Module, groups: list[ChannelGroup], widths: dict[str, int], *, select: str,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Sorted indices of the channels each group keeps."""
    gen = torch.Generator().manual_seed(seed)
    keep = {}
    for g in groups:
        w = widths[g.name]
        if select == "l1":  # ties keep the lower index (stable sort), so ρ → 0 keeps the model as it is
            order = torch.argsort(-group_importance(model, g), stable=True)
        else:
            order = torch.randperm(g.width, generator=gen)
        keep[g.name] = order[:w].sort().values
    return keep


# -- surgery ------------------------------------------------------------------------------------------------------
def _expanded(idx: torch.Tensor, expand: int) -> torch.Tensor:
    return (idx[:, None] * expand + torch.arange(expand)).reshape(-1)


def _copy_kept(old: nn.Module, new: nn.Module, groups: list[ChannelGroup], keep: dict[str, torch.Tensor]) -> None:
    """Copy every tensor of ``old`` into ``new`` keeping, along each group axis, that group's channels."""
    cuts: dict[str, dict[int, torch.Tensor]] = {}
    for g in groups:
        for m in g.members:
            for key, dim in _member_axes(m):
                if dim in cuts.setdefault(key, {}):
                    raise VerificationError(f"{key} axis {dim} is declared in two channel groups")
                cuts[key][dim] = _expanded(keep[g.name], m.expand)
    state = {}
    for key, t in old.state_dict().items():
        for dim, idx in cuts.get(key, {}).items():
            t = t.index_select(dim, idx.to(t.device))
        state[key] = t
    try:
        new.load_state_dict(state)
    except RuntimeError as e:  # a family's declaration disagrees with its rebuilt shapes: a bug, not user input
        raise VerificationError(f"slimmed weights do not fit the slim {new.arch}: {e}") from None


def _member_axes(m: Member) -> list[tuple[str, int]]:
    axes = [(f"{m.key}.weight", m.dim)]
    if m.bias:
        axes.append((f"{m.key}.bias", 0))
    return axes


# -- calibration --------------------------------------------------------------------------------------------------
def calibration_batch(model: SRModel, *, n: int = 8, side: int = 48, seed: int = 0) -> torch.Tensor:
    """``n`` seeded ``side``² crops of the bundled training photos in ``model``'s input space (Y or RGB)."""

    gen = torch.Generator().manual_seed(seed)
    images = [im.hr for im in default_images("train")]
    crops = []
    for k in range(n):
        hr = images[k % len(images)]
        y = int(torch.randint(0, hr.shape[1] - side + 1, (1,), generator=gen))
        x = int(torch.randint(0, hr.shape[2] - side + 1, (1,), generator=gen))
        crops.append(hr[:, y:y + side, x:x + side])
    return to_model_space(model, torch.stack(crops)).to(_dtype_device(model))


@torch.no_grad()
def calibrate_gains(teacher: nn.Module, student: nn.Module, groups: list[ChannelGroup],
                    keep: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, float]:
    """Per group, in forward order: one gain on all its producers (weights and biases) so that the mean
    absolute output of its first producer on ``x`` equals the teacher's over the kept channels. Exact no-op
    when nothing was cut; activations being positively homogeneous (ReLU, PReLU), a gain passes through them."""

    order = {name: i for i, (name, _) in enumerate(teacher.named_modules())}
    firsts = {g.name: g.producers[0] for g in groups}
    with capture_outputs(teacher, [firsts[g.name].key for g in groups]) as outs:
        teacher(x)
    ref = dict(zip([firsts[g.name].key for g in groups], outs, strict=True))
    gains = {}
    state = student.state_dict()
    for g in sorted(groups, key=lambda g: order[firsts[g.name].key]):
        p = firsts[g.name]
        with capture_outputs(student, [p.key]) as got:
            student(x)
        target = ref[p.key].index_select(1, _expanded(keep[g.name], p.expand).to(x.device)).abs().mean()
        now = got[0].abs().mean()
        gain = float(target / now) if float(now) > 0 and torch.isfinite(target / now) else 1.0
        if gain != 1.0:
            for m in g.producers:
                for key, _dim in _member_axes(m):
                    state[key].mul_(gain)
        gains[g.name] = gain
    return gains


# -- report -------------------------------------------------------------------------------------------------------
def _report(old: SRModel, new: SRModel, groups: list[ChannelGroup], widths: dict[str, int],
            params: dict[str, Any], size: tuple[int, int]) -> SlimReport:

    shape = old.input_shape(size)
    macs_old, macs_new = macs_by_module(old, shape), macs_by_module(new, shape)
    new_mods = dict(new.named_modules())
    layers = []
    for name, m in old.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            n = new_mods[name]
            layers.append({"layer": name, "in": [m.in_channels, n.in_channels], "out": [m.out_channels, n.out_channels],
                           "params": [_own_params(m), _own_params(n)],
                           "macs": [macs_old.get(name, 0), macs_new.get(name, 0)]})
    return SlimReport(
        stage="slim", params=params, size=tuple(size),
        groups=[{"group": g.name, "width": [g.width, widths[g.name]]} for g in groups], layers=layers,
        params_before=count_params(old), params_after=count_params(new),
        macs_before=sum(macs_old.values()), macs_after=sum(macs_new.values()))


def _own_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters(recurse=False))
