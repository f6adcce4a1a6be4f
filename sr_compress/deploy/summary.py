"""The pipeline report: teacher and students side by side — quality, size, speed, memory — in one place.

``pipeline_report`` evaluates each model on held-out images, joins the numbers with a bench result (models
matched by the ONNX file's stem = the model's label, as the recipe's ``export`` stage names them) and writes,
into one folder: ``report.md`` (table), ``report.json`` (the same as data), ``report.png`` (latency, peak
memory against the bound, PSNR vs peak memory) and ``crops.png`` (bicubic | each student | teacher | HR,
one zoomed window per image).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..evaluate import comparison_rows, eval_pairs_for, evaluate_bicubic, evaluate_model, evaluate_upscaler
from ..fileio import atomic_write, atomic_write_text, check_output
from ..models import SRModel, count_params
from ..visual import save_comparison
from .bench import BenchResult, ModelBench
from .bound import model_params
from .quantize import onnx_upscaler
from .report import MB, plot, settings_line


@dataclass
class ModelSummary:
    """One row of the pipeline report (None where the bench did not measure the model)."""

    label: str
    arch: str
    params: int
    gflop: float | None
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    latency_ms: float | None = None
    peak_mb: float | None = None
    bound_mb: float | None = None
    provenance: list[str] = field(default_factory=list)


@dataclass
class PipelineReport:
    title: str
    data: str
    bench_settings: str | None
    rows: list[ModelSummary]
    bicubic_psnr_y: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Graph:
    """An ONNX graph (any precision) in a pipeline report: scored through onnxruntime, described by its graph."""

    def __init__(self, path: str | os.PathLike) -> None:
        import onnx


        self.upscale, self.scale, self.precision = onnx_upscaler(path)
        graph = onnx.load(str(path))
        meta = {p.key: p.value for p in graph.metadata_props}
        self.arch = f"{meta.get('arch', 'onnx')} {self.precision}"
        self.params = model_params(graph)
        self.provenance = [{"stage": s.get("stage")} for s in json.loads(meta.get("provenance", "[]"))]
        self.provenance.append({"stage": f"quantize ({self.precision})" if self.precision != "float32" else "export"})


def pipeline_report(models: Mapping[str, SRModel | str | os.PathLike], out_dir: str | os.PathLike, *,
                    bench: BenchResult | None = None,
                    data: str = "default", degradation: str = "bi", title: str = "srcompress pipeline",
                    force: bool = False) -> PipelineReport:
    """Evaluate ``models`` (label → model; the first is the reference, e.g. the teacher, that the others are
    compared with) and write the report files; the crops show bicubic, the others, the reference, HR.
    A model may also be an ONNX file (e.g. an int8 graph from ``quantize``): it is run by onnxruntime."""
    out = Path(out_dir)
    names = ("report.md", "report.json", "report.png", "crops.png")
    for n in names:
        check_output(out / n, force=force)
    if not models:
        raise ConfigError("the report needs at least one model (the first is the reference)")
    models = {k: (m if isinstance(m, SRModel) else _Graph(m)) for k, m in models.items()}
    scale = next(iter(models.values())).scale
    other = [label for label, m in models.items() if m.scale != scale]
    if other:
        raise ConfigError(f"every model of a report must have the reference's scale ×{scale}; "
                          f"{', '.join(other)} differ")
    pairs = eval_pairs_for(data, scale, degradation)
    reports = [evaluate_model(m, pairs, method=label, keep_outputs=True) if isinstance(m, SRModel)
               else evaluate_upscaler(label, scale, pairs, m.upscale, keep_outputs=True) for label, m in models.items()]
    bicubic = evaluate_bicubic(pairs, scale, keep_outputs=True)
    # a bench entry is the model's by its name (a recipe's bench stage names entries by stage id) or file stem
    by_stem = {**{m.stem: m for m in bench.models}, **{m.name: m for m in bench.models}} if bench is not None else {}
    rows = [_row(label, m, r, by_stem.get(label)) for (label, m), r in zip(models.items(), reports, strict=True)]
    rep = PipelineReport(title, f"{data} ({degradation.upper()})", _settings(bench), rows, bicubic.mean.psnr_y)
    crops = [bicubic, *reports[1:], reports[0]]  # bicubic | each student | the reference (teacher) | HR
    save_comparison(out / "crops.png", comparison_rows(crops, pairs), force=force)
    atomic_write_text(out / "report.json", json.dumps(rep.to_dict(), indent=2), force=force)
    atomic_write_text(out / "report.md", pipeline_markdown(rep), force=force)
    if bench is not None:
        atomic_write(out / "report.png", lambda p: plot(bench, p, {r.label: r.psnr_y for r in rows}), force=force)
    return rep


def _row(label: str, model: Any, r: Any, b: ModelBench | None) -> ModelSummary:
    peak = max(b.memory.first_bytes, b.memory.steady_bytes) / MB if b is not None and b.memory else None
    return ModelSummary(
        label, model.arch, count_params(model) if isinstance(model, SRModel) else model.params,
        b.flops / 1e9 if b is not None else None,
        r.mean.psnr_y, r.mean.ssim_y, r.mean.psnr_rgb,
        b.latency.median_s * 1e3 if b is not None and b.latency else None, peak,
        b.bound_bytes / MB if b is not None else None,
        [str(p.get("stage")) for p in model.provenance])


def _settings(bench: BenchResult | None) -> str | None:
    if bench is None:
        return None
    return settings_line(bench)


def _cell(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def pipeline_markdown(rep: PipelineReport) -> str:
    """The report as Markdown (fit for a README, a pull request or a CI job summary)."""
    first = rep.rows[0]
    lines = [f"# {rep.title}", "",
             f"Quality on {rep.data}: Y-PSNR / SSIM (BT.601 luma, 8-bit, `scale` px cropped); bicubic "
             f"{rep.bicubic_psnr_y:.2f} dB.", ""]
    if rep.bench_settings:
        lines += [f"Speed and memory: {rep.bench_settings}.", ""]
    lines += ["| model | arch | params | GFLOP | Y-PSNR | SSIM | latency ms | peak MB | bound MB | peak / bound | "
              "stages |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rep.rows:
        ratio = r.peak_mb / r.bound_mb if r.peak_mb and r.bound_mb else None
        lines.append(f"| {r.label} | {r.arch} | {r.params:,} | {_cell(r.gflop, '.2f')} | {r.psnr_y:.2f} | "
                     f"{r.ssim_y:.4f} | {_cell(r.latency_ms, '.1f')} | {_cell(r.peak_mb, '.1f')} | "
                     f"{_cell(r.bound_mb, '.1f')} | {_cell(ratio, '.2f')} | {' → '.join(r.provenance)} |")
    lines += ["", f"Relative to {first.label}:", ""]
    for r in rep.rows[1:]:
        parts = [f"params ×{r.params / first.params:.3f}", f"Y-PSNR {r.psnr_y - first.psnr_y:+.2f} dB"]
        if r.latency_ms and first.latency_ms:
            parts.append(f"latency ×{r.latency_ms / first.latency_ms:.2f}")
        if r.peak_mb and first.peak_mb:
            parts.append(f"peak memory ×{r.peak_mb / first.peak_mb:.3f}")
        lines.append(f"- {r.label}: " + ", ".join(parts))
    if rep.bench_settings:
        lines += ["", "![latency, memory, PSNR vs memory](report.png)"]
    lines += ["", "Crops (bicubic | each student | the reference | HR):", "", "![crops](crops.png)", ""]
    return "\n".join(lines)
