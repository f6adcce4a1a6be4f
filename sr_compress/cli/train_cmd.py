"""``srcompress train``: train a new model (or continue a checkpoint) with the one trainer."""

from __future__ import annotations

from typing import Any

import click

from ._common import MODELS, console, stage_option
from ._training import OP, parse_pairs, strategy_options, teacher_overrides, train_config, training_options


@click.command("train")
@click.option("--arch", type=MODELS, default=None, help="Model family for a new model.")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
              help="Start from this checkpoint instead of a new model (any supported format).")
@stage_option("--scale", type=click.IntRange(2, 4), default_from=OP + "scale",
              help="Upscaling factor [default: 2 for a new model; an --init checkpoint's own, which it must match].")
@click.option("--hparam", "hparams", multiple=True, metavar="KEY=VALUE",
              help="Model hyper-parameter (repeatable; JSON values), e.g. --hparam n_feats=32.")
@strategy_options(required=False)
@training_options
def train(arch: str | None, init: str | None, scale: int, hparams: tuple[str, ...], strategy: str,
          opts: tuple[str, ...], teacher: str | None, teacher_scale: int | None, data: str, degradation: str,
          preset: str | None, extra: tuple[str, ...], resume: bool, cache_dir: str | None, output: str, seed: int,
          force: bool,
          **settings: Any) -> None:
    """Train a super-resolution model on the bundled photos or your images.

    \b
    Examples:
      srcompress train --arch edsr --scale 2 --hparam n_feats=32 --hparam n_blocks=4 -o teacher.pt
      srcompress train --arch vdsr --scale 3 --data ~/DIV2K/DIV2K_train_HR --steps 20000 -o vdsr.pt
      srcompress train --arch vdsr --hparam n_feats=13 --strategy kd --teacher vdsr.pt -o student.pt
      srcompress train ... -o teacher.pt --resume        # after an interruption
    """
    from ..ops.train import is_main_process
    from ..ops.train import train as train_op
    from ._progress import training_progress

    teacher_over = teacher_overrides(settings)
    config = train_config(settings, preset=preset, extra=extra, seed=seed)
    with training_progress() as progress:
        out = train_op(out=output, config=config, arch=arch, init=init, scale=scale,
                       hparams=parse_pairs(hparams, "--hparam"), data=data, degradation=degradation,
                       strategy=strategy, strategy_options=parse_pairs(opts, "--opt"), teacher=teacher,
                       teacher_scale=teacher_scale, teacher_overrides=teacher_over, resume=resume, force=force,
                       progress=progress, cache_dir=cache_dir, cache_progress=progress)
    if is_main_process():
        console.print(f"trained {out.model.arch} ×{out.model.scale} for {out.steps} steps in {out.seconds:.0f} s "
                      f"(final loss {out.final_loss:.4g}) → {out.path}")
        if out.teacher_cache is not None:
            c = out.teacher_cache
            console.print(f"teacher outputs stored once per image: {c.built} built, {c.reused} reused, "
                          f"{c.bytes / 2**20:.1f} MiB in {c.root or 'memory'}")
