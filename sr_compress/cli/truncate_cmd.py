"""``srcompress truncate``: keep the first K body blocks of a model (ASRN elastic depth), no retraining."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import console, force_option, json_option, print_json, seed_option, show_warnings


@click.command("truncate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--blocks", "-k", type=int, required=True, help="How many body blocks to keep (1..N).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output checkpoint (.pt).")
@seed_option
@force_option
@json_option
def truncate(model: str, blocks: int, output: str, seed: int, force: bool, as_json: bool) -> None:
    """Cut MODEL to its head, first BLOCKS body blocks and tail: a standalone, smaller model.

    Its output equals MODEL's output after BLOCKS blocks exactly (checked on a random input, seeded by
    --seed). Meant for models trained with deep supervision (--strategy dsl_psd); for others the
    intermediate depths were never trained and a warning says so. Pick BLOCKS from `eval --all-depths`.

    \b
    Example:
      srcompress truncate asrn_x2.pt --blocks 3 -o asrn_x2_k3.pt
    """
    from ..ops.truncate import truncate_checkpoint

    report = truncate_checkpoint(model, output, blocks=blocks, seed=seed, force=force).report
    show_warnings(report.warnings)
    if as_json:
        print_json({**report.to_dict(), "output": output})
        return
    console.print(f"{Path(model).name}: {report.blocks_before} → {report.blocks_after} blocks, "
                  f"{report.params_before:,} → {report.params_after:,} params; max |Δ| to the depth-{blocks} "
                  f"output {report.max_abs_diff:.1e}; wrote {output}")
