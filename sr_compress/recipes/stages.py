"""The built-in stage kinds: each adapts its recipe data (a params dataclass) to one operation (sr_compress.ops).

Defaults come from the operation or the stage function (``DEFAULTS``), so a recipe and the CLI agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import parse_size
from ..deploy.bench import BenchResult
from ..deploy.summary import pipeline_report
from ..errors import ConfigError
from ..fileio import atomic_write_text
from ..ops import bench as bench_op
from ..ops import evaluate as eval_op
from ..ops import export as export_op
from ..ops import fold as fold_op
from ..ops import plainify as plainify_op
from ..ops import quantize as quantize_op
from ..ops import slim as slim_op
from ..ops import train as train_op
from ..ops import truncate as truncate_op
from ..ops.common import load_model
from ..train.strategies import build_strategy
from .engine import StageContext, StageOutput, register_stage

TRAIN = train_op.TRAIN_DEFAULTS
PLAINIFY = plainify_op.DEFAULTS
EXPORT = export_op.DEFAULTS
SLIM = slim_op.DEFAULTS
BENCH = bench_op.BenchSettings()
QUANT = quantize_op.DEFAULTS
FOLD = fold_op.DEFAULTS


def _trained(out: train_op.TrainOutcome) -> StageOutput:
    return StageOutput(out.path, {"steps": out.steps, "final_loss": out.final_loss})


@dataclass
class TrainParams:
    """A ``train`` stage: a new ``arch`` (with ``hparams``) or a checkpoint ``init`` trained further."""

    arch: str | None = None
    init: str | None = None
    scale: int | None = TRAIN["scale"]  # None: a new model's default (2), or the init checkpoint's own
    hparams: dict = field(default_factory=dict)
    data: str = "default"
    degradation: str = TRAIN["degradation"]
    strategy: str = TRAIN["strategy"]
    strategy_options: dict = field(default_factory=dict)
    teacher: str | None = None
    train: dict = field(default_factory=dict)  # sr_compress.train.trainer.TrainConfig fields

    def __post_init__(self) -> None:
        train_op.train_config(settings=self.train)  # report bad trainer settings when the recipe is read


@register_stage("train", TrainParams, inputs=("init", "teacher", "data"))
def train_stage(p: TrainParams, ctx: StageContext) -> StageOutput:
    return _trained(train_op.train(
        out=ctx.folder / "model.pt", config=train_op.train_config(settings=p.train, seed=ctx.seed), arch=p.arch,
        init=ctx.resolve(p.init) if p.init else None, scale=p.scale, hparams=p.hparams, data=ctx.data(p.data),
        degradation=p.degradation, strategy=p.strategy, strategy_options=p.strategy_options,
        teacher=ctx.resolve(p.teacher) if p.teacher else None, force=True, progress=ctx.progress))


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
    teacher_input_range: float | None = None  # an ONNX teacher's input range / colour where it does not say
    teacher_colour: str | None = None
    strategy_options: dict = field(default_factory=dict)
    preset: str | None = None
    data: str = "default"
    degradation: str = TRAIN["degradation"]
    train: dict = field(default_factory=dict)  # TrainConfig fields over the preset's

    def config(self, seed: int) -> Any:
        return train_op.train_config(preset=self.preset, settings=self.train, seed=seed)

    def __post_init__(self) -> None:
        self.config(0)  # bad trainer settings or preset: reported when the recipe is read
        build_strategy(self.strategy, **self.strategy_options)  # unknown strategy or option: likewise


@register_stage("finetune", FinetuneParams, inputs=("model", "teacher", "data"))
def finetune_stage(p: FinetuneParams, ctx: StageContext) -> StageOutput:
    return _trained(train_op.finetune(
        ctx.resolve(p.model), out=ctx.folder / "model.pt", config=p.config(ctx.seed), strategy=p.strategy,
        strategy_options=p.strategy_options, teacher=ctx.resolve(p.teacher) if p.teacher else None,
        teacher_scale=p.teacher_scale, data=ctx.data(p.data), degradation=p.degradation, force=True,
        teacher_overrides={"input_range": p.teacher_input_range, "colour": p.teacher_colour},
        progress=ctx.progress))


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
    reports = eval_op.evaluate_images(load_model(ctx.resolve(p.model)).model, data=ctx.data(p.data),
                                      degradation=p.degradation, with_bicubic=p.bicubic, label=p.model.lstrip("@"),
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
    out = truncate_op.truncate_checkpoint(ctx.resolve(p.model),
                                          ctx.folder / f"{Path(p.model.lstrip('@')).stem}_k{p.blocks}.pt",
                                          blocks=p.blocks, seed=ctx.seed, force=True)
    rep = out.report
    return StageOutput(out.path, {"blocks": rep.blocks_after, "params": rep.params_after,
                                  "max_abs_diff": rep.max_abs_diff, "deep_supervision": rep.deep_supervision},
                       list(rep.warnings))


@dataclass
class ExportParams:
    """An ``export`` stage: ``model`` ("@id" or a path) → a validated ONNX graph named after it."""

    model: str
    opset: int = EXPORT["opset"]
    tolerance: float | None = EXPORT["tolerance"]
    simplify: bool = EXPORT["simplify"]


@register_stage("export", ExportParams, inputs=("model",))
def export_stage(p: ExportParams, ctx: StageContext) -> StageOutput:
    path = ctx.folder / f"{Path(p.model.lstrip('@')).stem}.onnx"  # named after its source: reports show it
    rep = export_op.export(ctx.resolve(p.model), path, opset=p.opset, tolerance=p.tolerance, simplify=p.simplify,
                           seed=ctx.seed, force=True).report
    errors = [e for e in (rep.max_err_random, rep.max_err_real) if e is not None]
    return StageOutput(path, {"max_err": max(errors, default=0.0), "plain": rep.is_plain, "nodes": rep.nodes_after})


@dataclass
class BenchParams:
    """A ``bench`` stage: ``models`` (each "@id" or a path, .onnx or .pt) measured side by side."""

    models: list
    size: str = f"{BENCH.size[0]}x{BENCH.size[1]}"
    device: str = BENCH.device
    threads: int | None = BENCH.threads
    runs: int = BENCH.runs
    warmup: int = BENCH.warmup
    rounds: int = BENCH.rounds
    memory: bool = True
    budget: str | None = None


@register_stage("bench", BenchParams, inputs=("models", "budget"))
def bench_stage(p: BenchParams, ctx: StageContext) -> StageOutput:
    """Writes report.md/json/png; with ``budget`` a violation fails the run (BudgetExceededError)."""
    paths = [ctx.resolve(str(m)) for m in p.models]
    # every checkpoint stage writes model.pt: name those entries by their stage id; exports keep their stems
    labels = [str(m)[1:] if str(m).startswith("@") and path.name == "model.pt" else path.stem
              for m, path in zip(p.models, paths, strict=True)]
    given = {"device": p.device, "size": p.size, "threads": p.threads, "runs": p.runs, "warmup": p.warmup,
             "rounds": p.rounds}
    out = bench_op.bench(paths, given=given, memory=p.memory, report_dir=ctx.folder,
                         budget=ctx.resolve(p.budget) if p.budget else None, tune_malloc=False, force=True,
                         labels=labels if len(set(labels)) == len(labels) else None)
    out.check()
    first = out.result.models[0]
    return StageOutput(out.files.markdown, {"models": len(out.result.models),
                                            "first_median_ms": first.latency.median_s * 1e3})


@dataclass
class SlimParams:
    """A ``slim`` stage: ``model`` ("@id" or a path, any supported format) slimmed by ``rho`` (AIL §4)."""

    model: str
    rho: float
    select: str = SLIM["select"]
    init: str = SLIM["init"]
    round_to: int = SLIM["round_to"]


@register_stage("slim", SlimParams, inputs=("model",))
def slim_stage(p: SlimParams, ctx: StageContext) -> StageOutput:
    out = slim_op.slim_checkpoint(ctx.resolve(p.model), rho=p.rho, out=ctx.folder / "model.pt", select=p.select,
                                  init=p.init, round_to=p.round_to, seed=ctx.seed, force=True)
    rep = out.report
    atomic_write_text(ctx.folder / "slim.json", json.dumps(rep.to_dict(), indent=2), force=True)
    return StageOutput(out.path, {"params": rep.params_after, "params_ratio": rep.params_after / rep.params_before})


@dataclass
class FoldParams:
    """A ``fold`` stage: the plain student ``model`` ("@id" or a path) with its channel offsets folded out of its
    activations (docs/quantize.md; fine-tune after it with ``border = "bias"``)."""

    model: str
    border: str = FOLD["border"]
    margin: float = FOLD["margin"]
    calib: str = FOLD["calib"]
    patches: int = FOLD["patches"]
    patch_size: int = FOLD["patch_size"]


@register_stage("fold", FoldParams, inputs=("model", "calib"))
def fold_stage(p: FoldParams, ctx: StageContext) -> StageOutput:
    o = fold_op.fold_file(ctx.resolve(p.model), ctx.folder / "model.pt", border=p.border, margin=p.margin,
                          calib=ctx.data(p.calib), patches=p.patches, patch_size=p.patch_size, seed=ctx.seed,
                          force=True)
    return StageOutput(o.path, {"folded": sum(layer.folded for layer in o.report.layers),
                                "constant_channels": o.report.constant_channels, "max_diff": o.max_diff,
                                "max_diff_interior": o.max_diff_interior})


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
    paths = {Path(str(m).lstrip("@")).stem: ctx.resolve(str(m)) for m in p.models}
    models = {k: (v if v.suffix.lower() == ".onnx" else load_model(v).model) for k, v in paths.items()}
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
    eps: float | None = PLAINIFY["eps"]
    width: int | None = PLAINIFY["width"]
    memory_budget: str | None = PLAINIFY["memory_budget"]
    size: str = f"{PLAINIFY['size'][0]}x{PLAINIFY['size'][1]}"
    exact_only: bool = PLAINIFY["exact_only"]
    scheme: str = PLAINIFY["scheme"]
    tail: str = PLAINIFY["tail"]
    round_to: int = PLAINIFY["round_to"]
    data: str = "default"
    patches: int = PLAINIFY["patches"]
    patch_size: int = PLAINIFY["patch_size"]
    shift_coef: float = PLAINIFY["shift_coef"]  # the paper: 3 (docs/plainify.md)


@register_stage("plainify", PlainifyParams, inputs=("teacher", "data"))
def plainify_stage(p: PlainifyParams, ctx: StageContext) -> StageOutput:
    opts: dict[str, Any] = {"eps": p.eps, "width": p.width, "memory_budget": p.memory_budget,
                            "exact_only": p.exact_only, "scheme": p.scheme, "tail": p.tail, "round_to": p.round_to,
                            "seed": ctx.seed}
    if not p.exact_only:
        opts.update(size=parse_size(p.size), data=None if p.data == "default" else ctx.data(p.data), patches=p.patches,
                    patch_size=p.patch_size, shift_coef=p.shift_coef)
    out = plainify_op.plainify_file(ctx.resolve(p.teacher), ctx.folder / "model.pt", force=True, **opts)
    rep = out.report
    summary: dict[str, Any] = {"widths": rep.widths}
    if out.mode == "winning":
        summary.update(student_bound_mb=rep.student_bound_bytes / 1e6, eps=rep.eps)
    else:
        summary.update(max_err64=rep.max_abs_err64, max_err32=rep.max_abs_err32)
    return StageOutput(out.path, summary)


@dataclass
class QuantizeParams:
    """A ``quantize`` stage: ``model`` ("@id" or a path: a checkpoint or a float32 ONNX graph) → an int8 / fp16 /
    bf16 ONNX graph named after it, calibrated on ``calib`` and scored on ``eval_data`` (docs/quantize.md)."""

    model: str
    precision: str = QUANT["precision"]
    calib: str = "default"
    method: str = QUANT["method"]
    per_channel: bool = QUANT["per_channel"]
    exclude: list[str] = field(default_factory=list)
    max_drop: float | None = QUANT["max_drop"]
    eval_data: str = "default"
    patches: int = QUANT["patches"]
    patch_size: int = QUANT["patch_size"]
    rewrite: bool = QUANT["rewrite"]
    align: bool = QUANT["align"]


@register_stage("quantize", QuantizeParams, inputs=("model", "calib", "eval_data"))
def quantize_stage(p: QuantizeParams, ctx: StageContext) -> StageOutput:
    path = ctx.folder / f"{ctx.stage.id}.onnx"  # named after the stage: bench and report rows match it by stem
    r = quantize_op.quantize_file(ctx.resolve(p.model), path, precision=p.precision, calib=ctx.data(p.calib),
                                  method=p.method, per_channel=p.per_channel, exclude=p.exclude,
                                  max_drop=p.max_drop, eval_data=ctx.data(p.eval_data), patches=p.patches,
                                  patch_size=p.patch_size, rewrite=p.rewrite, align=p.align, seed=ctx.seed,
                                  force=True).report
    return StageOutput(path, {"precision": r.precision, "float_psnr_y": r.float_psnr_y,
                              "quant_psnr_y": r.quant_psnr_y, "drop_db": r.drop_db,
                              "max_diff_levels": r.max_diff_levels}, list(r.warnings))
