"""Helper of tests/train/test_ddp.py: one tiny training run, as a single process or under torchrun.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/_ddp_train.py OUT_DIR`` trains
twice (mean, then sum reduction; each fit joins and leaves the process group itself), then a tiny ASRN with the
multi-output forward (``dsl_psd``), and writes OUT_DIR/{mean,sum,dsl_psd}/last.pt from rank 0.
The test imports it for the single-process runs of the same global batch.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from sr_compress.models import build_model, tiny_hparams
from sr_compress.train.trainer import TrainConfig, Trainer, TrainResult

BATCH, PATCH, SCALE, STEPS = 4, 12, 2, 6


class ToySource:
    """Smooth random HR crops (a pure function of seed and step) and their 2×2 box-downsampled LR."""

    def __init__(self, batch_size: int = BATCH, patch: int = PATCH, scale: int = SCALE, seed: int = 0) -> None:
        self.batch_size, self.patch, self.scale, self.seed = batch_size, patch, scale, seed

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        n = self.patch * self.scale
        coarse = torch.rand(self.batch_size, 3, n // 4, n // 4, generator=g)
        hr = F.interpolate(coarse, size=(n, n), mode="bilinear", align_corners=False)
        lr = F.avg_pool2d(hr, self.scale)
        return lr[rank::world_size], hr[rank::world_size]


def initial_model():
    torch.manual_seed(0)
    return build_model("edsr", **tiny_hparams("edsr", SCALE))


def run(out_dir: str, reduction: str = "mean") -> TrainResult:
    """Train a tiny EDSR for STEPS steps on the toy data (same start weights in every process): Adam with
    clipping for the mean reduction, plain SGD for the sum (whose update size depends on the gradient's scale)."""
    model = initial_model()
    if reduction == "mean":
        opt = {"optimizer": "adam", "lr": 1e-3, "grad_clip": 1.0}
    else:
        opt = {"optimizer": "sgd", "lr": 2e-5, "momentum": 0.9}
    config = TrainConfig(steps=STEPS, batch_size=BATCH, patch_size=PATCH, reduction=reduction,
                         ckpt_every=0, log_every=1, device="cpu", **opt)
    return Trainer(model, "l1", ToySource(), config, out_dir=out_dir, force=True).fit()


def run_multi_depth(out_dir: str) -> TrainResult:
    """A tiny ASRN trained with ``dsl_psd`` (every depth's output through ``ctx.forward_depths``, i.e. DDP)."""
    torch.manual_seed(0)
    model = build_model("asrn", **tiny_hparams("asrn", SCALE))
    config = TrainConfig(steps=STEPS, batch_size=BATCH, patch_size=PATCH, optimizer="adam", lr=1e-3,
                         ckpt_every=0, log_every=1, device="cpu")
    return Trainer(model, "dsl_psd", ToySource(), config, out_dir=out_dir, force=True).fit()


if __name__ == "__main__":
    torch.set_num_threads(1)
    for reduction in ("mean", "sum"):
        run(f"{sys.argv[1]}/{reduction}", reduction)
    run_multi_depth(f"{sys.argv[1]}/dsl_psd")
