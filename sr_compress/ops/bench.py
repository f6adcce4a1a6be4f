"""Operation ``bench``: latency and peak memory of models side by side, with the settings' precedence, the
report files, the budget gate and the comparison with a baseline (regression check)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import defaults_of, format_size, parse_size
from ..deploy.bench import BenchResult, bench_models
from ..deploy.report import (
    BASELINE_METRICS,
    BaselineComparison,
    BudgetDefaults,
    Budgets,
    ReportFiles,
    Violation,
    budget_for,
    check_budgets,
    check_report_dir,
    compare_to_baseline,
    load_baseline,
    load_budgets,
    write_report,
)
from ..errors import BudgetExceededError, ConfigError

#: the measurement defaults, written once: in :func:`sr_compress.deploy.bench.bench_models`
LIBRARY = defaults_of(bench_models)


@dataclass
class BenchSettings:
    """What a measurement runs with; every field's default is the library's."""

    device: str = LIBRARY["device"]
    size: tuple[int, int] = LIBRARY["size"]
    scale: int | None = LIBRARY["scale"]
    threads: int | None = LIBRARY["threads"]
    runs: int = LIBRARY["runs"]
    warmup: int = LIBRARY["warmup"]
    rounds: int = LIBRARY["rounds"]
    presets: tuple[str, ...] = tuple(LIBRARY["presets"])
    precision: str = LIBRARY["precision"]  # PyTorch compute type of .pt models (ONNX graphs carry their own)

    @classmethod
    def resolve(cls, given: Mapping[str, Any], defaults: BudgetDefaults | None = None) -> BenchSettings:
        """The command line (``given``; None or () = not given) first, then a budgets file's [defaults], then
        the library's defaults."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = given.get(f.name)
            if value in (None, ()):
                value = getattr(defaults, f.name, None) if defaults is not None else None
            if value is not None:
                values[f.name] = value
        if isinstance(values.get("size"), str):
            values["size"] = parse_size(values["size"])
        if "presets" in values:
            values["presets"] = tuple(values["presets"])
        return cls(**values)

    def command_line(self, models: Sequence[str], *, channels_last: bool = True, memory: bool = True) -> str:
        """The equivalent command with every effective setting spelled out (for the report)."""
        parts = ["srcompress bench", *models, f"--device {self.device} --size {format_size(self.size)}"]
        parts += [f"--{k} {getattr(self, k)}" for k in ("scale", "threads", "runs", "warmup", "rounds")
                  if getattr(self, k)]
        parts += [f"--ort-preset {p}" for p in self.presets]
        parts += [f"--precision {self.precision}"] if self.precision != "float32" else []
        parts += [flag for flag, on in (("--nchw", not channels_last), ("--no-memory", not memory)) if on]
        return " ".join(str(p) for p in parts)

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class BenchOutcome:
    result: BenchResult
    comparison: BaselineComparison | None = None
    budgets: Budgets | None = None
    violations: list[Violation] = field(default_factory=list)
    unbudgeted: list[str] = field(default_factory=list)  # models the budgets file does not name
    files: ReportFiles | None = None

    def check(self) -> None:
        """Raise :class:`BudgetExceededError` on a budget violation or a regression against the baseline."""
        if self.violations:
            raise BudgetExceededError(f"{len(self.violations)} budget violation(s) against {self.budgets.path}: "
                                      + "; ".join(v.message for v in self.violations))
        cmp = self.comparison
        if cmp is not None and cmp.regressions:
            raise BudgetExceededError(
                f"{len(cmp.regressions)} regression(s) against {cmp.baseline}: " + "; ".join(
                    f"{d.model} {d.metric} {d.change_pct:+.1f}% > +{d.allowed_pct:g}%" for d in cmp.regressions[:3]))


def check_regression_options(allowed: Mapping[str, float], baseline: Any) -> None:
    """Before anything is measured: --max-regression needs --baseline and known metric names."""
    if allowed and baseline is None:
        raise ConfigError("--max-regression applies to a comparison: give --baseline old/report.json too")
    unknown = sorted(set(allowed) - set(BASELINE_METRICS))
    if unknown:
        raise ConfigError(f"--max-regression: unknown metric(s) {', '.join(unknown)}; "
                          f"choose from {', '.join(BASELINE_METRICS)}")


def bench(models: Sequence[str | Path], *, given: Mapping[str, Any] | None = None, memory: bool = True,
          channels_last: bool = True, report_dir: str | Path | None = None, budget: str | Path | None = None,
          baseline: str | Path | None = None, max_regression: Mapping[str, float] | None = None,
          psnr: Mapping[str, float] | None = None, labels: Sequence[str] | None = None, tune_malloc: bool = True,
          force: bool = False) -> BenchOutcome:
    """Measure ``models`` (.onnx / .pt) with the settings ``given`` resolved by :meth:`BenchSettings.resolve`;
    write ``report_dir`` (report.md/json/png); judge ``budget`` (a budgets TOML) and compare with ``baseline``
    (a report.json; ``max_regression``: metric → allowed %). Failing checks are recorded, not raised: the
    caller renders the outcome, then calls :meth:`BenchOutcome.check`."""
    budgets = load_budgets(budget) if budget else None
    base = load_baseline(baseline) if baseline else None
    check_regression_options(max_regression or {}, base)
    if report_dir:  # the report never replaces a model, the baseline it compares against, or the budgets file
        check_report_dir(report_dir, inputs=[*models, *(p for p in (baseline, budget) if p)], force=force)
    settings = BenchSettings.resolve(given or {}, budgets.defaults if budgets else None)
    command = settings.command_line([str(m) for m in models], channels_last=channels_last, memory=memory)
    result = bench_models(list(models), memory=memory, channels_last=channels_last, command=command,
                          tune_malloc=tune_malloc, labels=labels, **settings.kwargs())
    out = BenchOutcome(result, budgets=budgets)
    if base is not None:
        out.comparison = compare_to_baseline(result, base, max_regression or {})
        out.comparison.baseline = str(baseline)
    if report_dir:
        out.files = write_report(result, report_dir, psnr, force=force, baseline=out.comparison)
    if budgets is not None:
        out.violations = check_budgets(result, budgets)
        out.unbudgeted = [m.name for m in result.models if budget_for(m, budgets) is None]
    return out
