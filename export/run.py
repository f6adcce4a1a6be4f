#!/usr/bin/env python3
"""Super-resolve an image with an srcompress ONNX export. Needs only onnxruntime, numpy and pillow.

    python export/run.py model.onnx in.png -o out.png [--tile 256] [--max-memory-mb N] [--threads T]

The graph's metadata (written by ``srcompress export``) gives scale, channels (3 = RGB, 1 = Y),
pre_upsample and the receptive radius. Y models: BT.601 YCbCr with MATLAB's rgb2ycbcr coefficients; the
network super-resolves Y, Cb/Cr are bicubic-upscaled; pre-upsampling models (VDSR) take the
bicubic-upscaled image. The bicubic here is Pillow's (a = -0.5, edge-clamped), not MATLAB's imresize kernel
that ``srcompress upscale`` uses, so those pixels can differ slightly (≤ 3 grey levels, mean ≈ 0.01 in the
tests) from srcompress's own output. Output: 8-bit PNG.

Tiling (``--tile`` in LR pixels and/or ``--max-memory-mb``) is exact: tiles overlap by the receptive radius
and the stitched result equals whole-image inference. The tiling code is srcompress's own
``sr_compress/deploy/tiling.py`` (it imports only numpy), loaded by path: from next to this script (copy it
there when deploying) or from the source tree this script lives in. Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TILING_PATHS = (HERE / "tiling.py", HERE.parent / "sr_compress" / "deploy" / "tiling.py")
_YCC = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0


class RunError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Super-resolve an image with an srcompress ONNX export.")
    p.add_argument("model", help="the .onnx file written by `srcompress export`")
    p.add_argument("image", help="an 8-bit RGB image (PNG, JPEG, ...)")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    p.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (exact; bounds memory)")
    p.add_argument("--max-memory-mb", type=float, default=None,
                   help="pick the largest tile whose estimated activation memory fits N MiB")
    p.add_argument("--halo", type=int, default=None, help="override the receptive radius from the metadata")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--low-memory", action="store_true", help="turn onnxruntime's memory arena off")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    return p.parse_args(argv)


def open_session(path: Path, threads: int | None, low_memory: bool) -> tuple[Any, dict[str, str]]:
    """An ORT CPU session (optimisation ALL, memory pattern off; arena off if ``low_memory``) + metadata."""
    import onnxruntime as ort

    if not path.is_file():
        raise RunError(f"model not found: {path}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = False
    opts.enable_cpu_mem_arena = not low_memory
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own Fail / InvalidProtobuf / ... classes
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RunError(f"{path}: onnxruntime cannot load it ({first})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if "scale" not in meta or "channels" not in meta:
        raise RunError(f"{path}: no scale/channels metadata; export the model with `srcompress export`")
    return session, meta


def load_rgb(path: Path) -> np.ndarray:
    """An 8-bit RGB image file → float32 (H, W, 3) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise RunError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode != "RGB":
                raise RunError(f"{path}: image mode {img.mode}, not RGB; the runner takes 8-bit RGB")
            return np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError):
        raise RunError(f"{path}: not a readable image") from None


def bicubic(plane: np.ndarray, scale: int) -> np.ndarray:
    """Pillow bicubic upscaling of one float plane (H, W) by ``scale``."""
    from PIL import Image

    h, w = plane.shape
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    return np.asarray(img.resize((w * scale, h * scale), Image.Resampling.BICUBIC), dtype=np.float32)


def model_input(rgb: np.ndarray, scale: int, channels: int,
                pre: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(network input NCHW, bicubic-upscaled CbCr (2, sH, sW) for Y models or None)."""
    planes, cbcr = np.moveaxis(rgb, -1, 0), None
    if channels == 1:
        ycc = np.einsum("ij,jhw->ihw", _YCC, planes) + _OFFSET[:, None, None]
        planes, cbcr = ycc[:1], np.stack([bicubic(c, scale) for c in ycc[1:]])
    if pre:
        planes = np.stack([bicubic(c, scale) for c in planes])
    return planes[None].astype(np.float32), cbcr


def to_rgb(out: np.ndarray, cbcr: np.ndarray | None, band: int = 64) -> np.ndarray:
    """Network output (C, H, W) (+ CbCr for Y models) → 8-bit (H, W, 3), converted in bands of rows so the
    float temporaries stay small next to the output itself."""
    rgb = np.empty((out.shape[1], out.shape[2], 3), np.uint8)
    inverse = np.linalg.inv(_YCC).astype(np.float32)
    for r0 in range(0, out.shape[1], band):
        part = out[:, r0:r0 + band]
        if cbcr is not None:
            ycc = np.concatenate([part[:1], cbcr[:, r0:r0 + band]]) - _OFFSET[:, None, None].astype(np.float32)
            part = np.einsum("ij,jhw->ihw", inverse, ycc)
        rgb[r0:r0 + band] = np.clip(np.rint(np.moveaxis(part, 0, -1) * 255.0), 0, 255)
    return rgb


def load_tiling() -> Any:
    """srcompress's tiling module (numpy-only), loaded by path without importing the sr_compress package."""
    path = next((p for p in TILING_PATHS if p.is_file()), None)
    if path is None:
        raise RunError("tiling needs tiling.py beside run.py: copy sr_compress/deploy/tiling.py there")
    spec = importlib.util.spec_from_file_location("srcompress_tiling", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_network(session: Any, x: np.ndarray, meta: dict[str, str], args: argparse.Namespace) -> np.ndarray:
    """Whole image, or exact tiles when --tile / --max-memory-mb is given."""
    name = session.get_inputs()[0].name
    if args.tile is None and args.max_memory_mb is None:
        return session.run(None, {name: x})[0]
    tiling = load_tiling()
    try:
        prof = tiling.profile_from_metadata(meta)
        halo = prof.halo if args.halo is None else args.halo
        prof = tiling.TileProfile(halo, prof.bytes_per_px, prof.scale)
        limits = [args.tile * (int(meta["scale"]) // prof.scale)] if args.tile else []
        if args.max_memory_mb is not None:
            limits.append(tiling.tile_for_memory(prof, args.max_memory_mb * 2**20))
        return tiling.tiled_forward(tiling.onnx_fn(session), x, prof.scale, min(limits), halo)
    except ValueError as e:  # tiling's ConfigError is a ValueError outside the package
        raise RunError(str(e)) from None


def save_png(arr: np.ndarray, out: Path, src: Path, force: bool) -> None:
    """Write atomically (temp file + rename); never over the input, over an existing file only with force."""
    from PIL import Image

    if out.exists() and out.resolve() == src.resolve():
        raise RunError(f"refusing to write {out}: it is the input image")
    if out.exists() and not force:
        raise RunError(f"{out} exists; use --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        Image.fromarray(arr, "RGB").save(tmp, format="PNG")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(args: argparse.Namespace) -> Path:
    session, meta = open_session(Path(args.model), args.threads, args.low_memory)
    scale, channels = int(meta["scale"]), int(meta["channels"])
    pre = meta.get("pre_upsample", "false").lower() == "true"
    if args.tile is not None and args.tile < 1:
        raise RunError(f"--tile must be ≥ 1, got {args.tile}")
    x, cbcr = model_input(load_rgb(Path(args.image)), scale, channels, pre)
    out = run_network(session, x, meta, args)[0]
    save_png(to_rgb(out, cbcr), Path(args.output), Path(args.image), args.force)
    return Path(args.output)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
