"""Operation ``upscale``: super-resolve image files with a model or an exported ONNX graph, tile by tile."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.datasets import read_image
from ..deploy.tiling import tiled_network
from ..errors import DataError
from ..fileio import atomic_write, check_output
from ..infer import super_resolve
from .common import load_model


def write_rgb(img: Any, path: Path) -> None:
    """(3,H,W) tensor in [0,1] → 8-bit PNG at ``path`` (the caller handles atomicity)."""
    import numpy as np
    from PIL import Image

    arr = (img.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
    Image.fromarray(np.ascontiguousarray(arr), "RGB").save(path, format="PNG")


def upscale_files(model: Any, images: Sequence[str | Path], out: str | Path, *, tile: int | None = None,
                  max_bytes: float | None = None, halo: int | None = None, force: bool = False) -> list[Path]:
    """Super-resolve image files with an SRModel, an onnxruntime session of an srcompress export, or a model
    file path (any checkpoint, or an ONNX graph: loaded as a read-only model, run by onnxruntime).

    One image → ``out`` may be a .png file; otherwise ``out`` is a folder of ``<stem>_x<scale>.png``.
    ``tile`` (LR px) and/or ``max_bytes`` run the network tile by tile with an exact halo (same output);
    ``halo`` replaces the derived one (for graphs whose receptive radius cannot be derived).
    """
    if isinstance(model, (str, Path)):
        model = load_model(model).model
    net = tiled_network(model, tile=tile, max_bytes=max_bytes, halo=halo)
    srcs = [Path(p) for p in images]
    if not srcs:
        raise DataError("no input images given")
    out = Path(out)
    single = len(srcs) == 1 and out.suffix.lower() == ".png"
    targets = [out] if single else [out / f"{p.stem}_x{net.scale}.png" for p in srcs]
    for t in targets:
        check_output(t, inputs=srcs, force=force)
    written = []
    for src, dst in zip(srcs, targets, strict=True):
        sr = super_resolve(net, read_image(src).unsqueeze(0))[0]
        written.append(atomic_write(dst, lambda p, sr=sr: write_rgb(sr, p), inputs=srcs, force=force))
    return written


def upscale(model: str | Path, images: Sequence[str | Path], out: str | Path, *, tile: int | None = None,
            max_memory_mb: float | None = None, halo: int | None = None, overrides: dict[str, Any] | None = None,
            force: bool = False) -> list[Path]:
    """Upscale ``images`` with the model file ``model`` (a checkpoint of any format, or ``.onnx``)."""
    net = load_model(model, overrides=overrides).model  # a checkpoint or an ONNX graph (read-only model)
    max_bytes = max_memory_mb * 2**20 if max_memory_mb else None
    return upscale_files(net, list(images), out, tile=tile, max_bytes=max_bytes, halo=halo, force=force)
