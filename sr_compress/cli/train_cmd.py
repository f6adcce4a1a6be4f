"""``srcompress train``: train a new model (or continue a checkpoint) with the one trainer."""

from __future__ import annotations

from typing import Any

import click

from ._common import console
from ._training import parse_pairs, strategy_options, train_config, training_options

_parse_pairs = parse_pairs  # older name, kept for importers


@click.command("train")
@click.option("--arch", default=None, help="Model family for a new model (edsr, vdsr, fsrcnn, msrresnet, plain).")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
              help="Start from this checkpoint instead of a new model (any supported format).")
@click.option("--scale", type=click.IntRange(2, 4), default=2, show_default=True, help="Upscaling factor.")
@click.option("--hparam", "hparams", multiple=True, metavar="KEY=VALUE",
              help="Model hyper-parameter (repeatable; JSON values), e.g. --hparam n_feats=32.")
@strategy_options(default="l1")
@training_options
def train(arch: str | None, init: str | None, scale: int, hparams: tuple[str, ...], strategy: str,
          opts: tuple[str, ...], teacher: str | None, teacher_scale: int | None, data: str, degradation: str,
          preset: str | None, extra: tuple[str, ...], resume: bool, output: str, seed: int, force: bool,
          **settings: Any) -> None:
    """Train a super-resolution model on the bundled photos or your images.

    \b
    Examples:
      srcompress train --arch edsr --scale 2 --hparam n_feats=32 --hparam n_blocks=4 -o teacher.pt
      srcompress train --arch vdsr --scale 3 --data ~/DIV2K/DIV2K_train_HR --steps 20000 -o vdsr.pt
      srcompress train --arch vdsr --hparam n_feats=13 --strategy kd --teacher vdsr.pt -o student.pt
      srcompress train ... -o teacher.pt --resume        # after an interruption
    """
    from ..errors import ConfigError
    from ..workflows import is_main_process, load_model, new_model, train_model
    from ._progress import training_progress

    if (arch is None) == (init is None):
        raise ConfigError("give exactly one of --arch (a new model) or --init (a checkpoint to train further)")
    config = train_config(settings, preset=preset, extra=extra, seed=seed)
    extra_entries: dict[str, Any] = {}
    if init:
        if hparams:
            raise ConfigError("--hparam applies to new models (--arch), not to --init checkpoints")
        loaded = load_model(init)
        model, extra_entries = loaded.model, loaded.extra
    else:
        model = new_model(arch, scale=scale, hparams=parse_pairs(hparams, "--hparam"), seed=seed)
    t = load_model(teacher, overrides={"scale": teacher_scale}).model if teacher else None
    with training_progress() as progress:
        out = train_model(model, out=output, config=config, data=data, degradation=degradation,
                          strategy=strategy, strategy_options=parse_pairs(opts, "--opt"), teacher=t,
                          student_extra=extra_entries, resume=resume, force=force, progress=progress,
                          inputs=(init, teacher))
    if is_main_process():
        console.print(f"trained {out.model.arch} ×{out.model.scale} for {out.steps} steps in {out.seconds:.0f} s "
                      f"(final loss {out.final_loss:.4g}) → {out.path}")
