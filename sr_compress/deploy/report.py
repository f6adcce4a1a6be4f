"""Benchmark reports (Markdown, JSON, PNG) and the budget gate for CI.

Units: MB = 10⁶ bytes, ms = 10⁻³ s, GFLOP = 10⁹ floating-point operations (2 per multiply-accumulate).
Budgets (``export/budgets.toml``)::

    [defaults]              # optional: benchmark settings used when the command line gives none
    size = "320x180"        # output W×H
    [models.plain_tiny]     # matched by the model file's stem
    peak_mb = 40            # max(first run, steady state) peak rise
    latency_ms = 200        # median
    bound_ratio = 1.5       # max(first, steady) peak / theoretical bound
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..compat import tomllib
from ..config import from_dict
from ..errors import ConfigError
from ..fileio import atomic_write, atomic_write_text, check_output, require_file
from ..validate import finite_float, within, worst_of
from .bench import BenchResult, ModelBench

MB = 1e6


# -- tables --------------------------------------------------------------------------------------------------
COLUMNS = ("model", "config", "input", "GFLOP", "params", "bound MB", "first MB", "steady MB", "retained MB",
           "total MB", "median ms", "p90 ms", "× first", "GFLOP/s", "% peak")


def _fmt(v: float | None, spec: str = "", suffix: str = "") -> str:
    """``spec`` format, or by default 1 decimal from 10 up and 3 significant digits below."""
    if v is None:
        return "–"
    return f"{v:{spec or ('.1f' if abs(v) >= 10 else '.3g')}}{suffix}"


def config_label(m: ModelBench) -> str:
    """Short description of how the model ran: ORT preset or PyTorch memory format."""
    prec = getattr(m, "precision", "float32")
    tag = "" if prec == "float32" else f" {prec}"
    if m.kind == "onnx":
        return f"ORT {m.options.get('preset', '?')}{tag}"
    return "torch " + ("channels_last" if m.options.get("channels_last") else "NCHW") + tag


def table_rows(result: BenchResult,
               psnr: Mapping[str, float] | None = None) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells, one row per model (shared by the Markdown and the terminal table)."""
    headers = list(COLUMNS) + (["PSNR dB"] if psnr else [])
    rows = []
    for m in result.models:
        mem, lat = m.memory, m.latency
        row = [m.name, config_label(m), "×".join(map(str, m.input_shape[2:][::-1])),
               _fmt(m.flops / 1e9), _params_cell(m), _fmt(m.bound_bytes / MB),
               _mem_cell(mem.first_bytes if mem else None, m.first_ratio),
               _mem_cell(mem.steady_bytes if mem else None, m.steady_ratio),
               _fmt(mem.retained_bytes / MB if mem else None),
               _fmt(mem.footprint_bytes / MB if mem and mem.footprint_bytes is not None else None),
               _fmt(lat.median_s * 1e3 if lat else None), _fmt(lat.p90_s * 1e3 if lat else None),
               _fmt(m.ratio_vs_first, ".2f"), _fmt(m.gflops), _fmt(m.pct_peak, ".0f", "%")]
        if psnr:
            row.append(_fmt(psnr_for(m, psnr), ".2f"))
        rows.append(row)
    return headers, rows


def _params_cell(m: ModelBench) -> str:
    """Parameter count, with the element types where they are not all float32 (e.g. ``1,248,112 (int8)``)."""
    by = getattr(m, "params_by_dtype", None) or {}
    weights = {k: v for k, v in by.items() if k != "int32"}  # int32: the biases of a quantised graph
    if not weights or set(weights) == {"float32"}:
        return f"{m.params:,}"
    return f"{m.params:,} ({'+'.join(sorted(weights))})"


def _mem_cell(nbytes: int | None, ratio: float | None) -> str:
    if nbytes is None:
        return "–"
    return f"{_fmt(nbytes / MB)} ({ratio:.2f}×)" if ratio is not None else _fmt(nbytes / MB)


def psnr_for(m: ModelBench, psnr: Mapping[str, float]) -> float | None:
    """PSNR given for this model by entry name, file stem or file name."""
    for key in (m.name, m.stem, Path(m.path).name):
        if key in psnr:
            return float(psnr[key])
    return None


