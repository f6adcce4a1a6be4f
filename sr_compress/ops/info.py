"""Operation ``info``: what a checkpoint or an ONNX graph is (arch, hparams, params, MACs, provenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..metrics import count_macs, count_params
from .common import load_model


def model_info(path: str | Path, *, size: tuple[int, int] = (320, 180),
               overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Arch, hparams, params, MACs/FLOPs at LR size ``size`` (W×H), provenance of a checkpoint; ``overrides``
    replace guessed hparams of a foreign checkpoint (scale, img_range, res_scale…; ignored for ONNX graphs)."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        from ..deploy.onnx import onnx_info

        return onnx_info(p, size=size)
    loaded = load_model(p, overrides=overrides)
    m = loaded.model
    w, h = size
    in_shape = m.input_shape(size)
    macs = count_macs(m, in_shape)
    return {"path": str(p), "format": loaded.source, "arch": m.arch, "hparams": m.hparams,
            "params": count_params(m), "input_size": f"{w}x{h} LR ({in_shape[3]}x{in_shape[2]} model input)",
            "macs": macs, "gflops": 2 * macs / 1e9, "guesses": loaded.guesses, "provenance": m.provenance}
