"""The released VDSR teacher's paper table on the shared benchmark sets, from one ``evaluate_table`` call, and
the layout agreement checks of issue #13 (docs/results.md, "Benchmark sets").

    python benchmarks/benchmark_table.py table --out /tmp/srbench        # Set5/Set14/B100 × ×2/×3/×4, 1 call
    python benchmarks/benchmark_table.py table --b100-images 25 ...      # a cheaper B100 (first 25 ids)
    python benchmarks/benchmark_table.py agree --out /tmp/srbench        # HR-only / BasicSR views vs SelfExSR

``table``: one call of :func:`sr_compress.evaluate.evaluate_table` (bicubic + VDSR teacher, Y float, the
default), written as report.md/report.json under ``--out``; then Set5/Set14 ×2 with ``y="matlab"`` (the
convention of ../shared/data/README.md's 37.475 / 33.273 dB).
``agree``: builds symlinked views in ``--out`` — the SelfExSR sets in the BasicSR layout, and HR-only folders
(SelfExSR's per-scale HR files; B100's JPEG HR) — and checks that every view gives bit-identical LR/HR pairs
(all 3 sets × 3 scales) and the same table numbers (bicubic on every view, set and scale; the teacher on
Set5 ×2 on all three views).
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


def _tiled(model):
    """Bounded memory, as the eval operation runs models: exact tiles of at most DEFAULT_EVAL_BYTES."""
    from sr_compress.deploy.tiling import tiled_network
    from sr_compress.evaluate import DEFAULT_EVAL_BYTES

    return tiled_network(model, max_bytes=DEFAULT_EVAL_BYTES)


def _teacher():
    from sr_compress.checkpoint import load_checkpoint

    return load_checkpoint(TEACHER).model


def b100_view(out: Path, n: int) -> Path:
    """The first ``n`` B100 images (sorted ids) in the BasicSR layout, as symlinks (a cheaper table)."""
    view = out / f"B100_first{n}"
    for f in sorted((BENCH / "B100" / "HR").glob("*.jpg"))[:n]:
        _link(f, view / "HR" / f.name)
        for s in SCALES:
            _link(BENCH / "B100" / "LR_bicubic" / f"X{s}" / f"{f.stem}x{s}.png",
                  view / "LR_bicubic" / f"X{s}" / f"{f.stem}x{s}.png")
    return view


def table(out: Path, b100_images: int, scales: tuple[int, ...] = SCALES) -> None:
    from sr_compress.evaluate import evaluate_table, write_table

    sets = {s: BENCH / s for s in SETS}
    if b100_images < 100:
        sets.pop("B100")
        sets[f"B100 (first {b100_images})"] = b100_view(out, b100_images)
    t0 = time.perf_counter()
    tab = evaluate_table({"VDSR teacher (AIL release)": _teacher()}, sets, scales, progress=_progress,
                         wrap=_tiled)
    _log(f"table: {time.perf_counter() - t0:.0f} s")
    tag = "" if tuple(scales) == SCALES else "_x" + "".join(map(str, scales))
    write_table(tab, out / f"table{tag}", force=True)
    print(tab.to_markdown())
    if 2 not in scales:
        return
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
    target = src.resolve()
    if dst.is_symlink() and dst.resolve() == target:
        return  # already there (several runs may build the same view at once)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    dst.symlink_to(target)


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

    from sr_compress.data.datasets import eval_pairs
    from sr_compress.evaluate import evaluate_table

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
    views = {"SelfExSR/BasicSR (MATLAB LR files)": {s: BENCH / s for s in SETS}}
    results: dict = {}
    for scale in SCALES:  # bicubic (cheap) on every view, set and scale
        views[f"BasicSR view ×{scale}"] = {s: out / "basicsr" / s / f"X{scale}" for s in ("Set5", "Set14")}
        views[f"HR-only ×{scale}"] = {**{s: out / "hr_only" / s / f"X{scale}" for s in ("Set5", "Set14")},
                                      "B100": out / "hr_only" / "B100"}
    for view, sets in views.items():
        scales = [int(view[-1])] if view[-1].isdigit() else list(SCALES)
        tab = evaluate_table({}, sets, scales)
        for (_, name, scale), r in tab.reports.items():
            results.setdefault(f"bicubic {name} ×{scale}", {})[view] = r.mean.psnr_y
    for key, vals in results.items():
        spread = max(vals.values()) - min(vals.values())
        print(f"{key}: " + ", ".join(f"{k} {v:.4f}" for k, v in vals.items()) + f"  (spread {spread:.4f} dB)")
    teacher = _teacher()
    sets = {"SelfExSR": BENCH / "Set5", "BasicSR view": out / "basicsr" / "Set5" / "X2",
            "HR-only view": out / "hr_only" / "Set5" / "X2"}
    tab = evaluate_table({"VDSR teacher": teacher}, sets, 2)
    model = {k: tab.mean("VDSR teacher", k, 2).psnr_y for k in sets}
    print("VDSR teacher, Set5 ×2: " + ", ".join(f"{k} {v:.4f}" for k, v in model.items()))
    (out / "agree.json").write_text(json.dumps({"max_lr_diff_levels": worst, "bicubic_psnr_y": results,
                                                "vdsr_set5_x2_psnr_y": model}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["table", "agree"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/srcompress_benchmark_table"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scales", default="2,3,4", help="comma-separated scales (one call covers them all)")
    ap.add_argument("--b100-images", type=int, default=100,
                    help="evaluate only the first N B100 images (a shared 2-core machine cannot do all 100 × 3 "
                         "scales of the 64-channel VDSR in an hour)")
    args = ap.parse_args()
    if not BENCH.is_dir() or not TEACHER.is_file():
        sys.exit(f"needs {BENCH} and {TEACHER}")
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    _log(f"{args.what}: torch {torch.__version__}, {args.threads} threads, out {args.out}")
    if args.what == "table":
        table(args.out, args.b100_images, tuple(int(s) for s in args.scales.split(",")))
    else:
        agree(args.out)


if __name__ == "__main__":
    main()
