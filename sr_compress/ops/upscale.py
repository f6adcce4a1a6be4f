"""Operation ``upscale``: super-resolve image files with a model or an exported ONNX graph, tile by tile."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.datasets import read_image
from ..deploy.outputs import plan_upscale_outputs
from ..deploy.tiling import tiled_network
from ..fileio import atomic_write
from ..infer import super_resolve
from .common import load_model


def write_rgb(img: Any, path: Path) -> None:
    """(3,H,W) tensor in [0,1] → 8-bit PNG at ``path`` (the caller handles atomicity)."""
    import numpy as np
    from PIL import Image

    arr = (img.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
    Image.fromarray(np.ascontiguousarray(arr), "RGB").save(path, format="PNG")


def upscale_files(model: Any, images: Sequence[str | Path], out: str | Path, *, tile: int | None = None,
                  max_bytes: float | None = None, halo: int | None = None, force: bool = False,
                  inputs: tuple = ()) -> list[Path]:
    """Super-resolve image files with an SRModel, an onnxruntime session of an srcompress export, or a model
    file path (any checkpoint, or an ONNX graph: loaded as a read-only model, run by onnxruntime).

    One image → ``out`` may be a .png file; otherwise ``out`` is a folder of ``<stem>_x<scale>.png``.
    ``tile`` (LR px) and/or ``max_bytes`` run the network tile by tile with an exact halo (same output);
    ``halo`` replaces the derived one (for graphs whose receptive radius cannot be derived). Every output
    name is planned and checked before the first image (:func:`~sr_compress.deploy.outputs.plan_upscale_outputs`:
    no collisions, never over an image or ``inputs``, e.g. the model file).
    """
    if isinstance(model, (str, Path)):
        inputs = (*inputs, model)
        model = load_model(model).model
    net = tiled_network(model, tile=tile, max_bytes=max_bytes, halo=halo)
    plan = plan_upscale_outputs(images, out, net.scale, inputs=inputs, force=force)
    srcs = [src for src, _ in plan]
    written = []
    for src, dst in plan:
        sr = super_resolve(net, read_image(src).unsqueeze(0))[0]
        written.append(atomic_write(dst, lambda p, sr=sr: write_rgb(sr, p), inputs=(*srcs, *inputs), force=force))
    return written


def upscale(model: str | Path, images: Sequence[str | Path], out: str | Path, *, tile: int | None = None,
            max_memory_mb: float | None = None, halo: int | None = None, overrides: dict[str, Any] | None = None,
            force: bool = False) -> list[Path]:
    """Upscale ``images`` with the model file ``model`` (a checkpoint of any format, or ``.onnx``)."""
    from ..validate import finite_float

    if max_memory_mb is not None:
        finite_float(max_memory_mb, "--max-memory-mb", min=0, min_open=True, max=1 << 40)
    net = model if str(model).lower().endswith(".onnx") else load_model(model, overrides=overrides).model
    max_bytes = max_memory_mb * 2**20 if max_memory_mb else None
    return upscale_files(net, list(images), out, tile=tile, max_bytes=max_bytes, halo=halo, force=force,
                         inputs=(model,))
