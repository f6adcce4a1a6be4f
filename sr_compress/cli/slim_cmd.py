"""``srcompress slim``: channel slimming by ρ (AIL paper §4) with coupled-channel groups."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import (
    RegistryName,
    console,
    force_option,
    json_option,
    model_options,
    overrides_from,
    print_json,
    seed_option,
    stage_option,
)
from ._types import FINITE, SIZE

D = "sr_compress.ops.slim:DEFAULTS:"  # the defaults live in compress.slim.slim
SELECT = RegistryName("sr_compress.compress.slim:SELECTS")
INIT = RegistryName("sr_compress.compress.slim:INITS")


@click.command("slim")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--rho", type=FINITE, required=True,
              help="Fraction of channels removed from every inner layer, in (0, 1): width → round(C·(1−ρ)).")
@stage_option("--select", type=SELECT, default_from=D + "select",
              help="Which channels stay: the most important (group L1 norm) or a seeded random subset.")
@stage_option("--init", "init", type=INIT, default_from=D + "init",
              help="copy: the kept channels' weights from MODEL; scratch: fresh weights (the paper's students).")
@stage_option("--round-to", type=click.IntRange(1, 4096), default_from=D + "round_to",
              help="Round every width up to a multiple of this (8 or 16 suit CPU/GPU kernels).")
@stage_option("--size", type=SIZE, default_from=D + "size", help="LR input size (WxH) for the FLOPs columns.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Student checkpoint [default: MODEL_slim<ρ>.pt beside MODEL].")
@model_options
@seed_option
@force_option
@json_option
def slim(model: str, rho: float, select: str, init: str, round_to: int, size: str, output: str | None, seed: int,
         force: bool, as_json: bool, **over) -> None:
    """Slim MODEL (our checkpoint, EDSR-PyTorch, BasicSR, MMagic or pytorch-vdsr) by ρ.

    Every inner conv keeps round(C·(1−ρ)) output channels; coupled channels (an EDSR's skip path, the r²
    outputs before a PixelShuffle) are cut together with one index set. Prints the per-layer widths,
    parameters and FLOPs before → after. Recover accuracy with `srcompress finetune`.

    \b
    Examples:
      srcompress slim teacher.pt --rho 0.5 -o student.pt
      srcompress slim vdsr.pth --rho 0.8 --select random --seed 1 -o vdsr_f13.pt
      srcompress slim edsr_x4.pt --rho 0.5 --round-to 8 --json -o edsr_half.pt
    """
    from ..ops.slim import slim_checkpoint
    from ._render import show_guesses

    o = slim_checkpoint(model, rho=rho, out=output, select=select, init=init, round_to=round_to, seed=seed,
                        size=size, overrides=overrides_from(over), force=force)
    if as_json:
        print_json({**o.report.to_dict(), "output": str(o.path)})
        return
    show_guesses(o.loaded.guesses)
    _render(o.report, o.path)


def _render(r, path: Path) -> None:
    from rich.table import Table

    w, h = r.size
    t = Table(title=f"slim ρ = {r.params['rho']:g} ({r.params['select']}, init {r.params['init']})",
              caption=f"FLOPs = 2·MACs at a {w}×{h} LR input")
    for col, just in (("layer", "left"), ("in", "right"), ("out", "right"), ("params", "right"),
                      ("GFLOPs", "right")):
        t.add_column(col, justify=just)
    for row in r.layers:
        t.add_row(row["layer"], _arrow(row["in"]), _arrow(row["out"]), _arrow(row["params"], "{:,}"),
                  _arrow([2 * m / 1e9 for m in row["macs"]], "{:.3f}"))
    t.add_section()
    t.add_row("[bold]total[/]", "", "", _arrow([r.params_before, r.params_after], "{:,}"),
              _arrow([2 * r.macs_before / 1e9, 2 * r.macs_after / 1e9], "{:.3f}"))
    console.print(t)
    console.print(f"params ×{r.params_after / r.params_before:.3f}, FLOPs ×{r.macs_after / max(r.macs_before, 1):.3f}"
                  f" → {path}")


def _arrow(pair: list, fmt: str = "{}") -> str:
    a, b = (fmt.format(v) for v in pair)
    return a if a == b else f"{a} → {b}"
