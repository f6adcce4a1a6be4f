"""``srcompress run``: execute a recipe (a TOML list of stages), reusing cached stage artifacts."""

from __future__ import annotations

import click

from ._common import console, err_console, json_option, print_json, show_warnings


@click.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder (overrides the recipe's).")
@click.option("--fresh", is_flag=True, help="Run every stage, ignoring cached artifacts.")
@json_option
def run(recipe: str, out: str | None, fresh: bool, as_json: bool) -> None:
    """Run RECIPE: its stages in order, each cached by its inputs and parameters.

    A stage runs again when its parameters, the seed, the content of a file or data folder it reads, an
    earlier stage it uses, or srcompress's own code changed; otherwise its artifact is reused.

    \b
    Examples:
      srcompress run recipes/demo.toml
      srcompress run recipes/demo.toml --fresh      # run every stage again
    """
    from pathlib import Path

    from ..recipes import load_recipe, run_recipe
    from ._progress import training_progress

    r = load_recipe(recipe)
    if out:
        r.out = Path(out).resolve()
    with training_progress() as progress:
        results = run_recipe(r, progress=progress, fresh=fresh,
                             on_stage=lambda s, status: err_console.print(f"[bold]{s.id}[/] ({s.kind}): {status}"))
    for x in results:
        show_warnings([f"{x.id}: {w}" for w in x.warnings])
    if as_json:
        print_json({"recipe": r.name, "out": str(r.out), "stages": [vars(x) for x in results]})
        return
    from rich.table import Table

    t = Table(title=f"recipe {r.name} → {r.out}")
    for col in ("stage", "kind", "status", "seconds", "artifact", "summary"):
        t.add_column(col)
    for x in results:
        summ = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in x.summary.items())
        t.add_row(x.id, x.kind, x.status, f"{x.seconds:.1f}", Path(x.artifact).name, summ)
    console.print(t)
    _show_stage_reports(results)


def _show_stage_reports(results) -> None:
    """Eval stages: the per-image table (model vs bicubic) as `srcompress eval` prints it; bench: the report."""
    import json
    from pathlib import Path

    from ..evaluate import EvalReport
    from ._render import eval_table

    for x in results:
        if x.kind == "eval":
            reports = [EvalReport.from_dict(d) for d in json.loads(Path(x.artifact).read_text())]
            console.print(eval_table(reports, title=f"{x.id}: ×{reports[0].scale}"))
        elif x.kind == "bench":
            from ..deploy.bench import BenchResult
            from ._render import bench_table

            bench_table(BenchResult.from_dict(json.loads((Path(x.artifact).parent / "report.json").read_text())))
