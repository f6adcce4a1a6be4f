"""The stage kinds recipes can use. Each is a thin adapter from typed params to a workflow function."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def __post_init__(self) -> None:
        from .train.trainer import TrainConfig

        TrainConfig.from_dict(self.train)  # report bad trainer settings when the recipe is read


@register_stage("train", TrainParams, inputs=("init", "teacher", "data"))
def train_stage(p: TrainParams, ctx: StageContext) -> StageOutput:
    from .train.trainer import TrainConfig
    from .workflows import load_model, new_model, train_model

    if (p.arch is None) == (p.init is None):
        raise ConfigError(f"stage {ctx.stage.id}: give exactly one of arch (new model) or init (a checkpoint)")
    config = TrainConfig.from_dict({"seed": ctx.seed, **p.train})
    extra: dict[str, Any] = {}
    if p.arch is not None:
        model = new_model(p.arch, scale=p.scale, hparams=p.hparams, seed=config.seed)
    else:
        loaded = load_model(ctx.resolve(p.init))
        model, extra = loaded.model, loaded.extra  # e.g. plainify's bridges for strategy memsr
    teacher = load_model(ctx.resolve(p.teacher)).model if p.teacher else None
    out = train_model(model, out=ctx.folder / "model.pt", config=config, data=ctx.data(p.data),
                      degradation=p.degradation, strategy=p.strategy, strategy_options=p.strategy_options,
                      teacher=teacher, student_extra=extra, force=True, progress=ctx.progress)
    return StageOutput(out.path, {"steps": out.steps, "final_loss": out.final_loss})


@dataclass
class FinetuneParams:
    """A ``finetune`` stage: the checkpoint ``model`` ("@id" or a path) trained further with ``strategy``.

    ``teacher`` ("@id" or a path) for the strategies that use one; ``strategy_options`` (e.g. ``{init =
    "zeros"}``) and ``preset`` (``ail-official``) are parameters, so they are part of the cache key like the
    teacher's and the student's contents."""

    model: str
    strategy: str
    teacher: str | None = None
    teacher_scale: int | None = None
    strategy_options: dict = field(default_factory=dict)
    preset: str | None = None
    data: str = "default"
    degradation: str = "bi"
    train: dict = field(default_factory=dict)  # TrainConfig fields over the preset's

    def config(self, seed: int):
        from .train.presets import preset_settings
        from .train.trainer import TrainConfig

        return TrainConfig.from_dict({"seed": seed, **preset_settings(self.preset), **self.train})

    def __post_init__(self) -> None:
        from .train.strategies import build_strategy

        self.config(0)  # bad trainer settings or preset: reported when the recipe is read
        build_strategy(self.strategy, **self.strategy_options)  # unknown strategy or option: likewise


@register_stage("finetune", FinetuneParams, inputs=("model", "teacher", "data"))
def finetune_stage(p: FinetuneParams, ctx: StageContext) -> StageOutput:
    from .workflows import finetune

    out = finetune(ctx.resolve(p.model), out=ctx.folder / "model.pt", config=p.config(ctx.seed),
                   strategy=p.strategy, strategy_options=p.strategy_options,
                   teacher=ctx.resolve(p.teacher) if p.teacher else None, teacher_scale=p.teacher_scale,
                   data=ctx.data(p.data), degradation=p.degradation, force=True, progress=ctx.progress)
    return StageOutput(out.path, {"steps": out.steps, "final_loss": out.final_loss})


@dataclass
class EvalParams:
    """An ``eval`` stage: scores of ``model`` ("@id" or a path) on ``data``."""

    model: str
    data: str = "default"
    degradation: str = "bi"
    bicubic: bool = True
    crops: bool = True  # write crops.png (bicubic | model | HR) beside eval.json


@register_stage("eval", EvalParams, inputs=("model", "data"))
def eval_stage(p: EvalParams, ctx: StageContext) -> StageOutput:
    from .workflows import evaluate, load_model

    reports = evaluate(load_model(ctx.resolve(p.model)).model, data=ctx.data(p.data), degradation=p.degradation,
                       with_bicubic=p.bicubic, label=p.model.lstrip("@"),
                       crops=ctx.folder / "crops.png" if p.crops else None, force=True)
    path = ctx.folder / "eval.json"
    atomic_write_text(path, json.dumps([r.to_dict() for r in reports], indent=2), force=True)
    summary: dict[str, Any] = {"psnr_y": reports[0].mean.psnr_y, "ssim_y": reports[0].mean.ssim_y}
    if p.bicubic:
        summary["bicubic_psnr_y"] = reports[1].mean.psnr_y
    return StageOutput(path, summary)


@dataclass
class TruncateParams:
    """A ``truncate`` stage: ``model`` ("@id" or a path) cut to its first ``blocks`` body blocks (ASRN)."""

    model: str
    blocks: int


@register_stage("truncate", TruncateParams, inputs=("model",))
def truncate_stage(p: TruncateParams, ctx: StageContext) -> StageOutput:
    from .checkpoint import save_checkpoint
    from .compress.truncate import truncate
    from .workflows import load_model

    new, rep = truncate(load_model(ctx.resolve(p.model)).model, blocks=p.blocks, seed=ctx.seed)
    path = save_checkpoint(new, ctx.folder / f"{Path(p.model.lstrip('@')).stem}_k{p.blocks}.pt", force=True)
    return StageOutput(path, {"blocks": rep.blocks_after, "params": rep.params_after,
                              "max_abs_diff": rep.max_abs_diff, "deep_supervision": rep.deep_supervision})


@dataclass
class ExportParams:
    """An ``export`` stage: ``model`` ("@id" or a path) → a validated ONNX graph named after it."""

    model: str
    opset: int = 17
    tolerance: float | None = None
    simplify: bool = True


@register_stage("export", ExportParams, inputs=("model",))
def export_stage(p: ExportParams, ctx: StageContext) -> StageOutput:
    from .deploy.onnx import export_onnx
    from .workflows import load_model

    path = ctx.folder / f"{Path(p.model.lstrip('@')).stem}.onnx"  # named after its source: reports show it
    rep = export_onnx(load_model(ctx.resolve(p.model)).model, path, opset=p.opset, tolerance=p.tolerance,
                      simplify=p.simplify, force=True, seed=ctx.seed)
    errors = [e for e in (rep.max_err_random, rep.max_err_real) if e is not None]
    return StageOutput(path, {"max_err": max(errors, default=0.0), "plain": rep.is_plain, "nodes": rep.nodes_after})


@dataclass
class BenchParams:
    """A ``bench`` stage: ``models`` (each "@id" or a path, .onnx or .pt) measured side by side."""

    models: list
    size: str = "1920x1080"
    device: str = "cpu"
    threads: int | None = None
    runs: int = 5
    warmup: int = 2
    rounds: int = 1
    memory: bool = True
    budget: str | None = None


@register_stage("bench", BenchParams, inputs=("models", "budget"))
def bench_stage(p: BenchParams, ctx: StageContext) -> StageOutput:
    """Writes report.md/json/png; with ``budget`` a violation fails the run (BudgetExceededError)."""
    from .deploy.bench import bench_models
    from .deploy.report import check_budgets, write_report
    from .errors import BudgetExceededError
    from .workflows import parse_size

    paths = [ctx.resolve(str(m)) for m in p.models]
    # every checkpoint stage writes model.pt: name those entries by their stage id; exports keep their stems
    labels = [str(m)[1:] if str(m).startswith("@") and path.name == "model.pt" else path.stem
              for m, path in zip(p.models, paths, strict=True)]
    result = bench_models(paths, device=p.device, size=parse_size(p.size), threads=p.threads, runs=p.runs,
                          warmup=p.warmup, rounds=p.rounds, memory=p.memory, tune_malloc=False,
                          labels=labels if len(set(labels)) == len(labels) else None)
    files = write_report(result, ctx.folder, force=True)
    if p.budget:
        bad = check_budgets(result, ctx.resolve(p.budget))
        if bad:
            raise BudgetExceededError("; ".join(v.message for v in bad))
    first = result.models[0]
    return StageOutput(files.markdown, {"models": len(result.models),
                                        "first_median_ms": first.latency.median_s * 1e3})


@dataclass
class SlimParams:
    """A ``slim`` stage: ``model`` ("@id" or a path, any supported format) slimmed by ``rho`` (AIL §4)."""

    model: str
    rho: float
    select: str = "l1"
    init: str = "copy"
    round_to: int = 1


@register_stage("slim", SlimParams, inputs=("model",))
def slim_stage(p: SlimParams, ctx: StageContext) -> StageOutput:
    from .workflows import slim_checkpoint

    path, rep, _ = slim_checkpoint(ctx.resolve(p.model), rho=p.rho, out=ctx.folder / "model.pt", select=p.select,
                                   init=p.init, round_to=p.round_to, seed=ctx.seed, force=True)
    atomic_write_text(ctx.folder / "slim.json", json.dumps(rep.to_dict(), indent=2), force=True)
    return StageOutput(path, {"params": rep.params_after, "params_ratio": rep.params_after / rep.params_before})


@dataclass
class ReportParams:
    """A ``report`` stage: ``models`` ("@id" or paths; shown in this order) evaluated on ``data`` and joined with
    the ``bench`` stage's measurements (matched by the exported file's stem, i.e. the model's stage id)."""

    models: list
    bench: str | None = None
    data: str = "default"
    degradation: str = "bi"
    title: str = "srcompress pipeline"

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: give at least one model (the first is the reference)")


