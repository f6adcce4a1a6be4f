"""Helper of tests/train/test_memsr.py: a tiny memsr fine-tuning run, as one process or under torchrun.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/_ddp_memsr.py OUT_DIR`` writes
OUT_DIR/last.pt from rank 0; the test imports :func:`run` for the single-process run of the same global batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _ddp_train import ToySource  # noqa: E402

from sr_compress.compress.plainify import plainify  # noqa: E402
from sr_compress.models import build_model  # noqa: E402
from sr_compress.train.strategies import build_strategy  # noqa: E402
from sr_compress.train.trainer import TrainConfig, Trainer, TrainResult  # noqa: E402

STEPS = 6


def setup(bridges: str = "winning"):
    """(teacher, student, strategy): a tiny EDSR, its plainified student and a memsr strategy with its bridges."""
    torch.manual_seed(0)
    teacher = build_model("edsr", scale=2, n_feats=6, n_blocks=2).eval()
    out = plainify(teacher, eps=0.05, calibration=ToySource(batch_size=4, patch=16).batch(0)[0])
    strategy = build_strategy("memsr", bridges=bridges)
    strategy.use_checkpoint_extra(out.extra)
    return teacher, out.model, strategy


def config(**kw) -> TrainConfig:
    base = {"steps": STEPS, "batch_size": 4, "patch_size": 24, "lr": 2e-3, "scheduler": "onecycle",
            "ckpt_every": 0, "log_every": 1, "epoch_length": 2, "device": "cpu"}
    return TrainConfig(**{**base, **kw})


def run(out_dir: str, **kw) -> tuple[TrainResult, object]:
    teacher, student, strategy = setup()
    result = Trainer(student, strategy, ToySource(), config(**kw), teacher=teacher, out_dir=out_dir,
                     force=True).fit()
    return result, strategy


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(sys.argv[1])
