"""RLFN (Kong et al., "Residual Local Feature Network for Efficient Super-Resolution", CVPR-W 2022, NTIRE 2022
efficient-SR winner): residual local feature blocks (three 3×3 convs, a local residual, a 1×1 conv, ESA).

Layer order and constants from the released code (bytedance/RLFN ``model/block.py`` ``RLFB`` / ``ESA``,
``model/rlfn.py`` ``RLFN``, ``model/rlfn_ntire.py`` ``RLFN_Prune``): LeakyReLU slope 0.05 after each of the
three 3×3 convs, then ``+ x``, a 1×1 conv ``c5``, ESA (16 channels); ``conv_2`` after the blocks plus the
head output; one conv + PixelShuffle. ``RLFN_Prune`` (the NTIRE submission) is the same network with
``mid_feats`` (48) ≠ ``n_feats`` (46) and 4 blocks.

Range: the released weights take RGB in **[0, 255]** (upstream ``test_demo.py`` multiplies the [0, 1] tensor
by 255) and return [0, 255]; the model scales by ``img_range`` inside ``forward``.

Slimming: one skip group (the head output, every block's local residual and output, ``body_conv``'s output:
all are added to or gate the same channels) and five groups per block (the two mid widths and three ESA
widths). ``block_feats`` holds ``[mid1, mid2, esa1, esa2, esa3]`` per block once widths differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ESA
from .base import SRModel, check_scale
from .blocks import conv
from .groups import ChannelGroup, consumed_by, group, produced_by
from .registry import register_model

SLOPE = 0.05
_BLOCK_GROUPS = ("mid1", "mid2", "esa1", "esa2", "esa3")


class RLFB(nn.Module):
    """One residual local feature block: ``esa(c5(lrelu(c3(lrelu(c2(lrelu(c1 x))))) + x))``."""

    def __init__(self, n_feats: int, widths: Sequence[int]) -> None:
        super().__init__()
        m1, m2, e1, e2, e3 = (int(w) for w in widths)
        self.c1_r = conv(n_feats, m1)
        self.c2_r = conv(m1, m2)
        self.c3_r = conv(m2, n_feats)
        self.c5 = conv(n_feats, n_feats, 1)
        self.esa = ESA(n_feats, (e1, e2, e3), rfdn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.c1_r(x), SLOPE)
        out = F.leaky_relu(self.c2_r(out), SLOPE)
        out = F.leaky_relu(self.c3_r(out), SLOPE) + x
        return self.esa(self.c5(out))


@register_model("rlfn")
class RLFN(SRModel):
    """``head → RLFB × n_blocks → body_conv (+ head) → tail``, computing in ``[0, img_range]``."""

    depth_hparam = None  # kept simple: truncation is not offered (no deep supervision for RLFN here)
    per_block_hparams = {}
    min_size = ESA.MIN_SIZE
    global_context = ("its spatial attention (ESA) pools on a stride-2 / stride-3 grid and resizes back to the "
                      "image size, so the result depends on the image size and the position in it")
    plainify_refusal = ("it is not a residual chain of convs: every block ends in a spatial attention gate "
                        "(strided conv, max-pool, bilinear resize, sigmoid) that multiplies the features")

    def __init__(self, scale: int = 4, n_feats: int = 52, n_blocks: int = 6, channels: int = 3,
                 mid_feats: int | None = None, esa_feats: int = 16, img_range: float = 255.0,
                 block_feats: Sequence[Sequence[int]] | None = None) -> None:
        scale = check_scale(scale)
        mid = n_feats if mid_feats is None else int(mid_feats)
        if block_feats is None:
            widths = [[mid, mid, esa_feats, esa_feats, esa_feats]] * n_blocks
        else:
            widths = [[int(v) for v in w] for w in block_feats]
            if len(widths) != n_blocks or any(len(w) != 5 or min(w) < 1 for w in widths):
                raise ValueError(f"block_feats needs {n_blocks} lists of 5 positive widths "
                                 f"(mid1, mid2, esa1, esa2, esa3), got {block_feats}")
        if min(n_feats, mid, esa_feats, n_blocks) < 1 or float(img_range) <= 0:
            raise ValueError("n_feats, mid_feats, esa_feats and n_blocks must be >= 1, img_range > 0")
        extra = {"block_feats": widths} if block_feats is not None else {}
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, channels=channels, mid_feats=mid,
                         esa_feats=int(esa_feats), img_range=float(img_range), **extra)
        self.head = conv(channels, n_feats)
        self.body = nn.ModuleList(RLFB(n_feats, w) for w in widths)
        self.body_conv = conv(n_feats, n_feats)
        self.tail = nn.Sequential(conv(n_feats, channels * scale * scale), nn.PixelShuffle(scale))

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_blocks": 2, "mid_feats": 6, "esa_feats": 4}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        r = self.hparams["img_range"]
        f = self.head(x * r)
        h = f
        for block in self.body:
            h = block(h)
        return self.tail(self.body_conv(h) + f) / r

    # -- slimming
    def channel_groups(self) -> list[ChannelGroup]:
        n = len(self.body)
        b = [f"body.{i}" for i in range(n)]
        skip = group("skip", self.hparams["n_feats"], produced_by(self, "head"),
                     [produced_by(self, f"{k}.c3_r") for k in b], [produced_by(self, f"{k}.c5") for k in b],
                     produced_by(self, "body_conv"),
                     [consumed_by(self, f"{k}.{c}") for k in b for c in ("c1_r", "c5", "esa.conv1")],
                     [_gate(self, f"{k}.esa.conv4") for k in b],
                     consumed_by(self, "body_conv"), consumed_by(self, "tail.0"))
        groups = [skip]
        for k in b:
            blk = self.get_submodule(k)
            groups += [
                group(f"{k}.mid1", blk.c1_r.out_channels, produced_by(self, f"{k}.c1_r"),
                      consumed_by(self, f"{k}.c2_r")),
                group(f"{k}.mid2", blk.c2_r.out_channels, produced_by(self, f"{k}.c2_r"),
                      consumed_by(self, f"{k}.c3_r")),
                group(f"{k}.esa1", blk.esa.conv1.out_channels, produced_by(self, f"{k}.esa.conv1"),
                      consumed_by(self, f"{k}.esa.conv_f"), consumed_by(self, f"{k}.esa.conv2")),
                group(f"{k}.esa2", blk.esa.conv2.out_channels, produced_by(self, f"{k}.esa.conv2"),
                      consumed_by(self, f"{k}.esa.conv3")),
                group(f"{k}.esa3", blk.esa.conv3.out_channels, produced_by(self, f"{k}.esa.conv3"),
                      produced_by(self, f"{k}.esa.conv_f"), consumed_by(self, f"{k}.esa.conv4")),
            ]
        return groups

    def with_widths(self, widths: dict[str, int]) -> dict:
        n = len(self.body)
        return {**self.hparams, "n_feats": widths["skip"],
                "block_feats": [[widths[f"body.{i}.{g}"] for g in _BLOCK_GROUPS] for i in range(n)]}


def _gate(model: nn.Module, key: str):
    """ESA's conv4 outputs gate the skip channels one to one: cut with them, but not scored (a zero filter
    gives a gate of ½, not a zero channel; the channel's magnitude comes from c5)."""
    m = produced_by(model, key)
    return type(m)(m.key, m.dim, m.expand, bias=m.bias, score=False)
