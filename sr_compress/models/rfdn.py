"""RFDN (Liu et al., "Residual Feature Distillation Network for Lightweight Image Super-Resolution",
ECCV-W / AIM 2020 efficient-SR winner): residual feature distillation blocks with enhanced spatial attention.

Layer order and constants from the released code (njulj/RFDN ``block.py`` ``RFDB`` / ``ESA``, ``RFDN.py``):
LeakyReLU slope 0.05; in each block three steps of a 1×1 distillation conv (→ d) and a 3×3 conv with a
shallow residual (``lrelu(conv(x) + x)``), a last 3×3 conv (→ d), concat (4·d), 1×1 conv, ESA; the block
outputs are concatenated and fused (1×1 + LeakyReLU, 3×3, + head), then one conv + PixelShuffle.

Range: the released AIM 2020 weights take RGB in **[0, 255]** (upstream ``uint2tensor4`` divides by 1.0) and
return [0, 255]; the model scales by ``img_range`` inside ``forward`` so it keeps our [0, 1] boundary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ESA
from .base import SRModel, check_scale
from .blocks import conv
from .registry import register_model

SLOPE = 0.05


class RFDB(nn.Module):
    """One residual feature distillation block (upstream ``RFDB``): ``d`` distilled channels per step."""

    def __init__(self, n_feats: int, d: int, esa_feats: int) -> None:
        super().__init__()
        self.c1_d, self.c1_r = conv(n_feats, d, 1), conv(n_feats, n_feats)
        self.c2_d, self.c2_r = conv(n_feats, d, 1), conv(n_feats, n_feats)
        self.c3_d, self.c3_r = conv(n_feats, d, 1), conv(n_feats, n_feats)
        self.c4 = conv(n_feats, d)
        self.c5 = conv(4 * d, n_feats, 1)
        self.esa = ESA(n_feats, (esa_feats,) * 3, rfdn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, SLOPE)

        d1, r1 = act(self.c1_d(x)), act(self.c1_r(x) + x)
        d2, r2 = act(self.c2_d(r1)), act(self.c2_r(r1) + r1)
        d3, r3 = act(self.c3_d(r2)), act(self.c3_r(r2) + r2)
        return self.esa(self.c5(torch.cat([d1, d2, d3, act(self.c4(r3))], dim=1)))


@register_model("rfdn")
class RFDN(SRModel):
    """``head → RFDB × n_blocks → lrelu(fuse(concat)) → body_conv (+ head) → tail``, computing in
    ``[0, img_range]`` (the input is multiplied by ``img_range`` and the output divided by it)."""

    depth_hparam = None  # the fuse conv reads every block's output: no block can be dropped
    per_block_hparams = {}
    min_size = ESA.MIN_SIZE
    global_context = ("its spatial attention (ESA) pools on a stride-2 / stride-3 grid and resizes back to the "
                      "image size, so the result depends on the image size and the position in it")
    plainify_refusal = ("it is not a residual chain of convs: its blocks concatenate distilled features and "
                        "gate them with a spatial attention (strided conv, max-pool, bilinear resize, sigmoid)")

    def __init__(self, scale: int = 4, n_feats: int = 50, n_blocks: int = 4, channels: int = 3,
                 distilled: int | None = None, esa_feats: int | None = None, img_range: float = 255.0) -> None:
        scale = check_scale(scale)
        d = n_feats // 2 if distilled is None else int(distilled)
        f = n_feats // 4 if esa_feats is None else int(esa_feats)
        if d < 1 or f < 1 or n_blocks < 1 or float(img_range) <= 0:
            raise ValueError(f"need distilled, esa_feats, n_blocks >= 1 and img_range > 0 (got {d}, {f}, "
                             f"{n_blocks}, {img_range})")
        super().__init__(scale=scale, n_feats=n_feats, n_blocks=n_blocks, channels=channels, distilled=d,
                         esa_feats=f, img_range=float(img_range))
        self.head = conv(channels, n_feats)
        self.body = nn.ModuleList(RFDB(n_feats, d, f) for _ in range(n_blocks))
        self.fuse = conv(n_feats * n_blocks, n_feats, 1)
        self.body_conv = conv(n_feats, n_feats)
        self.tail = nn.Sequential(conv(n_feats, channels * scale * scale), nn.PixelShuffle(scale))

    @classmethod
    def tiny(cls, scale: int = 2) -> dict:
        return {"scale": scale, "n_feats": 8, "n_blocks": 2, "distilled": 4, "esa_feats": 2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        r = self.hparams["img_range"]
        f = self.head(x * r)
        outs, h = [], f
        for block in self.body:
            h = block(h)
            outs.append(h)
        fused = F.leaky_relu(self.fuse(torch.cat(outs, dim=1)), SLOPE)
        return self.tail(self.body_conv(fused) + f) / r
