"""``srcompress info``: what a checkpoint or ONNX graph is."""

from __future__ import annotations

import click

from ._common import console, json_option, model_options, onnx_options, overrides_from, print_json
from ._types import SIZE


@click.command("info")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--size", type=SIZE, default="320x180", show_default=True,
              help="LR input size (WxH) for the FLOPs count.")
@model_options
@onnx_options
@json_option
def info(model: str, size: str, as_json: bool, **opts) -> None:
    """Show arch, hyper-parameters, parameters, FLOPs and provenance of MODEL (.pt or .onnx).

    \b
    Example:
      srcompress info student.pt --size 480x270
    """
    from ..ops.info import model_info

    data = model_info(model, size=size, overrides=overrides_from(opts))
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    t = Table(show_header=False, title=model)
    for key in ("format", "arch", "params", "input_size", "macs", "gflops"):
        if key in data:
            v = data[key]
            t.add_row(key, f"{v:,}" if isinstance(v, int) else f"{v:.2f}" if isinstance(v, float) else str(v))
    for k, v in data.get("hparams", {}).items():
        t.add_row(f"  {k}", _short(v))
    for g in data.get("guesses", []):
        t.add_row("guessed", g)
    for i, p in enumerate(data.get("provenance", [])):
        t.add_row(f"provenance[{i}]", f"{p.get('stage')} {_short(p.get('params', {}))} {p.get('time', '')}")
    console.print(t)


def _short(v, n: int = 100) -> str:
    s = str(v)
    return s if len(s) <= n else s[: n - 1] + "…"
