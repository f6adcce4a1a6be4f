"""Operation ``quantize``: a model file (.pt of any supported format, or a float32 .onnx) → an int8 / fp16 /
bf16 ONNX graph, calibrated on images and scored against the float model (docs/quantize.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import defaults_of
from ..deploy.quantize import QuantReport, quantize

#: precision, calib, method, per_channel, max_drop, patches, patch_size, rewrite, …: written once, in
#: :func:`deploy.quantize.quantize`
DEFAULTS = defaults_of(quantize)


@dataclass
class QuantizeOutcome:
    path: Path
    report: QuantReport


def quantize_file(model: str | Path, out: str | Path, *, precision: str = DEFAULTS["precision"],
                  calib: str | Path | None = DEFAULTS["calib"], method: str = DEFAULTS["method"],
                  per_channel: bool = DEFAULTS["per_channel"], exclude: Sequence[str] = (),
                  max_drop: float | None = DEFAULTS["max_drop"], eval_data: str | Path | None = DEFAULTS["eval_data"],
                  patches: int = DEFAULTS["patches"], patch_size: int = DEFAULTS["patch_size"],
                  rewrite: bool = DEFAULTS["rewrite"], align: bool = DEFAULTS["align"], seed: int = DEFAULTS["seed"],
                  rewrite_options: dict[str, Any] | None = None, force: bool = False) -> QuantizeOutcome:
    """Quantise the model file ``model`` into ``out`` (never over the input; over an old output with ``force``).
    Raises the stage's errors (bad inputs: exit 2; a quality drop above ``max_drop``: VerificationError)."""
    path, report = quantize(model, out, precision=precision, calib=calib, method=method, per_channel=per_channel,
                            exclude=tuple(exclude), max_drop=max_drop, eval_data=eval_data, patches=patches,
                            patch_size=patch_size, rewrite=rewrite, align=align, seed=seed,
                            rewrite_options=rewrite_options,
                            force=force)
    return QuantizeOutcome(path, report)
