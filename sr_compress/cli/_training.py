"""Options shared by the commands that train (``train``, ``finetune``): one decorator each, one config builder."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ._common import (
    DEGRADATIONS,
    OPTIMIZERS,
    SCHEDULERS,
    STRATEGIES,
    TRAINING_PRESETS,
    force_option,
    seed_option,
    stage_option,
)
from ._types import NON_NEGATIVE, POSITIVE

D = "sr_compress.ops.train:COMMAND_DEFAULTS:"  # the trainer's defaults, as the commands use them
OP = "sr_compress.ops.train:TRAIN_DEFAULTS:"  # the train operation's own

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
        stage_option("--degradation", type=DEGRADATIONS, default_from=OP + "degradation"),
        stage_option("--steps", type=click.IntRange(min=1), default_from=D + "steps"),
        stage_option("--batch-size", type=click.IntRange(1, 4096), default_from=D + "batch_size"),
        stage_option("--patch-size", type=click.IntRange(4, 2048), default_from=D + "patch_size",
                     help="HR patch side (px)."),
        stage_option("--lr", type=POSITIVE, default_from=D + "lr", help="Learning rate (peak for onecycle)."),
        stage_option("--optimizer", type=OPTIMIZERS, default_from=D + "optimizer"),
        stage_option("--scheduler", type=SCHEDULERS, default_from=D + "scheduler"),
        stage_option("--grad-clip", type=NON_NEGATIVE, default_from=D + "grad_clip",
                     help="Max gradient norm (0 = off)."),
        stage_option("--ckpt-every", type=click.IntRange(min=0), default_from=D + "ckpt_every",
                     help="Save resumable state every N steps into <output>.train/."),
        stage_option("--val-every", type=click.IntRange(min=0), default_from=D + "val_every",
                     help="Y-PSNR on the validation images (of --data) every N steps, shown and kept in the "
                          "history (0 = off)."),
        click.option("--preset", type=TRAINING_PRESETS, default=None,
                     help="Start from a paper's schedule; options given explicitly override it."),
        click.option("--set", "extra", multiple=True, metavar="KEY=VALUE",
                     help="Any other trainer setting (repeatable), e.g. --set step_size=200 --set gamma=0.5."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run of the same output exactly."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Where a --data folder's images are decoded once (uint8 .npy, keyed by file content; "
                          "default $SRCOMPRESS_CACHE or ~/.cache/srcompress/images; never inside the data "
                          "folder)."),
        click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                     help="Trained checkpoint (.pt)."),
        seed_option,
        force_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def strategy_options(*, required: bool) -> Callable[[Callable], Callable]:
    """``--strategy`` (required, or the train operation's default), ``--opt`` key=value, ``--teacher``,
    ``--teacher-scale``, ``--teacher-input-range`` / ``--teacher-colour`` (ONNX teachers), ``--teacher-cache``
    (the commands hand those to :func:`teacher_overrides`; ``train_config`` reads ``teacher_cache``)."""
    help_ = "Training strategy (see docs/strategies.md)."
    strategy = (click.option("--strategy", type=STRATEGIES, required=True, help=help_) if required else
                stage_option("--strategy", type=STRATEGIES, default_from=OP + "strategy", help=help_))

    def deco(f: Callable) -> Callable:
        options = [
            strategy,
            click.option("--opt", "opts", multiple=True, metavar="KEY=VALUE",
                         help="Strategy option (repeatable; JSON values), e.g. --opt beta=0.1 --opt init=zeros."),
            click.option("--teacher", type=click.Path(dir_okay=False), default=None,
                         help="Teacher checkpoint (any supported format) for the strategies that use one."),
            click.option("--teacher-scale", type=click.IntRange(2, 4), default=None,
                         help="Override the teacher's scale (one VDSR file serves ×2, ×3 and ×4)."),
            click.option("--teacher-input-range", type=click.Choice(["1", "255"]), default=None,
                         help="ONNX teacher: the range its input takes, where the graph does not show it."),
            click.option("--teacher-colour", type=click.Choice(["rgb", "y"]), default=None,
                         help="ONNX teacher: its colour, where the graph's channel axis is symbolic."),
            click.option("--teacher-cache/--no-teacher-cache", "teacher_cache", default=None,
                         help="kd/ail: read the teacher's output from outputs stored once per training image "
                              "(default where the data allows; docs/training.md §5), or run it per batch."),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return deco


def teacher_overrides(settings: dict[str, Any]) -> dict[str, Any]:
    """``--teacher-input-range`` / ``--teacher-colour`` as load overrides of the teacher (taken out of
    ``settings``)."""
    rng, colour = settings.pop("teacher_input_range", None), settings.pop("teacher_colour", None)
    return {k: v for k, v in (("input_range", float(rng) if rng else None), ("colour", colour)) if v is not None}


def train_config(settings: dict[str, Any], *, preset: str | None, extra: tuple[str, ...], seed: int) -> Any:
    """The TrainConfig of a command: preset ← options given on the command line ← ``--set`` (and ``--seed``).

    An option left at its default does not override the preset (``--preset ail-official`` keeps lr 0.1)."""
    from ..ops.train import train_config as build
    from ..train.presets import preset_settings

    ctx = click.get_current_context()
    base = preset_settings(preset)
    given = {k: settings[k] for k in CONFIG_OPTIONS
             if k in settings and (ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT or k not in base)}
    cache = settings.get("teacher_cache")
    if cache is not None:
        given["teacher_cache"] = "on" if cache else "off"
    return build(preset=preset, settings={**given, **parse_pairs(extra, "--set"), "seed": seed}, seed=seed)
