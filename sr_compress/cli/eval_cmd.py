"""``srcompress eval``: PSNR/SSIM of a model per image and on average, with a bicubic reference row."""

from __future__ import annotations

import click

from ._common import (
    DEGRADATIONS,
    console,
    err_console,
    force_option,
    json_option,
    model_options,
    overrides_from,
    print_json,
)


@click.command("eval")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", default="default", show_default=True,
              help="'default' (bundled validation photos), a folder of HR images / HR+LR pairs, or a MATLAB "
                   ".npz of the AIL release (bicubic Y inputs: its unrounded-float protocol, VDSR-style models).")
@click.option("--degradation", type=DEGRADATIONS, default="bi", show_default=True,
              help="How LR images are made from HR ones (when the folder holds HR only).")
@click.option("--no-bicubic", is_flag=True, help="Leave out the bicubic reference row.")
@click.option("--crops", type=click.Path(dir_okay=False), default=None,
              help="Also write a PNG of the most detailed window of each image: bicubic | model | HR.")
@click.option("--all-depths", is_flag=True,
              help="Elastic table instead: mean scores, params and FLOPs (320x180 LR) of the model truncated to "
                   "every depth N..1 (see `srcompress truncate`); --crops and the bicubic row do not apply.")
@model_options
@force_option
@json_option
def eval_(model: str, data: str, degradation: str, no_bicubic: bool, crops: str | None, all_depths: bool,
          force: bool, as_json: bool, **over) -> None:
    """Evaluate MODEL (ours or a foreign checkpoint): Y-PSNR / SSIM and RGB PSNR per image.

    \b
    Example:
      srcompress eval teacher.pt --data ~/datasets/Set5 --crops set5_crops.png
      srcompress eval asrn_x2.pt --all-depths --json
      srcompress eval vdsr.pth --scale 3 --data ../shared/data/set5/matlab_bicubic_x3.npz
    """
    from ..ops.evaluate import evaluate

    o = evaluate(model, data=data, degradation=degradation, bicubic=not no_bicubic, crops=crops,
                 all_depths=all_depths, overrides=overrides_from(over), force=force)
    if o.mode == "npz":
        _render_npz(o.npz, as_json)
    elif o.mode == "depths":
        _render_depths(o.loaded.model, o.depths, data, degradation, as_json)
    elif as_json:
        print_json({"model": model, "guesses": o.loaded.guesses, "reports": [r.to_dict() for r in o.reports]})
    else:
        from ._render import eval_table, show_guesses

        show_guesses(o.loaded.guesses)
        console.print(eval_table(o.reports, title=f"×{o.loaded.model.scale} on {data} ({degradation.upper()})"))


def _render_depths(model, table, data: str, degradation: str, as_json: bool) -> None:
    for w in table.warnings:
        err_console.print(f"[yellow]warning[/] {w}")
    if as_json:
        print_json(table.to_dict())
        return
    from rich.table import Table

    t = Table(title=f"{model.arch} ×{model.scale}, every depth, on {data} ({degradation.upper()})",
              caption=f"Y: BT.601 luma, 8-bit, scale px cropped; GFLOPs at {table.size[0]}x{table.size[1]} LR")
    for col in ("blocks", "Y-PSNR", "Δ vs full", "SSIM", "params", "GFLOPs"):
        t.add_column(col, justify="right")
    full = table.rows[0].psnr_y
    for r in table.rows:
        t.add_row(str(r.depth), f"{r.psnr_y:.2f}", f"{r.psnr_y - full:+.2f}", f"{r.ssim_y:.4f}", f"{r.params:,}",
                  f"{r.gflops:.2f}")
    console.print(t)


def _render_npz(scores, as_json: bool) -> None:
    if as_json:
        print_json(scores.to_dict())
        return
    from rich.table import Table

    t = Table(title=f"×{scores.scale} on {scores.data}", caption="AIL-release protocol: MATLAB bicubic Y input, "
              "output clipped, unrounded float Y-PSNR, scale px shaved")
    t.add_column("image")
    t.add_column("Y-PSNR", justify="right")
    for name, v in scores.images.items():
        t.add_row(name, f"{v:.3f}")
    t.add_section()
    t.add_row("[bold]mean[/]", f"[bold]{scores.mean_psnr_y:.3f}[/]")
    console.print(t)