def settings_line(result: BenchResult) -> str:
    """Everything a reader needs to reproduce the numbers, on one line."""
    s, mc, m0 = result.settings, result.machine, result.models[0]
    providers = ", ".join(sorted({m.provider for m in result.models}))
    where = mc.gpu or f"{mc.cpu} ({mc.cores} cores)"
    peak = f", matmul peak {mc.matmul_gflops:.0f} GFLOP/s" if mc.matmul_gflops else ""
    memory = f"memory: {s.rounds} fresh process(es) per model" if s.rounds else "memory not measured"
    return (f"{s.device}, {s.threads} threads, {providers}, graph optimisation {s.optimization}, "
            f"output {s.size[0]}×{s.size[1]} (model input {m0.input_shape[3]}×{m0.input_shape[2]}), "
            f"{s.precision}, batch 1; {s.warmup} warm-up + {s.runs} timed runs interleaved, {memory}; "
            f"{where}{peak}; torch {mc.torch}, "
            f"onnxruntime {mc.onnxruntime}, {s.timing_process} in the timing process; {mc.date}")


def markdown_table(result: BenchResult, psnr: Mapping[str, float] | None = None) -> str:
    headers, rows = table_rows(result, psnr)
    right = [h not in ("model", "config", "input") for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report_markdown(result: BenchResult, psnr: Mapping[str, float] | None = None,
                    title: str = "Benchmark") -> str:
    """A self-contained Markdown report: settings, the table, what each column means."""
    parts = [f"# {title}", "", f"Settings: {settings_line(result)}.", ""]
    if result.command:
        parts += [f"Command: `{result.command}`", ""]
    parts += [markdown_table(result, psnr), "", COLUMN_NOTES]
    return "\n".join(parts) + "\n"


COLUMN_NOTES = (
    "Bound: theoretical minimum live activation memory of the graph's schedule (weights excluded). First / "
    "steady: peak resident-memory rise over the post-setup baseline for the first run and for later runs "
    "(ratio to the bound), median over fresh processes; retained: resident memory still held after the runs; "
    "total: the highest peak over the process before the model was opened (weights, runtime, input). "
    "× first: median latency relative to the first model, measured interleaved in the same process. "
    "% peak: achieved GFLOP/s over the measured dense float32 matmul peak. MB = 10⁶ bytes."
)


# -- files ---------------------------------------------------------------------------------------------------
@dataclass
class ReportFiles:
    markdown: Path
    json: Path
    png: Path


def check_report_dir(out_dir: str | os.PathLike, *, inputs: Sequence[str | os.PathLike] = (),
                     force: bool = False) -> ReportFiles:
    """The three report paths in ``out_dir``, each checked writable (no overwrite without ``force``)."""
    out = Path(out_dir)
    files = ReportFiles(out / "report.md", out / "report.json", out / "report.png")
    for p in (files.markdown, files.json, files.png):
        check_output(p, inputs=inputs, force=force)
    return files


def result_json(result: BenchResult, psnr: Mapping[str, float] | None = None) -> str:
    data = result.to_dict()
    if psnr:
        data["psnr"] = dict(psnr)
    return json.dumps(data, indent=2)


def write_report(result: BenchResult, out_dir: str | os.PathLike, psnr: Mapping[str, float] | None = None, *,
                 force: bool = False, baseline: BaselineComparison | None = None) -> ReportFiles:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``out_dir``, each atomically; with
    ``baseline`` the Markdown ends with the comparison (the section to paste into a pull request)."""
    inputs = [m.path for m in result.models]
    files = check_report_dir(out_dir, inputs=inputs, force=force)
    atomic_write_text(files.json, result_json(result, psnr), inputs=inputs, force=force)
    atomic_write(files.png, lambda p: plot(result, p, psnr), inputs=inputs, force=force)
    md = report_markdown(result, psnr) + ("\n" + baseline_markdown(baseline) if baseline is not None else "")
    atomic_write_text(files.markdown, md, inputs=inputs, force=force)
    return files


def plot(result: BenchResult, path: str | os.PathLike, psnr: Mapping[str, float] | None = None) -> None:
    """PNG: latency bars, peak-memory bars (first, steady; bound as a marker), PSNR vs memory if given."""
    from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg

    points = [(m, psnr_for(m, psnr)) for m in result.models] if psnr else []
    points = [(m, v) for m, v in points if v is not None and m.memory]
    ncols = 3 if points else 2
    fig = Figure(figsize=(5.5 * ncols, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    _latency_axes(axes[0], result.models)
    _memory_axes(axes[1], result.models)
    if points:
        _psnr_axes(axes[2], points)
    fig.suptitle(_plot_title(result), fontsize=9)
    fig.savefig(path, format="png", dpi=110)


def _plot_title(result: BenchResult) -> str:
    s, mc = result.settings, result.machine
    return (f"{s.device} · {s.threads} threads · output {s.size[0]}×{s.size[1]} · {s.precision} · "
            f"{mc.gpu or mc.cpu} · {mc.date[:10]}")


def _latency_axes(ax: Any, models: Sequence[ModelBench]) -> None:
    xs = range(len(models))
    med = [m.latency.median_s * 1e3 if m.latency else 0 for m in models]
    p90 = [m.latency.p90_s * 1e3 - v if m.latency else 0 for m, v in zip(models, med, strict=True)]
    ax.bar(xs, med, yerr=[[0] * len(med), p90], capsize=3, color="tab:blue")
    ax.set_xticks(list(xs), [m.name for m in models], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("latency, ms (median; bar to p90)")


def _memory_axes(ax: Any, models: Sequence[ModelBench]) -> None:
    xs = list(range(len(models)))
    first = [m.memory.first_bytes / MB if m.memory else 0 for m in models]
    steady = [m.memory.steady_bytes / MB if m.memory else 0 for m in models]
    ax.bar([x - 0.2 for x in xs], first, 0.4, label="first run", color="tab:orange")
    ax.bar([x + 0.2 for x in xs], steady, 0.4, label="steady state", color="tab:red")
    ax.scatter(xs, [m.bound_bytes / MB for m in models], marker="_", s=900, color="black", zorder=3,
               label="theoretical bound")
    ax.set_xticks(xs, [m.name for m in models], rotation=20, ha="right", fontsize=8)
    values = [v for v in first + steady if v > 0]
    if values and max(values) > 20 * min(values):
        ax.set_yscale("log")  # a 66 MB student beside a 1.5 GB teacher stays readable
    ax.set_ylabel("peak memory rise, MB")
    ax.legend(fontsize=8, loc="best")


def _psnr_axes(ax: Any, points: Sequence[tuple[ModelBench, float]]) -> None:
    for m, v in points:
        ax.scatter(m.memory.steady_bytes / MB, v, s=40)
        ax.annotate(m.name, (m.memory.steady_bytes / MB, v), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("peak memory (steady state), MB")
    ax.set_ylabel("PSNR, dB")
    ax.grid(alpha=0.3)


def replace_between_markers(text: str, block: str, begin: str = "<!-- bench:begin -->",
                            end: str = "<!-- bench:end -->") -> str:
    """``text`` with everything between the two marker lines replaced by ``block`` (markers kept)."""
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ConfigError(f"markers {begin} … {end} not found (in this order)")
    return text[: i + len(begin)] + "\n" + block.strip("\n") + "\n" + text[j:]


# -- budgets -------------------------------------------------------------------------------------------------
@dataclass
class Budget:
    """Limits for one model; None = not budgeted."""

    peak_mb: float | None = None
    latency_ms: float | None = None
    bound_ratio: float | None = None


@dataclass
class BudgetDefaults:
    """Benchmark settings a budgets file asks for (the command line wins)."""

    size: str | None = None
    scale: int | None = None
    device: str | None = None
    threads: int | None = None
    warmup: int | None = None
    runs: int | None = None
    rounds: int | None = None
    presets: list[str] | None = None


@dataclass
class Budgets:
    path: Path
    defaults: BudgetDefaults = field(default_factory=BudgetDefaults)
    models: dict[str, Budget] = field(default_factory=dict)


@dataclass
class Violation:
    model: str
    metric: str  # "peak_mb" | "latency_ms" | "bound_ratio"
    measured: float
    budget: float
    message: str


def load_budgets(path: str | os.PathLike) -> Budgets:
    """Read a budgets TOML file; unknown tables or keys and wrong types are a ConfigError."""
    p = require_file(path, "budgets file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    unknown = sorted(set(data) - {"defaults", "models"})
    if unknown:
        raise ConfigError(f"{p}: unknown table(s) {', '.join(unknown)}; valid: defaults, models")
    defaults = from_dict(BudgetDefaults, data.get("defaults", {}), f"{p.name} [defaults]")
    models = data.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise ConfigError(f"{p}: [models] must hold one table per model, e.g. [models.plain_tiny]")
    budgets = {name: from_dict(Budget, v, f"{p.name} [models.{name}]") for name, v in models.items()}
    for name, budget in budgets.items():
        for key, value in asdict(budget).items():
            if value is not None:
                finite_float(value, f"{p.name} [models.{name}] {key}", min=0, min_open=True)
    return Budgets(p, defaults, budgets)


def budget_for(m: ModelBench, budgets: Budgets) -> Budget | None:
    """The model's budget by entry name, else by file stem."""
    return budgets.models.get(m.name) or budgets.models.get(m.stem)


def check_budgets(result: BenchResult, budgets: Budgets | str | os.PathLike) -> list[Violation]:
    """Every budget a benchmarked model exceeds, with a one-line message each."""
    b = budgets if isinstance(budgets, Budgets) else load_budgets(budgets)
    out: list[Violation] = []
    for m in result.models:
        budget = budget_for(m, b)
        if budget is not None:
            out += _model_violations(m, budget)
    return out


def _model_violations(m: ModelBench, b: Budget) -> list[Violation]:
    out = []
    if b.peak_mb is not None or b.bound_ratio is not None:
        if m.memory is None:
            raise ConfigError(f"{m.name}: memory is budgeted but was not measured (drop --no-memory)")
        first, steady = m.memory.first_bytes, m.memory.steady_bytes
        peak = worst_of([first, steady])  # NaN if either is (max() would keep the other)
        which = "first run" if peak == first else "steady state"
        if b.peak_mb is not None and not within(peak / MB, b.peak_mb):  # NaN over budget, never under
            out.append(Violation(m.name, "peak_mb", peak / MB, b.peak_mb, f"{m.name}: peak memory "
                                 f"{peak / MB:.1f} MB > budget {b.peak_mb:g} MB ({which})"))
        ratio = peak / m.bound_bytes if m.bound_bytes else None
        if b.bound_ratio is not None and ratio is not None and not within(ratio, b.bound_ratio):
            out.append(Violation(m.name, "bound_ratio", ratio, b.bound_ratio, f"{m.name}: peak memory "
                                 f"{ratio:.2f}× the bound > budget {b.bound_ratio:g}× ({which})"))
    if b.latency_ms is not None and m.latency is not None and not within(m.latency.median_s * 1e3, b.latency_ms):
        ms = m.latency.median_s * 1e3
        out.append(Violation(m.name, "latency_ms", ms, b.latency_ms, f"{m.name}: latency {ms:.1f} ms > "
                             f"budget {b.latency_ms:g} ms (median of {len(m.latency.runs)} runs)"))
    return out


# -- baseline comparison (CI: did this change make a model bigger or slower?) --------------------------------------
#: metric → (label, unit, value of a ModelBench or None); default allowed increase in percent
BASELINE_METRICS: dict[str, tuple[str, str, Callable[[ModelBench], float | None]]] = {
    "peak_mb": ("peak memory", "MB", lambda m: _peak_bytes(m) / MB if m.memory else None),
    "bound_mb": ("bound", "MB", lambda m: m.bound_bytes / MB),
    "latency_ms": ("latency", "ms", lambda m: m.latency.median_s * 1e3 if m.latency else None),
    "params": ("params", "", lambda m: float(m.params)),
    "gflop": ("GFLOP", "", lambda m: m.flops / 1e9),
}
DEFAULT_REGRESSION = {"peak_mb": 10.0, "bound_mb": 2.0, "latency_ms": 25.0, "params": 0.0, "gflop": 0.0}


def _peak_bytes(m: ModelBench) -> float:
    return worst_of([m.memory.first_bytes, m.memory.steady_bytes])


@dataclass
class Delta:
    """One metric of one model, now against the baseline; ``regressed`` past the allowed increase."""

    model: str
    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    allowed_pct: float
    regressed: bool


@dataclass
class BaselineComparison:
    baseline: str
    deltas: list[Delta]
    new: list[str]  # models without a baseline entry
    missing: list[str]  # baseline models not measured now

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if d.regressed]

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "deltas": [asdict(d) for d in self.deltas], "new": self.new,
                "missing": self.missing, "regressions": len(self.regressions)}


