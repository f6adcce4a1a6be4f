"""MSRResNet (BasicSR's SRResNet without batch norm): residual body, LeakyReLU upsampler, bilinear skip."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel, check_scale
from .blocks import ResBlock, conv, upsampler, upsampler_convs, upsampler_stages, width_list
from .groups import ChannelGroup, consumed_by, group, produced_by
from .registry import register_model


@register_model("msrresnet")
class MSRResNet(SRModel):
    """``lrelu(conv_first) → body → lrelu upsampler → lrelu(conv_hr) → conv_last``, plus bilinear(x)."""
    plainify_refusal = ("its global skip adds a bilinear upsampling of the input image (F.interpolate in forward) and "
                        "its activations are LeakyReLU (body.*.act) — neither is a conv / ReLU / add / pixel shuffle")

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 16, channels: int = 3,
                 block_feats: Sequence[int] | None = None, tail_feats: Sequence[int] | None = None) -> None:
        scale = check_scale(scale)
        inner = width_list(block_feats, n_blocks, n_feats, "block_feats")
        tail = width_list(tail_feats, len(upsampler_stages(scale)) + 1, n_feats, "tail_feats (stages + conv_hr)")
        extra = {"block_feats": inner} if block_feats is not None else {}
        extra.update({"tail_feats": tail} if tail_feats is not None else {})
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, channels=channels, **extra)
        self.head = nn.Sequential(conv(channels, n_feats), nn.LeakyReLU(0.1, inplace=True))
        self.body = nn.ModuleList(ResBlock(n_feats, inner=w) for w in inner)
        self.tail = nn.Sequential(
            *upsampler(n_feats, scale, act="lrelu", widths=tail[:-1]),
            conv(tail[-2], tail[-1]), nn.LeakyReLU(0.1, inplace=True),
            conv(tail[-1], channels),
        )

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_blocks": 2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.head(x)
        for block in self.body:
            r = block(r)
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.tail(r) + base

    # -- slimming: the skip group (head, every block's conv2, tail input), one inner group per block, one per
    #    upsampler stage (r² outputs per channel) and conv_hr's output
    def channel_groups(self) -> list[ChannelGroup]:
        n = len(self.body)
        ups = upsampler_convs("tail", self.scale, act=True)
        hr = f"tail.{3 * len(ups)}"
        skip = group("skip", self.hparams["n_feats"], produced_by(self, "head.0"),
                     [produced_by(self, f"body.{i}.conv2") for i in range(n)],
                     [consumed_by(self, f"body.{i}.conv1") for i in range(n)], consumed_by(self, ups[0][0]))
        inner = [group(f"body.{i}", self.body[i].conv1.out_channels, produced_by(self, f"body.{i}.conv1"),
                       consumed_by(self, f"body.{i}.conv2")) for i in range(n)]
        nxt = [k for k, _ in ups[1:]] + [hr]
        tail = [group(f"tail.{j}", self.get_submodule(key).out_channels // (r * r), produced_by(self, key, r * r),
                      consumed_by(self, nxt[j])) for j, (key, r) in enumerate(ups)]
        last = group("tail.hr", self.get_submodule(hr).out_channels, produced_by(self, hr),
                     consumed_by(self, f"tail.{3 * len(ups) + 2}"))
        return [skip, *inner, *tail, last]

    def with_widths(self, widths: dict[str, int]) -> dict:
        n, stages = len(self.body), len(upsampler_stages(self.scale))
        return {**self.hparams, "n_feats": widths["skip"], "block_feats": [widths[f"body.{i}"] for i in range(n)],
                "tail_feats": [widths[f"tail.{j}"] for j in range(stages)] + [widths["tail.hr"]]}
