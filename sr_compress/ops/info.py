"""Operation ``info``: what a checkpoint or an ONNX graph is (arch, hparams, params, MACs, provenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import is_onnx_file
from ..fileio import require_file
from ..metrics import count_macs, count_params
from .common import load_model


def model_info(path: str | Path, *, size: tuple[int, int] = (320, 180),
               overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Arch, hparams, params, MACs/FLOPs at LR size ``size`` (W×H), provenance of a checkpoint or an ONNX
    graph (found by suffix or content); ``overrides`` replace guessed hparams of a foreign checkpoint (scale,
    img_range, res_scale…) or what an ONNX graph does not say (scale, input_range, colour)."""
    p = Path(path)
    if is_onnx_file(require_file(p, "model")):
        from ..deploy.onnx import onnx_info

        return onnx_info(p, size=size, overrides=overrides)
    loaded = load_model(p, overrides=overrides)
    m = loaded.model
    w, h = size
    in_shape = m.input_shape(size)
    macs = count_macs(m, in_shape)
    return {"path": str(p), "format": loaded.source, "arch": m.arch, "hparams": m.hparams,
            "params": count_params(m), "input_size": f"{w}x{h} LR ({in_shape[3]}x{in_shape[2]} model input)",
            "macs": macs, "gflops": 2 * macs / 1e9, "guesses": loaded.guesses, "provenance": m.provenance}
