"""``srcompress quantize``: a model → an int8 / fp16 / bf16 ONNX graph, calibrated and scored on images."""

from __future__ import annotations

import click

from ._common import console, force_option, json_option, print_json, seed_option, show_warnings, stage_option
from ._types import FINITE

D = "sr_compress.ops.quantize:DEFAULTS:"  # the defaults live in deploy.quantize.quantize


@click.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output .onnx file.")
@stage_option("--precision", type=click.Choice(("int8", "fp16", "bf16")), default_from=D + "precision",
              help="int8: static QDQ (uint8 activations, int8 weights); fp16/bf16: 16-bit graph, float32 I/O.")
@click.option("--calib", default="default", show_default=True,
              help="Calibration images: a folder, or 'default' (the bundled training photos).")
@stage_option("--method", type=click.Choice(("minmax", "percentile", "entropy")), default_from=D + "method",
              help="Activation-range calibration (int8).")
@click.option("--per-channel/--per-tensor", default=True, show_default=True,
              help="Weight scales per output channel or per tensor (int8).")
@click.option("--exclude", multiple=True, metavar="NODE", help="Keep this ONNX node in float (repeatable, int8).")
@click.option("--max-drop", type=FINITE, default=None,
              help="Fail (nothing written) above this Y-PSNR drop in dB [default: 0.1 int8, 0.02 fp16/bf16].")
@click.option("--eval-data", default="default", show_default=True,
              help="Held-out images for scoring: a folder (HR, or HR/LR pairs), or 'default' (bundled validation "
                   "photos).")
@stage_option("--patches", type=click.IntRange(1, 100_000), default_from=D + "patches", help="Calibration patches.")
@stage_option("--patch-size", type=click.IntRange(8, 2048), default_from=D + "patch_size",
              help="LR calibration patch side (px).")
@click.option("--no-rewrite", is_flag=True,
              help="Skip the exact plain-student rewrites (offset folding with a constant channel).")
@click.option("--no-align", is_flag=True,
              help="Keep conv widths as they are (default: zero channels added so onnxruntime runs every conv "
                   "as its fused int8 kernel; exact).")
@seed_option
@force_option
@json_option
def quantize(model: str, output: str, precision: str, calib: str, method: str, per_channel: bool,
             exclude: tuple[str, ...], max_drop: float | None, eval_data: str, patches: int, patch_size: int,
             no_rewrite: bool, no_align: bool, seed: int, force: bool, as_json: bool) -> None:
    """Quantise MODEL (.pt of any supported format, or a float32 .onnx) to an int8, fp16 or bf16 ONNX graph.

    int8 is calibrated on random LR patches of --calib; then the float and the quantised graphs run
    (onnxruntime) on held-out images and their Y-PSNR and largest per-pixel difference are reported. Above
    --max-drop nothing is written (exit 1). Input and output stay float32, so eval, bench, upscale and info
    take the result like any ONNX file. Plain students get exact rewrites first (docs/quantize.md).

    \b
    Examples:
      srcompress quantize student.pt -o student_int8.onnx
      srcompress quantize teacher.onnx --precision fp16 -o teacher_fp16.onnx
      srcompress quantize student.pt --calib photos/ --method percentile -o s8.onnx
    """
    from ..ops.quantize import quantize_file

    o = quantize_file(model, output, precision=precision, calib=calib, method=method, per_channel=per_channel,
                      exclude=exclude, max_drop=max_drop, eval_data=eval_data, patches=patches,
                      patch_size=patch_size, rewrite=not no_rewrite, align=not no_align, seed=seed, force=force)
    show_warnings(o.report.warnings)
    if as_json:
        print_json(o.report.to_dict())
    else:
        _render(o.report)


def _render(r) -> None:
    from rich.table import Table

    t = Table(title=f"{r.path}  ({r.precision}{', ' + r.method if r.method else ''})")
    for col in ("image", "float Y-PSNR", f"{r.precision} Y-PSNR", "max diff (levels)"):
        t.add_column(col, justify="left" if col == "image" else "right")
    for i in r.images:
        t.add_row(i.name, f"{i.float_psnr_y:.3f}", f"{i.quant_psnr_y:.3f}", f"{i.max_diff_levels:.1f}")
    t.add_section()
    t.add_row("[bold]mean[/]", f"{r.float_psnr_y:.3f}", f"{r.quant_psnr_y:.3f}", f"{r.max_diff_levels:.1f}")
    console.print(t)
    weights = ", ".join(f"{k} {v / 1e3:.1f} kB" for k, v in r.weights_by_dtype.items())
    console.print(f"drop {r.drop_db:+.3f} dB (max {r.max_drop_db:g}); weights: {weights}; {r.seconds:.1f} s")
    if r.rewrites.get("channels_aligned"):
        a = r.rewrites["channels_aligned"]
        console.print(f"aligned for onnxruntime's fused int8 conv: {a['convs']} conv(s) widened, {a['pads']} input(s) "
                      f"padded, {a['channels']} zero channel(s) added (exact)")
    if r.rewrites.get("constant_channels"):
        console.print(f"plain-student rewrites: {r.rewrites['constant_channels']} constant channel(s), offsets folded "
                      f"in {sum(1 for layer in r.rewrites['layers'] if layer['folded'])} layer(s)")
