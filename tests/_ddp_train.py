"""Helper of tests/train/test_ddp.py: one tiny training run, as a single process or under torchrun.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/_ddp_train.py OUT_DIR`` trains
twice (mean, then sum reduction; each fit joins and leaves the process group itself), then a tiny ASRN with the
multi-output forward (``dsl_psd``), then KD from stored teacher outputs (``teacher_cache`` on: rank 0 builds
the entries, rank 1 reuses them), and writes OUT_DIR/{mean,sum,dsl_psd,kd_cached}/last.pt from rank 0.
multi-output forward (``dsl_psd``), then the EDSR on image files through the cached loader, and writes
OUT_DIR/{mean,sum,dsl_psd}/last.pt and OUT_DIR/cached/run/last.pt from rank 0.
The test imports it for the single-process runs of the same global batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def run_kd_cached(out_dir: str) -> TrainResult:
    """KD with the teacher's outputs stored once per image and cropped by the PatchSampler."""
    from sr_compress.data.datasets import NamedImage, PatchSampler

    g = torch.Generator().manual_seed(7)
    images = [NamedImage(f"im{i}", torch.rand(3, 32 + 4 * i, 28, generator=g)) for i in range(3)]
    sampler = PatchSampler(images, SCALE, PATCH * SCALE, BATCH, seed=2)
    torch.manual_seed(1)
    teacher = build_model("edsr", **tiny_hparams("edsr", SCALE))
    config = TrainConfig(steps=STEPS, batch_size=BATCH, patch_size=PATCH, optimizer="adam", lr=1e-3,
                         ckpt_every=0, log_every=1, device="cpu", teacher_cache="on")
    return Trainer(initial_model(), "kd", sampler, config, teacher=teacher, out_dir=out_dir, force=True).fit()
def make_images(folder: Path) -> Path:
    """Three small deterministic PNGs; every process writes them (atomically), as ranks sharing a disk would."""
    import os

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    for i in range(3):
        arr = g.integers(0, 256, (40 + 4 * i, 44, 3), dtype=np.uint8)
        tmp = folder / f".im{i}.{os.getpid()}.png"
        Image.fromarray(arr).save(tmp)
        os.replace(tmp, folder / f"im{i}.png")
    return folder


def run_cached(out_dir: str) -> TrainResult:
    """The tiny EDSR on image files through the uint8 cache and the prefetching loader; under torchrun both
    ranks build the same cache folder at once (content-keyed, atomic renames)."""
    from sr_compress.data.cache import cached_sampler
    from sr_compress.data.layouts import detect_layout

    data = make_images(Path(out_dir) / "data")
    source = cached_sampler(detect_layout(data, SCALE, "train"), SCALE, PATCH * SCALE, BATCH,
                            cache_dir=Path(out_dir) / "cache", prefetch=2, workers=1)
    config = TrainConfig(steps=STEPS, batch_size=BATCH, patch_size=PATCH * SCALE, optimizer="adam", lr=1e-3,
                         grad_clip=1.0, ckpt_every=0, log_every=1, device="cpu")
    try:
        return Trainer(initial_model(), "l1", source, config, out_dir=f"{out_dir}/run", force=True).fit()
    finally:
        source.close()


if __name__ == "__main__":
    torch.set_num_threads(1)
    for reduction in ("mean", "sum"):
        run(f"{sys.argv[1]}/{reduction}", reduction)
    run_multi_depth(f"{sys.argv[1]}/dsl_psd")
    run_kd_cached(f"{sys.argv[1]}/kd_cached")
    run_cached(f"{sys.argv[1]}/cached")
