"""Exact rewrites that make a plain student quantisable: offset folding and cross-layer range equalisation.

Plainify's mean shift (``shift_coef`` 30) moves every student feature far above zero so its ReLU rarely clips:
a channel whose values span 150–300 sits at an offset of up to ~3,000. An int8 graph has one activation scale
per tensor, so the offsets use up the 8-bit range and each channel keeps a dozen levels. Two rewrites of a
:class:`~sr_compress.models.plain.PlainSR` remove that, layer pair by layer pair (layer i ends in ReLU without a
pixel shuffle, layer i+1 is the next conv):

* **offset folding**. Where channel k's pre-activation ``z_k`` of layer i stays above ``c_k > 0`` on the
  calibration patches, subtract ``c_k`` in layer i's bias and add it back in layer i+1. Then
  ``relu(z_k − c_k) + c_k = relu(z_k)`` **wherever** ``z_k ≥ c_k`` — the exactness condition; it is checked
  on the calibration data (``c_k`` is the calibration minimum less a margin, so unseen images may dip a little
  below the minimum and stay exact) and reported. Adding ``c_k`` back as a bias would be wrong on the border
  ring: layer i+1 reads zeros outside the image, not ``c_k``. So layer i also emits a **constant channel**
  (zero weights, bias U, ReLU keeps it: U inside the image, zero padding outside), and layer i+1 reads it with
  the kernel ``Σ_k c_k·W_{i+1}[:, k] / U`` — exactly the contribution of the removed offsets, border included.
  U is set to the layer's calibrated activation maximum, so the constant channel does not widen the tensor's
  range and is an exact 8-bit level (the top one).
* **cross-layer range equalisation**. A positive per-channel scale commutes with ReLU (and PReLU, LeakyReLU):
  ``relu(s·z) = s·relu(z)``. Scale layer i's output channel k by ``s_k`` and divide layer i+1's input
  channel k by it; exact for every input. ``s_k`` brings each channel's calibrated range to the geometric
  mean of the ranges (capped at ``max_scale`` either way), so no channel dominates the per-tensor scale.

Both keep a :class:`PlainSR` (one more channel per folded layer) and its ONNX graph a plain chain.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models import SRModel

#: margin below the calibration minimum, as a fraction of the channel's calibrated span
DEFAULT_MARGIN = 0.25
DEFAULT_MAX_SCALE = 16.0
#: "exact": folded offsets come back through a constant channel (exact at the borders too); "bias": through
#: the next layer's bias (exact inside the image, not on the border ring; no extra channel, smaller weights)
BORDERS = ("exact", "bias")
_SCALE_INVARIANT = ("relu", "prelu", "lrelu", "identity")


@dataclass
class LayerRewrite:
    """What was done to one layer's output channels."""

    layer: int
    width: int
    folded: int  # channels whose offset was folded
    offset_max: float  # largest folded offset c_k
    range_before: float  # calibrated per-tensor activation range before (max − min over all channels)
    range_after: float
    median_channel_span: float  # median over channels of (max − min), after
    const_value: float | None  # U of the constant channel, None when no channel was folded
    min_margin: float  # smallest (z_k − c_k) over the calibration data for folded channels (≥ 0: exact)


@dataclass
class EqualizeReport:
    layers: list[LayerRewrite] = field(default_factory=list)
    fold: bool = True
    equalize: bool = False
    margin: float = DEFAULT_MARGIN
    max_scale: float = DEFAULT_MAX_SCALE
    border: str = "exact"
    max_abs_diff: float = 0.0  # on the calibration patches, model output units (float32)
    constant_channels: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _layers(model: SRModel) -> list[nn.Module]:
    return [model.head[0], *model.body, *model.tail]


def _is_relu(layer: nn.Module) -> bool:
    return isinstance(layer.act, nn.ReLU)


