"""The plain SR network the compression stages emit: a chain of conv → activation (→ pixel shuffle).

No skip connections: peak activation memory is the input plus the output of the widest layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .base import MeanShift, SRModel, check_scale
from .blocks import ACTIVATIONS, activation
from .groups import ChannelGroup, consumed_by, group, per_channel, produced_by
from .registry import register_model


class PlainLayer(nn.Module):
    """``conv(k×k, zero padding) → activation → PixelShuffle(shuffle)``."""

    def __init__(self, c_in: int, out: int, act: str = "relu", shuffle: int = 1, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, out, k, padding=k // 2)
        self.act = activation(act, out)
        self.shuffle = nn.PixelShuffle(shuffle) if shuffle > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.act(self.conv(x)))


def _normalise(layer: Any) -> dict[str, Any]:
    if isinstance(layer, int):
        layer = {"out": layer}
    if not isinstance(layer, dict) or "out" not in layer:
        raise ValueError(f"each layer is {{out, act, shuffle, k}} or an int width, got {layer!r}")
    extra = set(layer) - {"out", "act", "shuffle", "k"}
    if extra:
        raise ValueError(f"unknown layer key(s) {sorted(extra)}")
    spec = {"out": int(layer["out"]), "act": str(layer.get("act", "relu")),
            "shuffle": int(layer.get("shuffle", 1)), "k": int(layer.get("k", 3))}
    if spec["act"] not in ACTIVATIONS:
        raise ValueError(f"unknown activation {spec['act']!r}; choose one of {', '.join(ACTIVATIONS)}")
    if spec["out"] < 1 or spec["k"] < 1 or spec["k"] % 2 == 0 or spec["shuffle"] < 1:
        raise ValueError(f"invalid layer {layer!r}: out ≥ 1, odd k, shuffle ≥ 1")
    if spec["out"] % (spec["shuffle"] ** 2):
        raise ValueError(f"layer {layer!r}: out must be a multiple of shuffle²")
    return spec


def plain_layers(depth: int, width: int, scale: int, channels: int = 3, act: str = "relu") -> list[dict]:
    """``depth`` convs of ``width`` (+act) then one conv to ``channels·scale²`` and PixelShuffle(scale)."""
    return [{"out": width, "act": act} for _ in range(depth)] + [
        {"out": channels * scale * scale, "act": "identity", "shuffle": scale}
    ]


@register_model("plain")
class PlainSR(SRModel):
    """Any list of per-layer widths/activations/shuffles; optional mean shift around the chain.

    ``layers``: default ``plain_layers(34, 64, scale, channels)`` (MemSR's 35-conv student); else a list of
    ``{"out": int, "act": "relu"|"identity"|"prelu"|"lrelu", "shuffle": int, "k": int}`` (or int widths).
    ``n_tail`` last layers form ``tail``; the first is ``head``; the rest are ``body`` (a ModuleList).
    """
    plainify_refusal = "it is already a plain chain"

    plain = True

    def __init__(self, scale: int = 2, layers: Sequence[Any] | None = None, channels: int = 3, n_tail: int = 1,
                 img_range: float = 1.0, rgb_mean: Sequence[float] | None = None) -> None:
        scale = check_scale(scale)
        if layers is None:  # MemSR's 35-conv plain student (docs/benchmarks.md): 34 × (conv 64 + ReLU), conv + shuffle
            layers = plain_layers(34, 64, scale, channels)
        specs = [_normalise(layer) for layer in layers]
        if len(specs) < n_tail + 1 or n_tail < 1:
            raise ValueError(f"need at least {n_tail + 1} layers (head + {n_tail} tail), got {len(specs)}")
        total = math.prod(s["shuffle"] for s in specs)
        if total != scale:
            raise ValueError(f"the layers' pixel shuffles multiply to {total}, but scale is {scale}")
        if specs[-1]["out"] // specs[-1]["shuffle"] ** 2 != channels:
            raise ValueError(f"the last layer must output {channels} channels after its shuffle")
        mean = None if rgb_mean is None else [float(m) for m in rgb_mean]
        super().__init__(scale=scale, layers=specs, channels=channels, n_tail=n_tail,
                         img_range=float(img_range), rgb_mean=mean)
        mods, c = [], channels
        for s in specs:
            mods.append(PlainLayer(c, s["out"], s["act"], s["shuffle"], s["k"]))
            c = s["out"] // s["shuffle"] ** 2
        self.head = nn.Sequential(mods[0])
        self.body = nn.ModuleList(mods[1:-n_tail])
        self.tail = nn.Sequential(*mods[-n_tail:])
        self.sub_mean = MeanShift(tuple(mean), img_range, -1) if mean is not None else None
        self.add_mean = MeanShift(tuple(mean), img_range, +1) if mean is not None else None

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "layers": plain_layers(3, 8, scale)}

    # -- slimming: each layer's output is a group (r² conv outputs per channel before a shuffle), but the last
    def _layer_keys(self) -> list[str]:
        n_body = len(self.body)
        return ["head.0"] + [f"body.{i}" for i in range(n_body)] + [f"tail.{i}" for i in range(len(self.tail))]

    def channel_groups(self) -> list[ChannelGroup]:
        keys, specs = self._layer_keys(), self.hparams["layers"]
        out = []
        for i, (key, nxt) in enumerate(zip(keys[:-1], keys[1:], strict=True)):
            r2 = specs[i]["shuffle"] ** 2
            out.append(group(f"layer{i}", specs[i]["out"] // r2, produced_by(self, f"{key}.conv", r2),
                             per_channel(self, f"{key}.act", r2), consumed_by(self, f"{nxt}.conv")))
        return out

    def with_widths(self, widths: dict[str, int]) -> dict:
        layers = [dict(s) for s in self.hparams["layers"]]
        for i, spec in enumerate(layers[:-1]):
            spec["out"] = widths[f"layer{i}"] * spec["shuffle"] ** 2
        return {**self.hparams, "layers": layers}

    def truncated_hparams(self, blocks: int) -> dict[str, Any]:
        """Head, the first ``blocks`` body layers and the tail (the widths must still line up)."""
        layers, n_tail = self.hparams["layers"], self.hparams["n_tail"]
        return {**self.hparams, "layers": [*layers[:1 + blocks], *layers[len(layers) - n_tail:]]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sub_mean is not None:
            x = self.sub_mean(x)
        x = self.head(x)
        for layer in self.body:
            x = layer(x)
        x = self.tail(x)
        if self.add_mean is not None:
            x = self.add_mean(x)
        return x
