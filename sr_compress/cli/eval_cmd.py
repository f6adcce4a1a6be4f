"""``srcompress eval``: PSNR/SSIM of a model per image and on average, with a bicubic reference row; with
several models, several --data folders, --bench, --scales or --report: the paper table (models × sets)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ._common import (
    DEGRADATIONS,
    console,
    err_console,
    force_option,
    json_option,
    model_options,
    onnx_options,
    overrides_from,
    print_json,
)


@click.command("eval")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data", multiple=True,
              help="Repeatable. 'default' (bundled validation photos, the default), a folder in any benchmark "
                   "layout (HR only, BasicSR HR/+LR_bicubic/, SelfExSR image_SRF_s/, DIV2K), or a MATLAB .npz of "
                   "the AIL release (bicubic Y inputs: its unrounded-float protocol, VDSR-style models).")
@click.option("--bench", type=click.Path(file_okay=False), default=None,
              help="A folder holding the standard sets (Set5, Set14, B100/BSD100, Urban100, Manga109, directly or "
                   "one level down): evaluate on every one found (the paper table).")
@click.option("--scales", default=None, metavar="2,3,4",
              help="Scales of the table (comma-separated); a pre-upsampling model (VDSR) runs at each, another "
                   "model only at its own. Default: the models' scale.")
@click.option("--y", "y", type=click.Choice(["float", "matlab"]), default="float", show_default=True,
              help="Y convention: float (BasicSR and most papers) or matlab (Y rounded to 8 bits, MATLAB "
                   "rgb2ycbcr; EDSR/RCAN-era tables). See docs/metrics.md.")
@click.option("--report", type=click.Path(file_okay=False), default=None,
              help="Write the table as report.md and every number (per image, RGB PSNR too) as report.json here.")
@click.option("--degradation", type=DEGRADATIONS, default="bi", show_default=True,
              help="How LR images are made from HR ones (when the folder holds HR only).")
@click.option("--no-bicubic", is_flag=True, help="Leave out the bicubic reference row.")
@click.option("--crops", type=click.Path(dir_okay=False), default=None,
              help="Also write a PNG of the most detailed window of each image: bicubic | model | HR.")
@click.option("--all-depths", is_flag=True,
              help="Elastic table instead: mean scores, params and FLOPs (320x180 LR) of the model truncated to "
                   "every depth N..1 (see `srcompress truncate`); --crops and the bicubic row do not apply.")
@model_options
@onnx_options
@force_option
@json_option
def eval_(models: tuple[str, ...], data: tuple[str, ...], bench: str | None, scales: str | None, y: str,
          report: str | None, degradation: str, no_bicubic: bool, crops: str | None, all_depths: bool, force: bool,
          as_json: bool, **over) -> None:
    """Evaluate MODELS (ours or foreign checkpoints; one model may also be any SR net as an ONNX graph, of any
    precision): Y-PSNR / SSIM and RGB PSNR.

    One model on one --data: per image. Several models, several --data, --bench, --scales or --report: the
    paper table — bicubic first, then each model, on each set (mean Y-PSNR / SSIM), with per-set progress.

    \b
    Examples:
      srcompress eval teacher.pt --data ~/datasets/Set5 --crops set5_crops.png
      srcompress eval a.pt b.pt --bench ~/datasets --report runs/table
      srcompress eval vdsr.pt --scales 2,3,4 --data Set5 --data Set14 --data B100 --y matlab
      srcompress eval asrn_x2.pt --all-depths --json
      srcompress eval vdsr.pth --scale 3 --data ../shared/data/set5/matlab_bicubic_x3.npz
      srcompress eval realesr-general-x4v3.onnx --input-range 1 --data ~/datasets/Set14
      srcompress eval student_int8.onnx
    """
    from ..errors import ConfigError

    if len(models) > 1 or len(data) > 1 or bench or scales or report:
        if crops or all_depths:
            raise ConfigError("--crops and --all-depths take one model and one --data, not a table")
        from ..ops.evaluate import evaluate_sets

        try:
            scale_list = [int(v) for v in scales.split(",")] if scales else None
        except ValueError:
            raise ConfigError(f"--scales takes comma-separated integers such as 2,3,4, not {scales!r}") from None
        with _set_progress() as progress:
            o = evaluate_sets(models, data=data, bench=bench, scales=scale_list, y=y, degradation=degradation,
                              bicubic=not no_bicubic, report=report, overrides=overrides_from(over), force=force,
                              progress=progress)
        _render_table(o, as_json)
        return
    from ..ops.evaluate import evaluate

    model, data_one = models[0], (data[0] if data else "default")
    o = evaluate(model, data=data_one, degradation=degradation, bicubic=not no_bicubic, crops=crops,
                 all_depths=all_depths, overrides=overrides_from(over), force=force, y=y)
    data = data_one
    if o.mode == "npz":
        _render_npz(o.npz, as_json)
    elif o.mode == "depths":
        _render_depths(o.loaded.model, o.depths, data, degradation, as_json)
    elif as_json:
        guesses = o.loaded.guesses if o.loaded else []
        print_json({"model": model, "guesses": guesses, "reports": [r.to_dict() for r in o.reports]})
    else:
        from ._render import eval_table, show_guesses

        show_guesses(o.loaded.guesses if o.loaded else [])
        console.print(eval_table(o.reports, title=f"×{o.reports[0].scale} on {data} ({degradation.upper()})"))


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


def _render_table(o, as_json: bool) -> None:
    from ._render import show_guesses

    if as_json:
        print_json({"models": {k: {"guesses": v.guesses} for k, v in o.loaded.items()}, **o.table.to_dict(),
                    "report": [str(p) for p in o.files] if o.files else None})
        return
    from rich.table import Table

    from ..evaluate import Y_CONVENTIONS

    for lm in o.loaded.values():
        show_guesses(lm.guesses)
    tab = o.table
    t = Table(title="Y-PSNR / SSIM", caption=f"Y convention: {tab.y} — {Y_CONVENTIONS[tab.y]}; scale px cropped")
    t.add_column("scale")
    t.add_column("method")
    for n in tab.set_names:
        t.add_column(n, justify="right")
    for scale in tab.scales:
        for m in tab.methods:
            cells = [("–" if (v := tab.mean(m, n, scale)) is None else f"{v.psnr_y:.2f} / {v.ssim_y:.4f}")
                     for n in tab.set_names]
            t.add_row(f"×{scale}", m, *cells)
        t.add_section()
    console.print(t)
    for s in tab.sets:
        console.print(f"[dim]{s.name} ×{s.scale}: {s.layout}" + "".join(f"; {x}" for x in s.notes) + "[/]")
    if o.files:
        console.print(f"wrote {o.files[0]} and {o.files[1]}")


@contextmanager
def _set_progress() -> Iterator:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), console=err_console,
                  transient=True) as bar:
        tasks: dict = {}

        def update(ev: dict) -> None:
            key = (ev["set"], ev["scale"])
            if key not in tasks:
                tasks[key] = bar.add_task(f"{ev['set']} ×{ev['scale']}", total=ev["total"])
            bar.update(tasks[key], completed=ev["done"])

        yield update
