"""EDSR (Lim et al. 2017) in the canonical layout shared by EDSR-PyTorch, BasicSR and MMagic."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import DEFAULT_RGB_MEAN, MeanShift, SRModel, check_scale
from .blocks import ResBlock, conv, upsampler, upsampler_convs, upsampler_stages, width_list
from .groups import ChannelGroup, consumed_by, group, produced_by
from .registry import register_model


@register_model("edsr")
class EDSR(SRModel):
    """``sub_mean → head → body (+ body_conv, global skip) → tail (pixel-shuffle upsampler, conv) → add_mean``.

    ``img_range`` is the scale the network computes in: 255 for EDSR-PyTorch and BasicSR weights, 1 for MMagic.
    ``n_feats`` is the width of the skip path; a slimmed model may give each block its own inner width
    (``block_feats``, one per block) and each upsampler stage its own width after the shuffle (``tail_feats``).
    """

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_blocks: int = 16,
        res_scale: float = 1.0,
        channels: int = 3,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DEFAULT_RGB_MEAN,
        block_feats: Sequence[int] | None = None,
        tail_feats: Sequence[int] | None = None,
    ) -> None:
        scale = check_scale(scale)
        rgb_mean = [float(m) for m in rgb_mean]
        if len(rgb_mean) != channels:
            raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {channels} channels")
        inner = width_list(block_feats, n_blocks, n_feats, "block_feats")
        up = width_list(tail_feats, len(upsampler_stages(scale)), n_feats, "tail_feats")
        extra = {"block_feats": inner} if block_feats is not None else {}
        extra.update({"tail_feats": up} if tail_feats is not None else {})
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, res_scale=float(res_scale),
                         channels=channels, img_range=float(img_range), rgb_mean=rgb_mean, **extra)
        self.sub_mean = MeanShift(tuple(rgb_mean), img_range, sign=-1)
        self.head = conv(channels, n_feats)
        self.body = nn.ModuleList(ResBlock(n_feats, res_scale, inner=w) for w in inner)
        self.body_conv = conv(n_feats, n_feats)
        self.tail = nn.Sequential(*upsampler(n_feats, scale, widths=up), conv(up[-1], channels))
        self.add_mean = MeanShift(tuple(rgb_mean), img_range, sign=+1)

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_blocks": 2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(self.sub_mean(x))
        r = f
        for block in self.body:
            r = block(r)
        return self.add_mean(self.tail(self.body_conv(r) + f))

    # -- slimming: one skip group (head, every block's conv2, body_conv, global skip, tail input), one inner
    #    group per block (conv1 out = conv2 in), one group per upsampler stage (r² conv outputs per channel)
    def channel_groups(self) -> list[ChannelGroup]:
        n = len(self.body)
        ups = upsampler_convs("tail", self.scale)
        skip = group("skip", self.hparams["n_feats"], produced_by(self, "head"),
                     [produced_by(self, f"body.{i}.conv2") for i in range(n)], produced_by(self, "body_conv"),
                     [consumed_by(self, f"body.{i}.conv1") for i in range(n)], consumed_by(self, "body_conv"),
                     consumed_by(self, ups[0][0]))
        inner = [group(f"body.{i}", self.body[i].conv1.out_channels, produced_by(self, f"body.{i}.conv1"),
                       consumed_by(self, f"body.{i}.conv2")) for i in range(n)]
        nxt = [k for k, _ in ups[1:]] + [f"tail.{2 * len(ups)}"]
        tail = [group(f"tail.{j}", self.tail[2 * j].out_channels // (r * r), produced_by(self, key, r * r),
                      consumed_by(self, nxt[j])) for j, (key, r) in enumerate(ups)]
        return [skip, *inner, *tail]

    def with_widths(self, widths: dict[str, int]) -> dict:
        n, stages = len(self.body), len(upsampler_stages(self.scale))
        return {**self.hparams, "n_feats": widths["skip"],
                "block_feats": [widths[f"body.{i}"] for i in range(n)],
                "tail_feats": [widths[f"tail.{j}"] for j in range(stages)]}
