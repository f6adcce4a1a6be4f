"""Operation ``export``: a checkpoint → a simplified ONNX graph validated against PyTorch (or a check only)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import LoadedModel
from ..config import defaults_of
from ..deploy.onnx import ExportReport, export_onnx
from .common import load_model

#: opset, simplify, tolerance, seed, halo: written once, in :func:`deploy.onnx.export_onnx`
DEFAULTS = defaults_of(export_onnx)


@dataclass
class ExportOutcome:
    report: ExportReport  # ``report.path`` is None for a check only
    loaded: LoadedModel


def export(model: str | Path, out: str | Path | None = None, *, write: bool = True,
           opset: int = DEFAULTS["opset"], simplify: bool = DEFAULTS["simplify"],
           tolerance: float | None = DEFAULTS["tolerance"], seed: int = DEFAULTS["seed"],
           halo: int | None = DEFAULTS["halo"], overrides: dict[str, Any] | None = None,
           force: bool = False) -> ExportOutcome:
    """Export the checkpoint ``model`` to ``out`` (default: MODEL with the .onnx suffix). ``write=False``:
    export, simplify and validate in a temporary folder and report; nothing is written."""
    loaded = load_model(model, overrides=overrides)
    out = Path(out) if out is not None else Path(model).with_suffix(".onnx")
    kw: dict[str, Any] = dict(opset=opset, simplify=simplify, tolerance=tolerance, seed=seed, halo=halo)
    if write:
        return ExportOutcome(export_onnx(loaded.model, out, force=force, inputs=(model,), **kw), loaded)
    with tempfile.TemporaryDirectory(prefix="srcompress-check-") as tmp:
        report = export_onnx(loaded.model, Path(tmp) / out.name, **kw)
    report.path = None  # nothing was written
    return ExportOutcome(report, loaded)