@torch.no_grad()
def layer_inputs(model: SRModel, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every layer's conv (float64) for a model-space batch ``x``."""
    m = model.double()
    h = m.sub_mean(x.double()) if m.sub_mean is not None else x.double()
    out = []
    for layer in _layers(m):
        out.append(h)
        h = layer(h)
    return out


@torch.no_grad()
def equalize_plain(model: SRModel, calib: torch.Tensor, *, fold: bool = True, equalize: bool = False,
                   margin: float = DEFAULT_MARGIN, max_scale: float = DEFAULT_MAX_SCALE,
                   border: str = "exact") -> tuple[SRModel, EqualizeReport]:
    """The rewritten copy of a ``plain`` model (float32, eval mode) and what was done.

    ``calib``: model-space LR patches (N, C, h, w) for the statistics (offsets, ranges). All arithmetic in
    float64. Only layers ending in an activation without a pixel shuffle and followed by another layer are
    touched; offset folding needs ReLU (a PReLU/LeakyReLU channel is exact only where it does not clip, which
    the same condition gives, but we keep to ReLU), equalisation any scale-invariant activation.
    """
    if model.arch != "plain":
        raise ConfigError(f"equalize_plain rewrites plain models, got {model.arch}")
    if not 0 <= margin < 1 or max_scale < 1:
        raise ConfigError("need 0 ≤ margin < 1 and max_scale ≥ 1")
    if border not in BORDERS:
        raise ConfigError(f"unknown border mode {border!r}; choose one of {', '.join(BORDERS)}")
    ref = copy.deepcopy(model).eval().double()
    work = copy.deepcopy(model).eval().double()
    specs = [dict(s) for s in work.hparams["layers"]]
    report = EqualizeReport(fold=fold, equalize=equalize, margin=margin, max_scale=max_scale, border=border)
    x = calib.double()
    h = work.sub_mean(x) if work.sub_mean is not None else x  # the input of layer i (rewritten network)
    for i in range(len(specs) - 1):
        layers = _layers(work)
        layer, nxt = layers[i], layers[i + 1]
        act = specs[i]["act"]
        if specs[i]["shuffle"] != 1 or act not in _SCALE_INVARIANT:
            h = layer(h)
            continue
        z = layer.conv(h)  # pre-activation of layer i
        zc = z.transpose(0, 1).reshape(z.shape[1], -1)
        a = layer.act(z.clone()).transpose(0, 1).reshape(z.shape[1], -1)
        before = float(a.max() - a.min())
        lo, hi = zc.min(1).values, zc.max(1).values
        c = torch.zeros_like(lo)
        if fold and act == "relu":
            c = torch.where(lo > 0, lo - margin * (hi - lo), torch.zeros_like(lo)).clamp_min(0)
        elif fold and act == "identity":  # no clipping: every channel moves to start at 0, exact for any input
            c = lo
        mask = c != 0
        folded = int(mask.sum())
        min_margin = float((zc - c[:, None])[mask].min()) if folded and act == "relu" else math.inf
        w_next = nxt.conv.weight  # (out, in, k, k)
        corr = torch.einsum("oikl,i->okl", w_next, c)  # Σ_k c_k W[:, k]
        layer.conv.bias -= c
        span = torch.where(mask, hi - c, a.max(1).values - a.min(1).values.clamp_max(0))
        s = torch.ones_like(span)
        if equalize:
            live = span > 1e-12 * max(float(span.max()), 1e-300)
            target = torch.exp(torch.log(span[live]).mean()) if bool(live.any()) else span.new_tensor(1.0)
            s = torch.where(live, (target / span.clamp_min(1e-300)).clamp(1 / max_scale, max_scale), s)
            layer.conv.weight *= s.view(-1, 1, 1, 1)
            layer.conv.bias *= s
            w_next /= s.view(1, -1, 1, 1)
        const = None
        if folded and border == "bias":  # exact inside the image only: the border ring reads zeros, not c
            nxt.conv.bias += corr.sum((1, 2))
        elif folded:
            const = float((span * s).max())
            layer.conv = _add_const_output(layer.conv, const)
            nxt.conv = _add_const_input(nxt.conv, corr / const)
            if isinstance(layer.act, nn.PReLU) and layer.act.weight.numel() > 1:
                layer.act = _extend_prelu(layer.act)
            specs[i]["out"] += 1
            report.constant_channels += 1
        h = layer(h)
        after = h.transpose(0, 1).reshape(h.shape[1], -1)
        spans = (after.max(1).values - after.min(1).values)[:specs[i]["out"] - (1 if folded else 0)]
        report.layers.append(LayerRewrite(
            i, specs[i]["out"], folded, float(c.abs().max()) if folded else 0.0, before,
            float(after.max() - min(float(after.min()), 0.0)), float(spans.median()), const, min_margin))
    out = _rebuild(model, work, specs)
    with torch.no_grad():
        report.max_abs_diff = float((out(calib.float()) - ref.float()(calib.float())).abs().max())
    return out, report


def _add_const_output(conv: nn.Conv2d, value: float) -> nn.Conv2d:
    new = nn.Conv2d(conv.in_channels, conv.out_channels + 1, conv.kernel_size, padding=conv.padding,
                    dtype=conv.weight.dtype)
    new.weight.zero_()
    new.weight[:-1] = conv.weight
    new.bias[:-1] = conv.bias
    new.bias[-1] = value
    return new


def _add_const_input(conv: nn.Conv2d, kernel: torch.Tensor) -> nn.Conv2d:
    new = nn.Conv2d(conv.in_channels + 1, conv.out_channels, conv.kernel_size, padding=conv.padding,
                    dtype=conv.weight.dtype)
    new.weight[:, :-1] = conv.weight
    new.weight[:, -1] = kernel
    new.bias.copy_(conv.bias)
    return new


def _extend_prelu(act: nn.PReLU) -> nn.PReLU:
    new = nn.PReLU(act.weight.numel() + 1).to(act.weight.dtype)
    new.weight[:-1] = act.weight
    new.weight[-1] = 0.0
    return new


def _rebuild(model: SRModel, work: SRModel, specs: list[dict[str, Any]]) -> SRModel:
    """A fresh float32 PlainSR with the new widths, loaded from ``work``'s tensors."""
    from ..models import build_model

    hp = {**model.hparams, "layers": specs}
    out = build_model("plain", **hp)
    out.load_state_dict({k: v.float() for k, v in work.state_dict().items()})
    out.provenance = list(getattr(model, "provenance", []))
    return out.eval()

