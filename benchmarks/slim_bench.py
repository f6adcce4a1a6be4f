"""Slimming, measured: what ρ buys in parameters, FLOPs, latency and peak memory, and why odd widths are slow.

Two side-by-side runs (each its own ``bench_models`` call, models interleaved within it):

1. **EDSR baseline** (16 blocks of 64, ×4, fixed random weights — speed and memory do not depend on them)
   against ``slim(ρ=0.5, l1)`` of it, at 1920×1080 output (LR 480×270): both exported to validated ONNX.
2. **"My pruned model is not faster"**: the released 13-channel VDSR student (ρ = 0.8 of the authors'
   64-channel teacher, ../shared/data/weights) beside the teacher slimmed with ``--round-to 8`` and ``16``,
   and the ρ = 0.66 width (22) with both roundings, at 1920×1080 (VDSR runs at the output size).

Writes the tables between ``<!-- slim:begin -->`` / ``<!-- slim:end -->`` of docs/results.md.

    .venv/bin/python benchmarks/slim_bench.py                          # the docs/results.md numbers (~15 min)
    .venv/bin/python benchmarks/slim_bench.py --size 480x270 --dry     # a quick look, nothing written
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOC = REPO / "docs" / "results.md"
WEIGHTS = REPO.parent / "shared" / "data" / "weights"
MARKERS = ("<!-- slim:begin -->", "<!-- slim:end -->")


def edsr_models(folder: Path, seed: int = 0) -> list[Path]:
    import torch

    from sr_compress.compress.slim import slim
    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.models import build_model

    torch.manual_seed(seed)
    teacher = build_model("edsr", scale=4, n_feats=64, n_blocks=16)
    student, _ = slim(teacher, 0.5)
    paths = [folder / "edsr_r16f64_x4.onnx", folder / "edsr_r16f64_x4_slim0.5.onnx"]
    for m, p in zip((teacher, student), paths, strict=True):
        export_onnx(m, p, force=True)  # validated against PyTorch
    return paths


def vdsr_models(folder: Path) -> list[Path]:
    from sr_compress.compress.slim import slim
    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.ops.common import load_model

    teacher = load_model(WEIGHTS / "vdsr_teacher_x234.pt").model
    models = {"vdsr_f13_released": load_model(WEIGHTS / "vdsr_f13_plain_x234.pt").model}
    for rho, tag in ((0.8, "f13"), (0.66, "f22")):
        for r in (8, 16):
            s, _ = slim(teacher, rho, round_to=r)
            models[f"vdsr_{tag}_round{r}_w{s.hparams['widths'][0]}"] = s
    paths = []
    for name, m in models.items():
        paths.append(export_onnx(m, folder / f"{name}.onnx", force=True).path)
    return paths


def block(title: str, result, command: str) -> str:
    from sr_compress.deploy.report import markdown_table, settings_line

    rows = [f"**{title}** — `{command}`", "", f"Settings: {settings_line(result)}.", "", markdown_table(result), ""]
    first = result.models[0]
    for m in result.models[1:]:
        mem = ""
        if m.memory and first.memory:
            mem = f", peak memory ×{m.memory.steady_bytes / first.memory.steady_bytes:.3f}"
        rows.append(f"- {m.name}: params ×{m.params / first.params:.3f}, FLOPs ×{m.flops / first.flops:.3f}, "
                    f"latency ×{m.latency.median_s / first.latency.median_s:.3f}{mem} (vs {first.name})")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1920x1080", help="output W×H (default 1920x1080)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1, help="fresh-process memory measurements per model")
    p.add_argument("--preset", default="arena", help="onnxruntime preset (arena or lowmem)")
    p.add_argument("--only", choices=["edsr", "vdsr"], default=None)
    p.add_argument("--dry", action="store_true", help="print the results, write nothing")
    args = p.parse_args(argv)

    from sr_compress.config import parse_size
    from sr_compress.deploy.bench import bench_models
    from sr_compress.deploy.report import replace_between_markers
    from sr_compress.fileio import atomic_write_text

    size = parse_size(args.size)
    command = "python benchmarks/slim_bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    parts = []
    kw = dict(size=size, runs=args.runs, warmup=args.warmup, rounds=args.rounds, presets=(args.preset,),
              command=command)
    with tempfile.TemporaryDirectory(prefix="srcompress-slim-") as tmp:
        if args.only in (None, "edsr"):
            parts.append(block("EDSR baseline ×4 vs slim ρ = 0.5", bench_models(edsr_models(Path(tmp)), **kw),
                               command))
        if args.only in (None, "vdsr"):
            if not WEIGHTS.is_dir():
                print(f"skipping VDSR: {WEIGHTS} not found", file=sys.stderr)
            else:
                parts.append(block("VDSR students: odd widths vs rounded widths",
                                   bench_models(vdsr_models(Path(tmp)), memory=False, **kw), command))
    text = "\n".join(parts)
    print(text)
    if not args.dry:
        atomic_write_text(DOC, replace_between_markers(DOC.read_text(encoding="utf-8"), text, *MARKERS), force=True)
        print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
