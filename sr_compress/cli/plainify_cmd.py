"""``srcompress plainify``: a residual teacher → a plain student (MemSR) with its bridges, or its exact plain
equivalent."""

from __future__ import annotations

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
from ._types import NON_NEGATIVE, POSITIVE, SIZE, FiniteFloat

D = "sr_compress.ops.plainify:DEFAULTS:"  # the defaults live in compress.plainify.plainify
SCHEMES = RegistryName("sr_compress.compress.plainify:SCHEMES")
TAILS = RegistryName("sr_compress.compress.plainify:TAILS")


@click.command("plainify")
@click.argument("teacher", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output checkpoint (.pt).")
@click.option("--eps", type=FiniteFloat(0, 1), default=None,
              help="Per-layer relative reconstruction error that sets each width [default: 0.05].")
@click.option("--width", type=click.IntRange(1, 65536), default=None, help="Fixed student width for every layer.")
@click.option("--memory-budget", default=None, metavar="SIZE",
              help="Pick the smallest ε whose student's theoretical peak at --size fits, e.g. 200MB.")
@stage_option("--size", type=SIZE, default_from=D + "size", help="Output size (WxH) the memory bound is computed at.")
@stage_option("--scheme", type=SCHEMES, default_from=D + "scheme",
              help="How --exact-only carries a skip across a ReLU: relu(x), relu(-x) pairs, or x + C.")
@click.option("--shift-c", type=POSITIVE, default=None, help="C of the shift scheme [default: 1000·img_range/255].")
@click.option("--exact-only", is_flag=True, help="Write the exact plain equivalent (no SVD, teacher widths).")
@stage_option("--tail", type=TAILS, default_from=D + "tail",
              help="Copy the teacher's upsampler, or fit one conv to 3·s² + one PixelShuffle (least squares).")
@stage_option("--shift-coef", type=NON_NEGATIVE, default_from=D + "shift_coef",
              help="Mean shift of the student features: k·mean of their negative part (the paper's 3 clips "
                   "about 12% of every feature; see docs/plainify.md).")
@stage_option("--round-to", type=click.IntRange(1, 4096), default_from=D + "round_to",
              help="Round each width up to a multiple of this (e.g. 8).")
@click.option("--data", default="default", show_default=True,
              help="Training images for the calibration patches: 'default' or a folder.")
@stage_option("--patches", type=click.IntRange(1, 100_000), default_from=D + "patches",
              help="Calibration patches (random LR crops).")
@stage_option("--patch-size", type=click.IntRange(4, 2048), default_from=D + "patch_size", help="LR patch side.")
@stage_option("--columns", type=click.IntRange(1, 10_000_000), default_from=D + "columns",
              help="At most this many pixel columns per SVD.")
@model_options
@seed_option
@force_option
@json_option
def plainify(teacher: str, output: str, eps: float | None, width: int | None, memory_budget: str | None,
             size: str, scheme: str, shift_c: float | None, exact_only: bool, tail: str, shift_coef: float,
             round_to: int, data: str,
             patches: int, patch_size: int, columns: int, seed: int, force: bool, as_json: bool, **over) -> None:
    """Turn the residual TEACHER (EDSR-style: ours, EDSR-PyTorch, BasicSR, MMagic) into a plain conv chain.

    By default: the MemSR winning initialisation — features of each layer of the teacher's plain equivalent
    on real training patches, SVD, one student layer per teacher layer with a width set by --eps, --width or
    --memory-budget; the 1×1 bridges are stored in the checkpoint for `--strategy memsr` fine-tuning. With
    --exact-only: the exact plain equivalent (verified in float64), for export or as a reference.

    \b
    Examples:
      srcompress plainify teacher.pt --eps 0.05 --tail shuffle -o student.pt
      srcompress plainify teacher.pt --memory-budget 200MB --size 1920x1080 --tail shuffle -o student.pt
      srcompress plainify teacher.pt --exact-only --scheme pair -o plain_teacher.pt
    """
    from ..ops.plainify import plainify_file

    options = {"eps": eps, "width": width, "memory_budget": memory_budget, "exact_only": exact_only,
               "scheme": scheme, "tail": tail, "round_to": round_to, "shift_c": shift_c, "seed": seed}
    if not exact_only:
        options.update(size=size, data=None if data == "default" else data, patches=patches,
                       patch_size=patch_size, columns=columns, shift_coef=shift_coef)
    outcome = plainify_file(teacher, output, force=force, overrides=overrides_from(over), **options)
    if as_json:
        print_json(outcome.to_dict())
    else:
        _render(outcome)


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def _render(o) -> None:
    from rich.table import Table

    r = o.report
    if o.mode == "exact":
        console.print(f"exact plain equivalent ({r.scheme} scheme): {r.layers} layers, widths {r.widths}")
        console.print(f"max |plain − teacher| / output range: float64 {r.max_abs_err64:.2e}, "
                      f"float32 {r.max_abs_err32:.2e}")
        for n in r.notes:
            console.print(f"[dim]{n}[/]")
    else:
        t = Table(title=f"plainify ({r.mode}{'' if r.eps is None else f', ε = {r.eps:.4g}'})")
        for c in ("layer", "teacher width", "student width", "rel. error", "act"):
            t.add_column(c, justify="left" if c == "layer" else "right")
        for row in r.layers:
            t.add_row(row["name"], str(row["teacher_width"]), str(row["student_width"]),
                      f"{row['rel_error']:.4f}", row["act"])
        console.print(t)
        tail = f"tail {r.tail}" + ("" if r.tail_rel_error is None else f" (fit error {r.tail_rel_error:.4f})")
        console.print(f"{tail}; params {r.teacher_params:,} → {r.student_params:,}")
        w, h = r.bound_size
        share = "" if r.tail_share is None else f" (last layer + tail: {_mb(r.tail_bound_bytes)}, " \
                                                f"{100 * r.tail_share:.0f}%)"
        console.print(f"theoretical peak at {w}x{h}: teacher {_mb(r.teacher_bound_bytes)}, "
                      f"student {_mb(r.student_bound_bytes)}{share}")
        console.print(f"[dim]{r.patches} patches of {r.patch_size} px, {r.columns} columns, {r.seconds:.1f} s[/]")
    console.print(f"wrote {o.path}")
