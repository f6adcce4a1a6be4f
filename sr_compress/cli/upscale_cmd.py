"""``srcompress upscale``: super-resolve image files with a checkpoint (or an exported ONNX graph)."""

from __future__ import annotations

import click

from ._common import console, force_option, model_options, overrides_from


@click.command("upscale")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output .png for one image, else a folder (files named <stem>_x<scale>.png).")
@click.option("--tile", type=click.IntRange(min=8), default=None,
              help="Process in overlapping tiles of this LR size (bounded memory, identical output).")
@model_options
@force_option
def upscale(model: str, images: tuple[str, ...], output: str, tile: int | None, force: bool, **over) -> None:
    """Upscale IMAGES with MODEL (.pt checkpoint of any supported format, or .onnx). 8-bit PNG out.

    Y-channel models (VDSR, FSRCNN-Y) super-resolve luma and keep the bicubic-upscaled chroma.

    \b
    Example:
      srcompress upscale student.pt photo.png -o photo_x4.png --tile 256
    """
    if model.lower().endswith(".onnx"):
        from ..deploy.tiling import upscale_onnx_files

        written = upscale_onnx_files(model, list(images), output, tile=tile, force=force)
    else:
        from ..workflows import load_model, upscale_files

        loaded = load_model(model, overrides=overrides_from(over))
        written = upscale_files(loaded.model, list(images), output, tile=tile, force=force)
    for p in written:
        console.print(f"wrote {p}")
