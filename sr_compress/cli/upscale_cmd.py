"""``srcompress upscale``: super-resolve image files with a checkpoint (or an exported ONNX graph)."""

from __future__ import annotations

import click

from ._common import console, force_option, model_options, onnx_options, overrides_from
from ._types import FiniteFloat


@click.command("upscale")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output .png for one image, else a folder (files named <stem>_x<scale>.png).")
@click.option("--tile", type=click.IntRange(8, 65536), default=None,
              help="Process in overlapping tiles of this LR size (bounded memory, identical output).")
@click.option("--max-memory-mb", type=FiniteFloat(min=1), default=None,
              help="Cap the network's activation memory: picks the largest tile that fits (exact output).")
@click.option("--halo", type=click.IntRange(0, 4096), default=None,
              help="Tile overlap (input px) instead of the derived receptive radius (for graphs whose radius "
                   "cannot be derived; too small a halo breaks exactness).")
@model_options
@onnx_options
@force_option
def upscale(model: str, images: tuple[str, ...], output: str, tile: int | None, max_memory_mb: float | None,
            halo: int | None, force: bool, **over) -> None:
    """Upscale IMAGES with MODEL (.pt checkpoint of any supported format, or any SR net as .onnx). 8-bit PNG out.

    Y-channel models (VDSR, FSRCNN-Y) super-resolve luma and keep the bicubic-upscaled chroma.

    \b
    Example:
      srcompress upscale student.pt photo.png -o photo_x4.png --tile 256
    """
    from ..ops.upscale import upscale as upscale_op

    for p in upscale_op(model, images, output, tile=tile, max_memory_mb=max_memory_mb, halo=halo,
                        overrides=overrides_from(over), force=force):
        console.print(f"wrote {p}")
