"""``srcompress fold``: fold a plain student's channel offsets out of its activations (before int8)."""

from __future__ import annotations

import click

from ._common import console, force_option, json_option, print_json, seed_option, stage_option
from ._types import FINITE

D = "sr_compress.ops.fold:DEFAULTS:"


@click.command("fold")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output checkpoint (.pt).")
@stage_option("--border", type=click.Choice(("bias", "exact")), default_from=D + "border",
              help="bias: offsets into the next layer's bias (the border ring changes: fine-tune after); "
                   "exact: a constant channel keeps the model exact.")
@stage_option("--margin", type=FINITE, default_from=D + "margin",
              help="Fold c = min − margin·span of each channel that stays above zero on the calibration patches.")
@click.option("--calib", default="default", show_default=True,
              help="'default' (the bundled training photos) or a folder of images for the statistics.")
@stage_option("--patches", type=click.IntRange(1, 100_000), default_from=D + "patches",
              help="Calibration patches.")
@stage_option("--patch-size", type=click.IntRange(8, 2048), default_from=D + "patch_size",
              help="LR patch side (px).")
@seed_option
@force_option
@json_option
def fold(model: str, output: str, border: str, margin: float, calib: str, patches: int, patch_size: int, seed: int,
         force: bool, as_json: bool) -> None:
    """Fold the channel offsets of the plain student MODEL (plainify's mean shift) out of its activations.

    Plain students carry per-channel offsets of thousands that use up the 8-bit range of int8 activations.
    With --border bias each offset moves into the next layer's bias and the border ring (about one LR pixel
    per layer) changes: fine-tune briefly, then `srcompress quantize --no-rewrite` (docs/quantize.md).

    \b
    Examples:
      srcompress fold plain.pt -o plain_folded.pt
      srcompress finetune plain_folded.pt --strategy l1 --steps 200 -o plain_int8_ready.pt
      srcompress quantize plain_int8_ready.pt --no-rewrite -o plain_int8.onnx
    """
    from ..ops.fold import fold_file

    o = fold_file(model, output, border=border, margin=margin, calib=calib, patches=patches,
                  patch_size=patch_size, seed=seed, force=force)
    r = o.report
    if as_json:
        print_json({**r.to_dict(), "output": str(o.path), "max_diff": o.max_diff,
                    "max_diff_interior": o.max_diff_interior, "border_px": o.border_px})
        return
    folded = sum(layer.folded for layer in r.layers)
    console.print(f"folded {folded} channel offsets in {sum(1 for layer in r.layers if layer.folded)} layers "
                  f"(border {r.border}, {r.constant_channels} constant channels); largest per-tensor range "
                  f"{max((layer.range_before for layer in r.layers), default=0):.0f} → "
                  f"{max((layer.range_after for layer in r.layers), default=0):.0f}")
    console.print(f"output change on the calibration patches: max {o.max_diff:.3g} (border included), "
                  f"{o.max_diff_interior:.3g} beyond {o.border_px} LR px of the edges → {o.path}")
