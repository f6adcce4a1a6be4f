"""Training toys shared by the trainer and strategy tests: a deterministic patch source, tiny models, a small
trainer config, and a way to interrupt a run at a given step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sr_compress.train.trainer import TrainConfig

from .models import tiny_model

BATCH, PATCH = 4, 12  # LR patch side of the toy source


class ToySource:
    """Smooth random HR crops (a pure function of seed and step) and their box-downsampled LR."""

    def __init__(self, scale: int = 2, batch_size: int = BATCH, seed: int = 0) -> None:
        self.scale, self.batch_size, self.seed = scale, batch_size, seed

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        n = PATCH * self.scale
        coarse = torch.rand(self.batch_size, 3, n // 4, n // 4, generator=g)
        hr = F.interpolate(coarse, size=(n, n), mode="bilinear", align_corners=False)
        return F.avg_pool2d(hr, self.scale)[rank::world_size], hr[rank::world_size]


def tiny(arch: str = "edsr", seed: int = 0, **over) -> nn.Module:
    return tiny_model(arch, 2, seed, **over)


def config(**kw) -> TrainConfig:
    base = {"steps": 6, "batch_size": BATCH, "patch_size": 2 * PATCH, "lr": 1e-3, "log_every": 1,
            "ckpt_every": 0, "device": "cpu"}
    return TrainConfig(**{**base, **kw})


class Crash(Exception):
    pass


def crash_at(step: int):
    def progress(record):
        if record["step"] == step:
            raise Crash

    return progress
