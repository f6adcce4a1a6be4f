"""Options shared by the commands that train (``train``, ``finetune``): one decorator each, one config builder."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ._common import STRATEGIES, TRAINING_PRESETS, force_option, seed_option

#: the trainer settings the shared options set (the click parameter name is the TrainConfig field)
CONFIG_OPTIONS = ("steps", "batch_size", "patch_size", "lr", "optimizer", "scheduler", "grad_clip", "ckpt_every",
                  "val_every")


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
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


def training_options(f: Callable) -> Callable:
    """Data, budget, optimiser, preset, ``--set``, resume, output, seed and force (every training command)."""
    options = [
        click.option("--data", default="default", show_default=True,
                     help="'default' (bundled photos) or a folder of HR images / HR+LR pairs."),
        click.option("--degradation", type=click.Choice(["bi", "bd", "dn"]), default="bi", show_default=True),
        click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--patch-size", type=click.IntRange(min=4), default=96, show_default=True,
                     help="HR patch side (px)."),
        click.option("--lr", type=float, default=2e-4, show_default=True, help="Learning rate (peak for onecycle)."),
        click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True),
        click.option("--scheduler", type=click.Choice(["none", "step", "onecycle"]), default="none",
                     show_default=True),
        click.option("--grad-clip", type=float, default=0.0, show_default=True, help="Max gradient norm (0 = off)."),
        click.option("--ckpt-every", type=click.IntRange(min=0), default=500, show_default=True,
                     help="Save resumable state every N steps into <output>.train/."),
        click.option("--val-every", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Y-PSNR on the validation images (of --data) every N steps, shown and kept in the "
                          "history (0 = off)."),
        click.option("--preset", type=TRAINING_PRESETS, default=None,
                     help="Start from a paper's schedule; options given explicitly override it."),
        click.option("--set", "extra", multiple=True, metavar="KEY=VALUE",
                     help="Any other trainer setting (repeatable), e.g. --set step_size=200 --set gamma=0.5."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run of the same output exactly."),
        click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                     help="Trained checkpoint (.pt)."),
        seed_option,
        force_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def strategy_options(*, default: str | None) -> Callable[[Callable], Callable]:
    """``--strategy`` (required when ``default`` is None), ``--opt`` key=value, ``--teacher``, ``--teacher-scale``."""

    # click 8.3+: an explicit default=None satisfies required=True, so pass one or the other
    chosen: dict[str, Any] = {"default": default, "show_default": True} if default else {"required": True}

    def deco(f: Callable) -> Callable:
        options = [
            click.option("--strategy", type=STRATEGIES, **chosen,
                         help="Training strategy (see docs/strategies.md)."),
            click.option("--opt", "opts", multiple=True, metavar="KEY=VALUE",
                         help="Strategy option (repeatable; JSON values), e.g. --opt beta=0.1 --opt init=zeros."),
            click.option("--teacher", type=click.Path(dir_okay=False), default=None,
                         help="Teacher checkpoint (any supported format) for the strategies that use one."),
            click.option("--teacher-scale", type=click.IntRange(2, 4), default=None,
                         help="Override the teacher's scale (one VDSR file serves ×2, ×3 and ×4)."),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return deco


def train_config(settings: dict[str, Any], *, preset: str | None, extra: tuple[str, ...], seed: int) -> Any:
    """The TrainConfig of a command: preset ← options given on the command line ← ``--set`` (and ``--seed``).

    An option left at its default does not override the preset (``--preset ail-official`` keeps lr 0.1)."""
    from ..ops.train import train_config as build
    from ..train.presets import preset_settings

    ctx = click.get_current_context()
    base = preset_settings(preset)
    given = {k: settings[k] for k in CONFIG_OPTIONS
             if k in settings and (ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT or k not in base)}
    return build(preset=preset, settings={**given, **parse_pairs(extra, "--set"), "seed": seed}, seed=seed)
