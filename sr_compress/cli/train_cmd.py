"""``srcompress train``: train a new model (or continue a checkpoint) with the one trainer."""

from __future__ import annotations

import json
from typing import Any

import click

from ._common import console, force_option, seed_option


def _parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """("n_feats=32", "rgb_mean=[0.5,0.5,0.5]") → {"n_feats": 32, ...}; values are JSON, else strings."""
    from ..errors import ConfigError

    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} must look like key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@click.command("train")
@click.option("--arch", default=None, help="Model family for a new model (edsr, vdsr, fsrcnn, msrresnet, plain).")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
              help="Start from this checkpoint instead of a new model (any supported format).")
@click.option("--scale", type=click.IntRange(2, 4), default=2, show_default=True, help="Upscaling factor.")
@click.option("--hparam", "hparams", multiple=True, metavar="KEY=VALUE",
              help="Model hyper-parameter (repeatable; JSON values), e.g. --hparam n_feats=32.")
@click.option("--data", default="default", show_default=True,
              help="'default' (bundled photos) or a folder of HR images / HR+LR pairs.")
@click.option("--degradation", type=click.Choice(["bi", "bd", "dn"]), default="bi", show_default=True)
@click.option("--strategy", default="l1", show_default=True, help="Training strategy (loss + hooks).")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--patch-size", type=click.IntRange(min=4), default=96, show_default=True, help="HR patch side (px).")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Learning rate (peak for onecycle).")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--scheduler", type=click.Choice(["none", "step", "onecycle"]), default="none", show_default=True)
@click.option("--grad-clip", type=float, default=0.0, show_default=True, help="Max gradient norm (0 = off).")
@click.option("--ckpt-every", type=click.IntRange(min=0), default=500, show_default=True,
              help="Save resumable state every N steps into <output>.train/.")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE",
              help="Any other trainer setting (repeatable), e.g. --set step_size=200 --set gamma=0.5.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run of the same output exactly.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Trained checkpoint (.pt).")
@seed_option
@force_option
def train(arch: str | None, init: str | None, scale: int, hparams: tuple[str, ...], data: str, degradation: str,
          strategy: str, extra: tuple[str, ...], resume: bool, output: str, seed: int, force: bool,
          **settings: Any) -> None:
    """Train a super-resolution model on the bundled photos or your images.

    \b
    Examples:
      srcompress train --arch edsr --scale 2 --hparam n_feats=32 --hparam n_blocks=4 -o teacher.pt
      srcompress train --arch vdsr --scale 3 --data ~/DIV2K/DIV2K_train_HR --steps 20000 -o vdsr.pt
      srcompress train ... -o teacher.pt --resume        # after an interruption
    """
    from ..errors import ConfigError
    from ..train.trainer import TrainConfig
    from ..workflows import is_main_process, load_model, new_model, train_model
    from ._progress import training_progress

    if (arch is None) == (init is None):
        raise ConfigError("give exactly one of --arch (a new model) or --init (a checkpoint to train further)")
    config = TrainConfig.from_dict({**settings, **_parse_pairs(extra, "--set"), "seed": seed})
    if init:
        if hparams:
            raise ConfigError("--hparam applies to new models (--arch), not to --init checkpoints")
        model = load_model(init).model
    else:
        model = new_model(arch, scale=scale, hparams=_parse_pairs(hparams, "--hparam"), seed=seed)
    with training_progress() as progress:
        out = train_model(model, out=output, config=config, data=data, degradation=degradation,
                          strategy=strategy, resume=resume, force=force, progress=progress)
    if is_main_process():
        console.print(f"trained {out.model.arch} ×{out.model.scale} for {out.steps} steps in {out.seconds:.0f} s "
                      f"(final loss {out.final_loss:.4g}) → {out.path}")
