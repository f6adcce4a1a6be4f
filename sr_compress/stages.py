"""The stage kinds recipes can use. Each is a thin adapter from typed params to a workflow function."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .config import from_dict
from .errors import ConfigError
from .fileio import atomic_write_text
from .recipes import StageContext, StageOutput, register_stage


@dataclass
class TrainParams:
    """A ``train`` stage: a new ``arch`` (with ``hparams``) or a checkpoint ``init`` trained further."""

    arch: str | None = None
    init: str | None = None
    scale: int = 2
    hparams: dict = field(default_factory=dict)
    data: str = "default"
    degradation: str = "bi"
    strategy: str = "l1"
    strategy_options: dict = field(default_factory=dict)
    teacher: str | None = None
    train: dict = field(default_factory=dict)  # sr_compress.train.trainer.TrainConfig fields


@register_stage("train", TrainParams, inputs=("init", "teacher"))
def train_stage(p: TrainParams, ctx: StageContext) -> StageOutput:
    from .train.trainer import TrainConfig
    from .workflows import load_model, new_model, train_model

    if (p.arch is None) == (p.init is None):
        raise ConfigError(f"stage {ctx.stage.id}: give exactly one of arch (new model) or init (a checkpoint)")
    config = from_dict(TrainConfig, {"seed": ctx.seed, **p.train}, f"stage {ctx.stage.id}.train")
    if p.arch is not None:
        model = new_model(p.arch, scale=p.scale, hparams=p.hparams, seed=config.seed)
    else:
        model = load_model(ctx.resolve(p.init)).model
    teacher = load_model(ctx.resolve(p.teacher)).model if p.teacher else None
    out = train_model(model, out=ctx.folder / "model.pt", config=config, data=p.data, degradation=p.degradation,
                      strategy=p.strategy, strategy_options=p.strategy_options, teacher=teacher, force=True,
                      progress=ctx.progress)
    return StageOutput(out.path, {"steps": out.steps, "final_loss": out.final_loss})


@dataclass
class EvalParams:
    """An ``eval`` stage: scores of ``model`` ("@id" or a path) on ``data``."""

    model: str
    data: str = "default"
    degradation: str = "bi"
    bicubic: bool = True


@register_stage("eval", EvalParams, inputs=("model",))
def eval_stage(p: EvalParams, ctx: StageContext) -> StageOutput:
    from .workflows import evaluate, load_model

    reports = evaluate(load_model(ctx.resolve(p.model)).model, data=p.data, degradation=p.degradation,
                       with_bicubic=p.bicubic, label=p.model)
    path = ctx.folder / "eval.json"
    atomic_write_text(path, json.dumps([r.to_dict() for r in reports], indent=2), force=True)
    summary: dict[str, Any] = {"psnr_y": reports[0].mean.psnr_y, "ssim_y": reports[0].mean.ssim_y}
    if p.bicubic:
        summary["bicubic_psnr_y"] = reports[1].mean.psnr_y
    return StageOutput(path, summary)
