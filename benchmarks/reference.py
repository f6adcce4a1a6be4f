"""`make bench`: the reference measurement of docs/benchmarks.md (PERF.md's two networks, side by side).

Builds EDSR baseline (16 blocks of 64, ×4) and the 35-conv plain chain (34 convs of 64 + conv→48 +
PixelShuffle(4), ×4) with fixed random weights (latency and memory do not depend on the weights), exports both
to ONNX, and benchmarks them at 1920×1080 output (LR 480×270) on the CPU with onnxruntime in two memory
configurations ("arena": arena on, memory pattern off; "lowmem": arena off + glibc mmap threshold 1 MB).
Writes the results table, the targets and their verdicts into docs/benchmarks.md between the markers
``<!-- bench:begin -->`` / ``<!-- bench:end -->``, and the plot into docs/img/bench.png.

    .venv/bin/python benchmarks/reference.py                      # what `make bench` runs (minutes)
    .venv/bin/python benchmarks/reference.py --size 480x270 --dry  # a quick look, nothing written
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sr_compress.deploy.bench import BenchResult, ModelBench  # noqa: E402  (after the path setup)

DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "img" / "bench.png"
PLAIN_MEMORY, PLAIN_PEAK_PCT, EDSR_MEMORY = 1.05, 90.0, 1.10  # targets (issue #3)


def build_reference(folder: Path, seed: int = 0) -> list[Path]:
    """``plain35_x4.onnx`` and ``edsr_r16f64_x4.onnx`` in ``folder``."""
    import torch

    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.models import build_model, plain_layers

    specs = {"plain35_x4": ("plain", {"layers": plain_layers(34, 64, 4)}),
             "edsr_r16f64_x4": ("edsr", {"n_feats": 64, "n_blocks": 16})}
    paths = []
    for name, (arch, hp) in specs.items():
        torch.manual_seed(seed)
        path = folder / f"{name}.onnx"
        export_onnx(build_model(arch, scale=4, **hp), path, validate=False, force=True)
        paths.append(path)
    return paths


def target_rows(result: BenchResult) -> list[tuple[str, str, str, bool]]:
    """(target, configuration, measured, met) for every model entry the targets concern."""
    rows = []
    for m in result.models:
        worst = _worst_ratio(m)
        if m.stem.startswith("plain"):
            rows.append((f"plain: peak ≤ {PLAIN_MEMORY}× bound, every run", m.name, f"{worst:.3f}×",
                         worst <= PLAIN_MEMORY))
            if m.pct_peak is not None:
                rows.append((f"plain: ≥ {PLAIN_PEAK_PCT:.0f}% of matmul peak", m.name, f"{m.pct_peak:.0f}%",
                             m.pct_peak >= PLAIN_PEAK_PCT))
        elif m.stem.startswith("edsr"):
            rows.append((f"EDSR: peak ≤ {EDSR_MEMORY}× bound", m.name, f"{worst:.3f}×", worst <= EDSR_MEMORY))
    return rows


def _worst_ratio(m: ModelBench) -> float:
    """The largest peak over the rounds, first run or steady state, relative to the bound."""
    if m.memory is None:
        return float("nan")
    return max(m.memory.first_max_bytes, m.memory.steady_max_bytes) / m.bound_bytes


def results_block(result: BenchResult, command: str) -> str:
    """The Markdown that goes between the markers of docs/benchmarks.md."""
    from sr_compress.deploy.report import COLUMN_NOTES, markdown_table, settings_line

    lines = [f"Measured with `{command}`.", "", f"Settings: {settings_line(result)}.", "",
             markdown_table(result), "", COLUMN_NOTES, "", "| target | configuration | measured | verdict |",
             "|---|---|---:|---|"]
    lines += [f"| {t} | {c} | {v} | {'met' if ok else '**missed**'} |" for t, c, v, ok in target_rows(result)]
    lines += ["", f"![latency and peak memory](img/{PLOT.name})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1920x1080", help="output W×H (default 1920x1080)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="fresh-process memory measurements per model")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--presets", default="arena,lowmem", help="onnxruntime presets, comma-separated")
    p.add_argument("--dry", action="store_true", help="print the results, write nothing")
    args = p.parse_args(argv)

    from sr_compress.config import parse_size
    from sr_compress.deploy.bench import bench_models
    from sr_compress.deploy.report import plot, replace_between_markers
    from sr_compress.fileio import atomic_write, atomic_write_text

    size = parse_size(args.size)
    command = "make bench" if argv is None and len(sys.argv) == 1 else \
        "python benchmarks/reference.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="srcompress-bench-") as tmp:
        paths = build_reference(Path(tmp))
        result = bench_models(paths, size=size, runs=args.runs, warmup=args.warmup, rounds=args.rounds,
                              threads=args.threads, presets=tuple(args.presets.split(",")), command=command)
    block = results_block(result, command)
    print(block)
    if not args.dry:
        atomic_write(PLOT, lambda path: plot(result, path), force=True)
        atomic_write_text(DOC, replace_between_markers(DOC.read_text(encoding="utf-8"), block), force=True)
        print(f"\nwrote {DOC.relative_to(REPO)} and {PLOT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