def load_baseline(path: str | os.PathLike) -> BenchResult:
    """A ``report.json`` written by ``bench --report`` (or ``--json``) read back."""
    p = require_file(path, "baseline report")
    try:
        return BenchResult.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"{p}: not a bench report.json ({type(e).__name__}: {e})") from None


def compare_to_baseline(result: BenchResult, baseline: BenchResult | str | os.PathLike,
                        allowed: Mapping[str, float] | None = None) -> BaselineComparison:
    """Per model (matched by entry name, else file stem) and metric: baseline, now, change, verdict.

    ``allowed``: metric → allowed increase in percent (defaults :data:`DEFAULT_REGRESSION`); a decrease is
    never a regression. A metric measured on one side only is shown but not judged.
    """
    where = str(baseline) if not isinstance(baseline, BenchResult) else "baseline"
    base = baseline if isinstance(baseline, BenchResult) else load_baseline(baseline)
    limits = {**DEFAULT_REGRESSION, **(allowed or {})}
    unknown = sorted(set(limits) - set(BASELINE_METRICS))
    if unknown:
        raise ConfigError(f"unknown regression metric(s) {', '.join(unknown)}; "
                          f"choose from {', '.join(BASELINE_METRICS)}")
    limits = {k: finite_float(v, f"allowed regression {k}") for k, v in limits.items()}  # NaN would turn the gate off
    index = {m.name: m for m in base.models} | {m.stem: m for m in base.models if m.stem not in
                                                   {b.name for b in base.models}}
    deltas, new, seen = [], [], set()
    for m in result.models:
        old = index.get(m.name) or index.get(m.stem)
        if old is None:
            new.append(m.name)
            continue
        seen.add(old.name)
        for metric, (_, _, value) in BASELINE_METRICS.items():
            a, b = value(old), value(m)
            change = (b - a) / a * 100 if a and b is not None else None  # a NaN side gives a NaN change
            deltas.append(Delta(m.name, metric, a, b, change, limits[metric],
                                change is not None and not within(change, limits[metric] + 1e-9)))
    missing = [m.name for m in base.models if m.name not in seen]
    return BaselineComparison(where, deltas, new, missing)


def baseline_markdown(cmp: BaselineComparison) -> str:
    """A Markdown section to paste into a pull request or a CI job summary."""
    verdict = (f"**{len(cmp.regressions)} regression(s)**" if cmp.regressions else "no regression")
    lines = [f"### Against the baseline `{cmp.baseline}`: {verdict}", "",
             "| model | metric | baseline | now | change | allowed | verdict |", "|---|---|---:|---:|---:|---:|---|"]
    for d in cmp.deltas:
        label, unit, _ = BASELINE_METRICS[d.metric]
        name = f"{label} ({unit})" if unit else label
        change = "–" if d.change_pct is None else f"{d.change_pct:+.1f}%"
        mark = "**regressed**" if d.regressed else "ok"
        spec = ",.0f" if d.metric == "params" else ""
        lines.append(f"| {d.model} | {name} | {_fmt(d.baseline, spec)} | {_fmt(d.current, spec)} | {change} | "
                     f"+{d.allowed_pct:g}% | {mark} |")
    if cmp.new:
        lines += ["", f"New (no baseline): {', '.join(cmp.new)}."]
    if cmp.missing:
        lines += ["", f"In the baseline but not measured now: {', '.join(cmp.missing)}."]
    return "\n".join(lines) + "\n"
