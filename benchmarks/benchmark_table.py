"""The released VDSR teacher's paper table on the shared benchmark sets, from one ``evaluate_table`` call, and
the layout agreement checks of issue #13 (docs/results.md, "Benchmark sets").

    python benchmarks/benchmark_table.py table --out /tmp/srbench        # Set5/Set14/B100 × ×2/×3/×4, 1 call
    python benchmarks/benchmark_table.py agree --out /tmp/srbench        # HR-only / BasicSR views vs SelfExSR

``table``: one call of :func:`sr_compress.evaluate.evaluate_table` (bicubic + VDSR teacher, Y float, the
default), written as report.md/report.json under ``--out``; then Set5/Set14 ×2 with ``y="matlab"`` (the
convention of ../shared/data/README.md's 37.475 / 33.273 dB).
``agree``: builds symlinked views in ``--out`` — the SelfExSR sets in the BasicSR layout, and HR-only folders
(SelfExSR's per-scale HR files; B100's JPEG HR) — and checks that every view gives bit-identical LR/HR pairs
(all 3 sets × 3 scales) and the same table numbers (the teacher on Set5 at ×2/×3/×4, all views).
Needs ../shared/data (read-only; nothing is copied).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("SRCOMPRESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
BENCH = SHARED / "benchmarks"
TEACHER = SHARED / "weights" / "vdsr_teacher_x234.pt"
SETS = ("Set5", "Set14", "B100")
SCALES = (2, 3, 4)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _progress(ev: dict) -> None:
    if ev["done"] == ev["total"]:
        _log(f"{ev['set']} ×{ev['scale']}: {ev['total']} images done")


def _teacher():
    from sr_compress.checkpoint import load_checkpoint

    return load_checkpoint(TEACHER).model


def table(out: Path) -> None:
    from sr_compress.evaluate import evaluate_table, write_table

    t0 = time.perf_counter()
    tab = evaluate_table({"VDSR teacher (AIL release)": _teacher()}, {s: BENCH / s for s in SETS}, SCALES,
                         progress=_progress)
    _log(f"table: {time.perf_counter() - t0:.0f} s")
    write_table(tab, out / "table", force=True)
    print(tab.to_markdown())
    t0 = time.perf_counter()
    mat = evaluate_table({"VDSR teacher": _teacher()}, {s: BENCH / s for s in ("Set5", "Set14")}, 2, y="matlab")
    _log(f"matlab-Y check: {time.perf_counter() - t0:.0f} s")
    write_table(mat, out / "table_matlab_y", force=True)
    print(mat.to_markdown())
    r = mat.reports[("VDSR teacher", "Set14", 2)]
    rgb13 = [i.psnr_y for i in r.images if i.name != "img_003"]  # the README's Set14 figure leaves out bridge
    print(f"Set14 ×2 without the greyscale bridge (13 RGB images), matlab Y: {sum(rgb13) / len(rgb13):.3f} dB")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    dst.symlink_to(src.resolve())


def make_views(out: Path) -> dict[str, dict[str, Path]]:
    """view name → set → folder (for every scale, except HR-only SelfExSR views, which are per scale)."""
    views: dict[str, dict[str, Path]] = {"selfexsr": {s: BENCH / s for s in ("Set5", "Set14")}}
    for s in ("Set5", "Set14"):
        for scale in SCALES:
            for f in sorted((BENCH / s / f"image_SRF_{scale}").glob("*_HR.png")):
                base = re.sub(r"_SRF_\d+_HR$", "", f.stem)
                lr = f.with_name(f.name.replace("_HR", "_LR"))
                _link(f, out / "basicsr" / s / f"X{scale}" / "HR" / f"{base}.png")
                _link(lr, out / "basicsr" / s / f"X{scale}" / "LR_bicubic" / f"X{scale}" / f"{base}x{scale}.png")
                _link(f, out / "hr_only" / s / f"X{scale}" / f"{base}.png")
    for f in sorted((BENCH / "B100" / "HR").glob("*.jpg")):
        _link(f, out / "hr_only" / "B100" / f.name)
    return views


def agree(out: Path) -> None:
    import torch

    from sr_compress.evaluate import evaluate_table
    from sr_compress.train.data import eval_pairs

    make_views(out)
    worst = 0
    for s in SETS:
        for scale in SCALES:
            ref = eval_pairs(BENCH / s, scale)  # the published LR files
            views = [out / "hr_only" / "B100"] if s == "B100" else \
                [out / "basicsr" / s / f"X{scale}", out / "hr_only" / s / f"X{scale}"]
            for v in views:
                got = eval_pairs(v, scale)
                assert [p.name for p in got] == [p.name for p in ref], v
                diff = max(int((a.lr - b.lr).abs().mul(255).round().max()) for a, b in zip(got, ref, strict=True))
                same_hr = all(torch.equal(a.hr, b.hr) for a, b in zip(got, ref, strict=True))
                worst = max(worst, diff)
                _log(f"{s} ×{scale} {v.relative_to(out)}: {len(got)} pairs, max LR difference {diff} levels, "
                     f"HR identical: {same_hr}")
    print(f"pairs: max LR difference over all views, sets and scales: {worst} (8-bit levels)")
    teacher = _teacher()
    results = {}
    for scale in SCALES:
        sets = {"SelfExSR": BENCH / "Set5", "BasicSR view": out / "basicsr" / "Set5" / f"X{scale}",
                "HR-only view": out / "hr_only" / "Set5" / f"X{scale}"}
        tab = evaluate_table({"VDSR teacher": teacher}, sets, scale)
        results[scale] = {k: tab.mean("VDSR teacher", k, scale).psnr_y for k in sets}
        print(f"Set5 ×{scale}: " + ", ".join(f"{k} {v:.4f}" for k, v in results[scale].items()))
    (out / "agree.json").write_text(json.dumps({"max_lr_diff_levels": worst, "set5_psnr_y": results}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["table", "agree"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/srcompress_benchmark_table"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not BENCH.is_dir() or not TEACHER.is_file():
        sys.exit(f"needs {BENCH} and {TEACHER}")
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    _log(f"{args.what}: torch {torch.__version__}, {args.threads} threads, out {args.out}")
    (table if args.what == "table" else agree)(args.out)


if __name__ == "__main__":
    main()
