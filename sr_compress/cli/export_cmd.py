"""``srcompress export``: a checkpoint → a simplified ONNX graph, validated against PyTorch."""

from __future__ import annotations

import click

from ._common import (
    console,
    force_option,
    json_option,
    model_options,
    overrides_from,
    print_json,
    seed_option,
    stage_option,
)
from ._types import NON_NEGATIVE

D = "sr_compress.ops.export:DEFAULTS:"  # the defaults live in deploy.onnx.export_onnx


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--onnx/--check-only", "to_onnx", default=True,
              help="Write the ONNX file (default), or only export, simplify and validate it in a temporary "
                   "folder and report (nothing is written).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output .onnx file [default: MODEL with the .onnx suffix].")
@stage_option("--opset", type=click.IntRange(11, 21), default_from=D + "opset", help="ONNX opset.")
@click.option("--tolerance", type=NON_NEGATIVE, default=None,
              help="Max |ORT - PyTorch| on the [0,1] output [default: 1e-4].")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim (keep the exporter's graph as is).")
@click.option("--halo", type=click.IntRange(0, 4096), default=None,
              help="Receptive radius (input px) to record for tiled inference, instead of deriving it from the "
                   "graph (for ops the analysis cannot follow; too small a halo breaks exactness).")
@model_options
@seed_option
@force_option
@json_option
def export(model: str, to_onnx: bool, output: str | None, opset: int, tolerance: float | None,
           no_simplify: bool, halo: int | None, seed: int, force: bool, as_json: bool, **over) -> None:
    """Export MODEL (.pt, any supported checkpoint format) to a dynamic-size ONNX graph.

    The graph is simplified (onnxsim), checked, and validated with onnxruntime against PyTorch on a random
    batch and on real image crops at two sizes; on a mismatch nothing is written (exit 1). The verdict of
    the plain-graph check is reported (and enforced for models that declare themselves plain).

    \b
    Examples:
      srcompress export student.pt --onnx -o student.onnx
      srcompress export student.pt --check-only          # would it export, validate and be plain?
    """
    from ..ops.export import export as export_op
    from ._render import show_guesses

    o = export_op(model, output, write=to_onnx, opset=opset, simplify=not no_simplify, tolerance=tolerance,
                  seed=seed, halo=halo, overrides=overrides_from(over), force=force)
    show_guesses(o.loaded.guesses)
    if as_json:
        print_json(o.report.to_dict())
    else:
        _render(o.report)


def _render(r) -> None:
    from rich.table import Table

    ops = Table(title=f"{r.path or 'check only'}  (opset {r.opset})")
    ops.add_column("op")
    ops.add_column("before", justify="right")
    ops.add_column("after", justify="right")
    for op in sorted(set(r.ops_before) | set(r.ops_after)):
        ops.add_row(op, str(r.ops_before.get(op, 0)), str(r.ops_after.get(op, 0)))
    ops.add_section()
    ops.add_row("[bold]nodes[/]", str(r.nodes_before), str(r.nodes_after))
    console.print(ops)
    shapes = ", ".join("x".join(map(str, s)) for s in r.validated_shapes)
    console.print(f"max |ORT - PyTorch|: random {_err(r.max_err_random)}, real images {_err(r.max_err_real)} "
                  f"(tolerance {r.tolerance:.0e}; inputs {shapes})")
    verdict = "[green]plain[/]" if r.is_plain else "[yellow]not plain[/]"
    console.print(f"{verdict}: {r.plain_reason}")
    done = f"wrote {r.path}" if r.path is not None else "checked only, nothing written"
    from ..deploy.tiling import NOT_TILEABLE

    radius = ("receptive field: the whole image (not tileable)" if r.receptive_radius == NOT_TILEABLE
              else f"receptive radius {r.receptive_radius} px (the tiling halo)")
    console.print(f"{radius}; {done} in {r.seconds:.1f} s")


def _err(e: float | None) -> str:
    return "not checked" if e is None else f"{e:.2e}"
