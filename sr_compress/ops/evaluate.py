"""Operation ``eval``: the scores of a model on images (with a bicubic row and crops), on the AIL release's
npz protocol, or at every depth of an elastic model; and the paper table (:func:`evaluate_sets`: models ×
benchmark sets × scales in one call, Markdown + JSON)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import LoadedModel
from ..compress.truncate import ElasticTable, evaluate_depths
from ..data.layouts import find_benchmark_sets
from ..deploy.quantize import graph_precision, onnx_upscaler
from ..deploy.tiling import tiled_network
from ..errors import ConfigError
from ..evaluate import (
    DEFAULT_EVAL_BYTES,
    DEFAULT_Y,
    EvalReport,
    EvalTable,
    comparison_rows,
    eval_pairs_for,
    evaluate_bicubic,
    evaluate_model,
    evaluate_table,
    evaluate_upscaler,
    load_npz_y,
    npz_y_psnr,
    write_table,
)
from ..fileio import check_output, require_file
from ..models import SRModel
from ..visual import save_comparison
from .common import data_inputs, load_model

NPZ_PROTOCOL = "npz bicubic Y, unrounded float, scale px shaved"


def evaluate_images(model: SRModel, *, data: str | Path | None = None, degradation: str = "bi",
                    with_bicubic: bool = True, label: str | None = None, crops: str | Path | None = None,
                    force: bool = False, y: str = DEFAULT_Y, inputs: tuple = ()) -> list[EvalReport]:
    """Scores of ``model`` (and bicubic) on the validation photos or a folder (HR-only or HR/LR pairs).

    ``crops``: also write a PNG of the same detailed window per image (bicubic | model | HR), 2× zoomed.
    """
    inputs = (*inputs, *data_inputs(data))
    if crops is not None:
        check_output(crops, inputs=inputs, force=force)
    pairs = eval_pairs_for(data, model.scale, degradation)
    keep = crops is not None
    reports = [evaluate_model(model, pairs, method=label, keep_outputs=keep, y=y)]
    if with_bicubic:
        reports.append(evaluate_bicubic(pairs, model.scale, keep_outputs=keep, y=y))
    if crops is not None:
        check_output(crops, inputs=inputs, force=force)
        save_comparison(crops, comparison_rows(reports, pairs), force=force)
    return reports


def evaluate_onnx(path: str | Path, *, data: str | Path | None = None, degradation: str = "bi",
                  with_bicubic: bool = True, crops: str | Path | None = None, force: bool = False,
                  y: str = DEFAULT_Y) -> list[EvalReport]:
    """Like :func:`evaluate_images` for an ONNX graph run by onnxruntime (any precision; float32 I/O)."""

    if crops is not None:
        check_output(crops, force=force)
    upscale, scale, precision = onnx_upscaler(path)
    pairs = eval_pairs_for(data, scale, degradation)
    keep = crops is not None
    label = Path(path).name if precision == "float32" else f"{Path(path).name} ({precision})"
    reports = [evaluate_upscaler(label, scale, pairs, upscale, keep_outputs=keep, y=y)]
    if with_bicubic:
        reports.append(evaluate_bicubic(pairs, scale, keep_outputs=keep, y=y))
    if crops is not None:
        save_comparison(crops, comparison_rows(reports, pairs), force=force)
    return reports


@dataclass
class NpzScores:
    """Y-PSNR per image and mean under the AIL release's protocol (MATLAB bicubic Y inputs from the npz)."""

    data: str
    scale: int
    images: dict[str, float]
    protocol: str = NPZ_PROTOCOL

    @property
    def mean_psnr_y(self) -> float:
        return sum(self.images.values()) / len(self.images)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "scale": self.scale, "protocol": self.protocol, "images": dict(self.images),
                "mean_psnr_y": self.mean_psnr_y}


def evaluate_npz(model: SRModel, data: str | Path) -> NpzScores:
    """The AIL release's protocol: unrounded float Y-PSNR, scale px shaved (Y-channel bicubic-input models)."""
    if model.channels != 1 or not model.pre_upsample:
        raise ConfigError(f"an .npz of bicubic Y inputs is for Y-channel bicubic-input models (VDSR), not "
                          f"{model.arch} with {model.channels} channels")
    images = load_npz_y(data)
    return NpzScores(str(data), model.scale,
                     {name: npz_y_psnr(model, [(name, lr, gt)], model.scale) for name, lr, gt in images})


@dataclass
class EvalOutcome:
    """``mode``: "images" (``reports``: the model's, then bicubic's), "npz" (``npz``) or "depths" (``depths``)."""

    mode: str
    loaded: LoadedModel | None  # None for an ONNX graph
    reports: list[EvalReport] = field(default_factory=list)
    npz: NpzScores | None = None
    depths: ElasticTable | None = None


