"""``srcompress bench``: latency, peak memory and the theoretical bound of models, side by side."""

from __future__ import annotations

import math
from typing import Any

import click

from ._common import RUNTIME_PRESETS, console, err_console, force_option, json_option, print_json
from ._render import bench_table
from ._types import SIZE

SETTINGS = ("device", "size", "scale", "threads", "runs", "warmup", "rounds", "presets", "precision")


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to run [default: cpu].")
@click.option("--size", type=SIZE, help="Output (HR) size WxH; the model input is size/scale [default: 1920x1080].")
@click.option("--scale", type=click.IntRange(2, 4), help="Scale, for a model that does not record it.")
@click.option("--threads", type=click.IntRange(1, 1024), help="Intra-op threads [default: PyTorch's].")
@click.option("--runs", type=click.IntRange(1, 100_000), help="Timed runs per model [default: 5].")
@click.option("--warmup", type=click.IntRange(0, 10_000), help="Warm-up runs per model [default: 2].")
@click.option("--rounds", type=click.IntRange(1, 1000), default=None,
              help="Fresh-process memory measurements per model (median) [default: 1].")
@click.option("--ort-preset", "presets", multiple=True, type=RUNTIME_PRESETS,
              help="onnxruntime memory settings; repeat to compare [default: lowmem = arena and memory "
                   "pattern off, glibc mmap threshold 1 MB].")
@click.option("--precision", type=click.Choice(["float32", "bf16", "fp16"]), default=None,
              help="PyTorch compute type of .pt models (ONNX graphs run in their own: see `srcompress quantize`) "
                   "[default: float32].")
@click.option("--channels-last/--nchw", default=True, show_default=True, help="PyTorch memory format (.pt).")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory measurement (latency only).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write report.md, report.json and report.png into this folder.")
@click.option("--budget", type=click.Path(dir_okay=False), default=None,
              help="Budgets TOML (e.g. export/budgets.toml): exit 1 when a model exceeds its budget.")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="A previous report.json: print per-model deltas and exit 1 on a regression.")
@click.option("--max-regression", "max_regression", multiple=True, metavar="METRIC=PCT",
              help="Allowed increase against --baseline (repeatable; metrics peak_mb, bound_mb, latency_ms, "
                   "params, gflop) [default: peak_mb=10 bound_mb=2 latency_ms=25 params=0 gflop=0].")
@click.option("--psnr", multiple=True, metavar="NAME=DB", help="A model's PSNR (report scatter plot).")
@force_option
@json_option
def bench(models: tuple[str, ...], as_json: bool, **opts: Any) -> None:
    """Measure latency (interleaved runs) and peak memory (fresh processes) of MODELS (.onnx / .pt).

    Every table states threads, provider, graph-optimisation level, input size, precision and machine.

    \b
    Example:
      srcompress bench teacher.onnx student.onnx --size 1920x1080 --report runs/bench
      srcompress bench student.onnx --budget export/budgets.toml
      srcompress bench student.onnx --baseline main/report.json --max-regression latency_ms=15 --report new
    """
    from ..ops.bench import bench as bench_op

    psnr = _parse_pairs(opts["psnr"], "--psnr", "NAME=DB (e.g. student=32.1)")
    allowed = _parse_pairs(opts["max_regression"], "--max-regression", "METRIC=PCT (e.g. latency_ms=15)")
    with err_console.status("benchmarking…"):
        o = bench_op(list(models), given={k: opts[k] for k in SETTINGS}, memory=not opts["no_memory"],
                     channels_last=opts["channels_last"], report_dir=opts["report_dir"], budget=opts["budget"],
                     baseline=opts["baseline"], max_regression=allowed, psnr=psnr, force=opts["force"])
    _render(o, psnr, as_json)
    o.check()


def _render(o: Any, psnr: dict[str, float], as_json: bool) -> None:
    cmp = o.comparison
    if as_json:  # one JSON document: the result, and the comparison when there is a baseline
        print_json({**o.result.to_dict(), **({"baseline": cmp.to_dict()} if cmp is not None else {})})
    else:
        bench_table(o.result, psnr)
        if cmp is not None:
            from rich.markdown import Markdown

            from ..deploy.report import baseline_markdown

            console.print(Markdown(baseline_markdown(cmp)))
    if o.files is not None:
        err_console.print(f"report: {o.files.markdown}, {o.files.json}, {o.files.png}")
    if o.budgets is not None:
        for name in o.unbudgeted:
            err_console.print(f"[yellow]note[/] {name}: no budget in {o.budgets.path}")
        for v in o.violations:
            click.echo(f"over budget: {v.message}", err=True)
        if not o.violations:
            err_console.print(f"[green]within budget[/] ({o.budgets.path})")


def _parse_pairs(items: tuple[str, ...], option: str, form: str) -> dict[str, float]:
    """("a=1.5", "b=2%") → {"a": 1.5, "b": 2.0}; anything else is a ConfigError naming ``option``."""
    from ..errors import ConfigError

    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value.rstrip("%"))
            if not math.isfinite(out[name]):  # nan would switch the regression gate off
                raise ValueError(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ConfigError(f"{option} wants {form}, got {item!r}")
    return out