@register_stage("report", ReportParams, inputs=("models", "bench", "data"))
def report_stage(p: ReportParams, ctx: StageContext) -> StageOutput:
    from .deploy.bench import BenchResult
    from .deploy.summary import pipeline_report
    from .workflows import load_model

    models = {Path(str(m).lstrip("@")).stem: load_model(ctx.resolve(str(m))).model for m in p.models}
    bench = None
    if p.bench:
        report = ctx.resolve(p.bench).parent / "report.json"
        if not report.is_file():
            raise ConfigError(f"stage {ctx.stage.id}: bench = {p.bench!r} has no report.json beside it "
                              "(name a bench stage)")
        bench = BenchResult.from_dict(json.loads(report.read_text()))
    rep = pipeline_report(models, ctx.folder, bench=bench, data=ctx.data(p.data), degradation=p.degradation,
                          title=p.title, force=True)
    return StageOutput(ctx.folder / "report.md", {r.label: round(r.psnr_y, 3) for r in rep.rows})


@dataclass
class PlainifyParams:
    """A ``plainify`` stage: the residual ``teacher`` ("@id" or a path) → a plain student with its bridges
    (MemSR winning init; ``eps`` / ``width`` / ``memory_budget``), or its exact equivalent (``exact_only``)."""

    teacher: str
    eps: float | None = None
    width: int | None = None
    memory_budget: str | None = None
    size: str = "1920x1080"
    exact_only: bool = False
    scheme: str = "pair"
    tail: str = "copy"
    round_to: int = 1
    data: str = "default"
    patches: int = 16
    patch_size: int = 48
    shift_coef: float = 30.0  # the paper: 3 (docs/plainify.md)


@register_stage("plainify", PlainifyParams, inputs=("teacher", "data"))
def plainify_stage(p: PlainifyParams, ctx: StageContext) -> StageOutput:
    from .compress.memsr import plainify_file
    from .workflows import parse_size

    opts: dict[str, Any] = {"eps": p.eps, "width": p.width, "memory_budget": p.memory_budget,
                            "exact_only": p.exact_only, "scheme": p.scheme, "tail": p.tail, "round_to": p.round_to,
                            "seed": ctx.seed}
    if not p.exact_only:
        opts.update(size=parse_size(p.size), data=None if p.data == "default" else ctx.data(p.data), patches=p.patches,
                    patch_size=p.patch_size, shift_coef=p.shift_coef)
    out = plainify_file(ctx.resolve(p.teacher), ctx.folder / "model.pt", force=True, **opts)
    rep = out.report
    summary: dict[str, Any] = {"widths": rep.widths}
    if hasattr(rep, "student_bound_bytes"):
        summary.update(student_bound_mb=rep.student_bound_bytes / 1e6, eps=rep.eps)
    else:
        summary.update(max_err64=rep.max_abs_err64, max_err32=rep.max_abs_err32)
    return StageOutput(out.path, summary)
