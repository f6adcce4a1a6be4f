"""``srcompress bench``: latency, peak memory and the theoretical bound of models, side by side."""

from __future__ import annotations

from typing import Any

import click

from ._common import err_console, force_option, json_option, print_json
from ._render import bench_table

PRESETS = ("lowmem", "arena", "default")


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to run [default: cpu].")
@click.option("--size", help="Output (HR) size WxH; the model input is size/scale [default: 1920x1080].")
@click.option("--scale", type=click.IntRange(2, 4), help="Scale, for a model that does not record it.")
@click.option("--threads", type=click.IntRange(1), help="Intra-op threads [default: PyTorch's].")
@click.option("--runs", type=click.IntRange(1), help="Timed runs per model [default: 5].")
@click.option("--warmup", type=click.IntRange(0), help="Warm-up runs per model [default: 2].")
@click.option("--rounds", type=click.IntRange(1), default=None,
              help="Fresh-process memory measurements per model (median) [default: 1].")
@click.option("--ort-preset", "presets", multiple=True, type=click.Choice(PRESETS),
              help="onnxruntime memory settings; repeat to compare [default: lowmem = arena and memory "
                   "pattern off, glibc mmap threshold 1 MB].")
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
    from ..deploy.bench import bench_models
    from ..deploy.report import check_budgets, check_report_dir, load_baseline, load_budgets, write_report

    budgets = load_budgets(opts["budget"]) if opts["budget"] else None
    baseline = load_baseline(opts["baseline"]) if opts["baseline"] else None
    allowed = _parse_pairs(opts["max_regression"], "--max-regression", "METRIC=PCT (e.g. latency_ms=15)")
    _check_regression_options(allowed, baseline)
    if opts["report_dir"]:
        check_report_dir(opts["report_dir"], inputs=models, force=opts["force"])
    settings = _settings(opts, budgets.defaults if budgets else None)
    psnr = _parse_psnr(opts["psnr"])
    command = _command_line(models, settings, opts)
    with err_console.status("benchmarking…"):
        result = bench_models(list(models), memory=not opts["no_memory"], channels_last=opts["channels_last"],
                              command=command, **settings)
    cmp = _compare(result, baseline, opts["baseline"], allowed)
    if as_json:  # one JSON document: the result, and the comparison when there is a baseline
        print_json({**result.to_dict(), **({"baseline": cmp.to_dict()} if cmp is not None else {})})
    else:
        bench_table(result, psnr)
        if cmp is not None:
            from rich.markdown import Markdown

            from ..deploy.report import baseline_markdown
            from ._common import console

            console.print(Markdown(baseline_markdown(cmp)))
    if opts["report_dir"]:
        files = write_report(result, opts["report_dir"], psnr, force=opts["force"], baseline=cmp)
        err_console.print(f"report: {files.markdown}, {files.json}, {files.png}")
    if budgets:
        _gate(check_budgets(result, budgets), budgets, result)
    if cmp is not None and cmp.regressions:
        from ..errors import BudgetExceededError

        raise BudgetExceededError(f"{len(cmp.regressions)} regression(s) against {opts['baseline']}: " + "; ".join(
            f"{d.model} {d.metric} {d.change_pct:+.1f}% > +{d.allowed_pct:g}%" for d in cmp.regressions[:3]))


def _check_regression_options(allowed: dict[str, float], baseline: Any) -> None:
    """Before anything is measured: --max-regression needs --baseline and known metric names."""
    from ..deploy.report import BASELINE_METRICS
    from ..errors import ConfigError

    if allowed and baseline is None:
        raise ConfigError("--max-regression applies to a comparison: give --baseline old/report.json too")
    unknown = sorted(set(allowed) - set(BASELINE_METRICS))
    if unknown:
        raise ConfigError(f"--max-regression: unknown metric(s) {', '.join(unknown)}; "
                          f"choose from {', '.join(BASELINE_METRICS)}")


def _compare(result: Any, baseline: Any, where: str | None, allowed: dict[str, float]) -> Any:
    if baseline is None:
        return None
    from ..deploy.report import compare_to_baseline

    cmp = compare_to_baseline(result, baseline, allowed)
    cmp.baseline = str(where)
    return cmp


def _settings(opts: dict[str, Any], defaults: Any) -> dict[str, Any]:
    """Command line first, then the budgets file's [defaults], then the library's defaults."""
    from ..workflows import parse_size

    def pick(name: str, fallback: Any) -> Any:
        given = opts.get(name)
        if given not in (None, ()):
            return given
        value = getattr(defaults, name, None) if defaults is not None else None
        return fallback if value is None else value

    return {"device": pick("device", "cpu"), "size": parse_size(pick("size", "1920x1080")),
            "scale": pick("scale", None), "threads": pick("threads", None), "runs": pick("runs", 5),
            "warmup": pick("warmup", 2), "rounds": pick("rounds", 1),
            "presets": tuple(pick("presets", ("lowmem",)))}


def _command_line(models: tuple[str, ...], settings: dict[str, Any], opts: dict[str, Any]) -> str:
    """The equivalent command with every effective setting spelled out (for the report)."""
    w, h = settings["size"]
    parts = ["srcompress bench", *models, f"--device {settings['device']} --size {w}x{h}"]
    parts += [f"--{k} {settings[k]}" for k in ("scale", "threads", "runs", "warmup", "rounds") if settings[k]]
    parts += [f"--ort-preset {p}" for p in settings["presets"]]
    flags = (("--nchw", not opts["channels_last"]), ("--no-memory", opts["no_memory"]))
    parts += [flag for flag, on in flags if on]
    return " ".join(str(p) for p in parts)


def _parse_psnr(items: tuple[str, ...]) -> dict[str, float]:
    return _parse_pairs(items, "--psnr", "NAME=DB (e.g. student=32.1)")


def _parse_pairs(items: tuple[str, ...], option: str, form: str) -> dict[str, float]:
    from ..errors import ConfigError

    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value.rstrip("%"))
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ConfigError(f"{option} wants {form}, got {item!r}")
    return out


def _gate(violations: list, budgets: Any, result: Any) -> None:
    from ..deploy.report import budget_for
    from ..errors import BudgetExceededError

    for m in result.models:
        if budget_for(m, budgets) is None:
            err_console.print(f"[yellow]note[/] {m.name}: no budget in {budgets.path}")
    for v in violations:
        click.echo(f"over budget: {v.message}", err=True)
    if violations:
        raise BudgetExceededError(f"{len(violations)} budget violation(s) against {budgets.path}")
    err_console.print(f"[green]within budget[/] ({budgets.path})")