def _quantised(path: str | Path) -> bool:
    """Whether an ONNX graph holds int8 / fp16 / bf16 parts (run by :func:`evaluate_onnx`)."""
    import onnx


    return graph_precision(onnx.load(str(require_file(path, "ONNX model")), load_external_data=False)) != "float32"


def evaluate(model: str | Path, *, data: str = "default", degradation: str = "bi", bicubic: bool = True,
             crops: str | Path | None = None, all_depths: bool = False, overrides: dict[str, Any] | None = None,
             force: bool = False, y: str = DEFAULT_Y) -> EvalOutcome:
    """Evaluate the checkpoint ``model``: an ``.npz`` ``data`` selects the npz protocol; ``all_depths`` the
    elastic table (every depth N..1); otherwise per-image scores (``crops``: also the comparison PNG).
    An ``.onnx`` graph (float32, int8 or fp16: ``srcompress quantize``) runs through onnxruntime, per-image
    scores only. A float32 graph loads as a read-only model like any checkpoint (``load_model``: colour, range
    and scale detected, ``overrides`` input_range / colour / scale where the graph does not say)."""
    if crops is not None:  # never over the model or the data, with or without --force; before any work
        check_output(crops, inputs=(model, *data_inputs(data)), force=force)
    if str(model).lower().endswith(".onnx") and _quantised(model):
        if all_depths or str(data).lower().endswith(".npz"):
            raise ConfigError("--all-depths and .npz data need a checkpoint, not an ONNX graph")
        return EvalOutcome("images", None, evaluate_onnx(model, data=data, degradation=degradation,
                                                         with_bicubic=bicubic, crops=crops, force=force, y=y))
    loaded = load_model(model, overrides=overrides)
    m = loaded.model
    if str(data).lower().endswith(".npz"):
        return EvalOutcome("npz", loaded, npz=evaluate_npz(m, data))
    if all_depths:
        return EvalOutcome("depths", loaded, depths=evaluate_depths(m, eval_pairs_for(data, m.scale, degradation)))
    reports = evaluate_images(m, data=data, degradation=degradation, with_bicubic=bicubic, label=Path(model).name,
                              crops=crops, force=force, y=y, inputs=(model,))
    return EvalOutcome("images", loaded, reports)


@dataclass
class TableOutcome:
    """The paper table of ``evaluate_sets``, the loaded models by label, and the report files (if asked)."""

    table: EvalTable
    loaded: dict[str, LoadedModel]
    files: tuple[Path, Path] | None = None


def _labels(models: Sequence[str | Path]) -> list[str]:
    names = [Path(m).name for m in models]
    return [n if names.count(n) == 1 else str(m) for n, m in zip(names, models, strict=True)]


def _bounded(model: Any, *, max_bytes: float) -> Any:
    """``model`` tiled exactly within ``max_bytes``; a net with an image-wide operation (IMDN's contrast
    attention, RFDN/RLFN's ESA) cannot be tiled exactly, so it runs on whole images (the field's protocol)."""
    return model if getattr(model, "global_context", None) else tiled_network(model, max_bytes=max_bytes)


def evaluate_sets(models: Sequence[str | Path], *, data: Sequence[str | Path] = (), bench: str | Path | None = None,
                  scales: Sequence[int] | None = None, y: str = DEFAULT_Y, degradation: str = "bi",
                  bicubic: bool = True, report: str | Path | None = None, overrides: dict[str, Any] | None = None,
                  max_bytes: float | None = DEFAULT_EVAL_BYTES, force: bool = False,
                  progress: Callable[[dict[str, Any]], None] | None = None) -> TableOutcome:
    """The paper table of checkpoints ``models`` (any supported format) on the folders ``data`` and the standard
    sets found under ``bench`` (Set5, Set14, B100, Urban100, Manga109), bicubic first, in one call.

    ``scales``: default the models' own scale. ``report``: a folder for report.md + report.json (checked
    before anything runs). Models run tile by tile within ``max_bytes`` of activations (exact).
    """
    if report is not None:
        for name in ("report.md", "report.json"):  # never over a model or inside a data folder
            check_output(Path(report) / name, inputs=(*models, *[p for d in data for p in data_inputs(d)]),
                         force=force)
    sets: dict[str, str] = {}
    if bench is not None:
        sets.update({k: str(v) for k, v in find_benchmark_sets(bench).items()})
    for d in data:
        name = "default" if str(d) == "default" else Path(d).name
        sets[name if name not in sets else str(d)] = str(d)
    if not sets:
        sets["default"] = "default"
    loaded = {label: load_model(m, overrides=overrides) for label, m in zip(_labels(models), models, strict=True)}
    wrap = functools.partial(_bounded, max_bytes=max_bytes) if max_bytes else None
    table = evaluate_table({k: v.model for k, v in loaded.items()}, sets, scales, y=y, degradation=degradation,
                           with_bicubic=bicubic, wrap=wrap, progress=progress)
    files = write_table(table, report, force=force) if report is not None else None
    return TableOutcome(table, loaded, files)
