"""Teacher outputs once vs the teacher on every batch: KD and AIL steps per second, side by side.

A ~13k-parameter plain student (6 × conv 16 + ReLU, conv + pixel shuffle, RGB ×2) distils from a teacher
(default: EDSR ×2, 64 features, 8 blocks, 778k parameters, fixed random weights — speed does not depend on
them; or any ``--teacher`` file: a checkpoint in any supported format, or an ``.onnx`` graph, e.g.
``../shared/data/weights/zoo/IMDN_x2.pth``). Each repetition runs every (strategy, mode) pair for
``--steps`` steps, interleaved (kd/per-batch, kd/cached, ail/per-batch, ail/cached, then again), so slow
drifts of a shared machine hit both modes alike; steps/s is the median over repetitions of
(steps − 1) / (time from the end of step 1 to the end of the last step). Before that the cache is built once
into an empty folder (cold: build time and size) and opened again (warm: reuse time).

Writes the table between ``<!-- teacher-cache:begin -->`` / ``<!-- teacher-cache:end -->`` of
docs/results.md (``--dry``: print only).

    PYTHONPATH=. .venv/bin/python benchmarks/teacher_cache.py                  # the docs/results.md numbers
    PYTHONPATH=. .venv/bin/python benchmarks/teacher_cache.py --teacher ../shared/data/weights/zoo/IMDN_x2.pth
    PYTHONPATH=. .venv/bin/python benchmarks/teacher_cache.py --steps 4 --reps 1 --dry   # a quick look
    PYTHONPATH=. .venv/bin/python benchmarks/teacher_cache.py --quantisation \
        --teacher ../shared/data/weights/vdsr_teacher_x234.pt --data ../shared/data/set5/HR   # storage dtypes

``--quantisation`` measures instead what storing the teacher's output costs: for uint8 and float16, the PSNR
and mean |error| of the stored output against the float output, and the change of what the strategies
compute from it (KD's distillation target is the stored output itself; AIL's w0 = g(|T − y|) with μ0 = 0.01,
α0 = 100), on the HR images of ``--data`` degraded to LR (table between ``<!-- teacher-cache-quant:begin -->``
/ ``end``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOC = REPO / "docs" / "results.md"
MARKERS = ("<!-- teacher-cache:begin -->", "<!-- teacher-cache:end -->")
QMARKERS = ("<!-- teacher-cache-quant:begin -->", "<!-- teacher-cache-quant:end -->")
MODES = ("off", "on")  # teacher per batch, cached outputs


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def make_teacher(path: str | None, scale: int):
    import torch

    from sr_compress.checkpoint import load_checkpoint
    from sr_compress.models import build_model

    if path:
        loaded = load_checkpoint(path)
        return loaded.model.eval(), Path(path).name
    torch.manual_seed(0)
    return build_model("edsr", scale=scale, n_feats=64, n_blocks=8).eval(), "EDSR F64 B8 (random weights)"


def make_student(scale: int, channels: int, seed: int = 0):
    import torch

    from sr_compress.models import build_model
    from sr_compress.models.plain import plain_layers

    torch.manual_seed(seed)
    return build_model("plain", scale=scale, channels=channels, layers=plain_layers(6, 16, scale, channels))


def steps_per_second(history: list[dict]) -> float:
    first, last = history[0], history[-1]
    return (last["step"] - first["step"]) / (last["elapsed"] - first["elapsed"])


def write_block(markers: tuple[str, str], text: str, title: str) -> None:
    doc = DOC.read_text()
    start, end = markers
    block = f"{start}\n{text}\n{end}"
    if start in doc and end in doc:
        doc = doc[:doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
    DOC.write_text(doc)


def quantisation(args: argparse.Namespace, teacher, teacher_name: str, cmd: str) -> str:
    """Stored (uint8 / float16) vs float teacher outputs on whole images: PSNR, L1, AIL w0 change."""
    import math

    import torch

    from sr_compress.data.datasets import load_dataset
    from sr_compress.data.degrade import degrade, mod_crop
    from sr_compress.deploy.tiling import tiled_network
    from sr_compress.infer import to_model_space
    from sr_compress.train.strategies.ail import teacher_importance
    from sr_compress.train.teacher_cache import TeacherCache

    s = teacher.scale
    rows = {d: {"se": 0.0, "ae": 0.0, "n": 0, "w_ae": 0.0, "w_max": 0.0, "gt_se": 0.0} for d in ("uint8", "float16")}
    float_gt_se = 0.0
    ims = load_dataset(args.data, s, "bi", split="train")
    for im in ims:
        hr = mod_crop(im.hr, s).unsqueeze(0)
        lr = degrade(hr, s, "bi")[0]
        y = to_model_space(teacher, hr)[0]
        ref = TeacherCache(teacher, None, tiler=tiled_network).run_teacher(lr)
        for dtype, acc in rows.items():
            stored = torch.from_numpy(TeacherCache(teacher, None, dtype=dtype).quantize(ref)).float()
            got = stored / 255.0 if dtype == "uint8" else stored  # what TeacherCache.crop returns
            d = got - ref
            acc["se"] += float((d * d).sum())
            acc["ae"] += float(d.abs().sum())
            acc["n"] += d.numel()
            w_ref, w_got = teacher_importance((ref - y).abs()), teacher_importance((got - y).abs())
            acc["w_ae"] += float((w_got - w_ref).abs().sum())
            acc["w_max"] = max(acc["w_max"], float((w_got - w_ref).abs().max()))
            acc["gt_se"] += float(((got.clamp(0, 1) - y) ** 2).sum())
            if dtype == "uint8":
                float_gt_se += float(((ref.clamp(0, 1) - y) ** 2).sum())
    n = rows["uint8"]["n"]
    gt_float = 10 * math.log10(n / float_gt_se)
    lines = [
        f"Teacher {teacher_name} (×{s}, {'Y' if teacher.channels == 1 else 'RGB'}), run on the whole LR image of "
        f"each of the {len(ims)} images of `{args.data or 'default photos'}` (bicubic LR made from HR), "
        f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d')}. Command: `{cmd}`. Float teacher vs HR: "
        f"{gt_float:.3f} dB (output clipped to [0, 1], no border crop).",
        "",
        "| stored as | bytes / HR px / channel | PSNR stored vs float output | mean abs error "
        "| AIL w0: mean abs change | AIL w0: max change | teacher vs HR from stored |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dtype, acc in rows.items():
        psnr = 10 * math.log10(acc["n"] / acc["se"]) if acc["se"] else float("inf")
        lines.append(f"| {dtype} | {1 if dtype == 'uint8' else 2} | {psnr:.2f} dB | {acc['ae'] / acc['n']:.2e} | "
                     f"{acc['w_ae'] / acc['n']:.2e} | {acc['w_max']:.3f} | "
                     f"{10 * math.log10(acc['n'] / acc['gt_se']):.3f} dB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    from sr_compress.data.datasets import PatchSampler, load_dataset
    from sr_compress.deploy.tiling import tiled_network
    from sr_compress.models import count_params
    from sr_compress.train.teacher_cache import TeacherCache
    from sr_compress.train.trainer import TrainConfig, Trainer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=None, help="teacher file (.pt/.pth any format, or .onnx)")
    ap.add_argument("--data", default=None, help="training images (default: the bundled photos)")
    ap.add_argument("--strategies", default="kd,ail")
    ap.add_argument("--steps", type=int, default=8, help="steps per measurement")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=96, help="HR patch side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float16", choices=("uint8", "float16"))
    ap.add_argument("--quantisation", action="store_true", help="measure the storage dtypes instead of speed")
    ap.add_argument("--dry", action="store_true", help="print, do not write docs/results.md")
    args = ap.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    cmd = "PYTHONPATH=. .venv/bin/python benchmarks/" + Path(__file__).name + (
        " " + shlex.join(given) if given else "")

    torch.set_num_threads(args.threads)
    teacher, teacher_name = make_teacher(args.teacher, 2)
    if args.quantisation:
        text = quantisation(args, teacher, teacher_name, cmd)
        print(text)
        if not args.dry:
            write_block(QMARKERS, text, "Teacher outputs once: storage precision")
        return 0
    scale = teacher.scale
    student0 = make_student(scale, teacher.channels)
    images = load_dataset(args.data, scale, "bi", split="train")
    sampler = PatchSampler(images, scale, args.patch_size, args.batch_size, seed=0)
    lrs = sampler.lr_images()

    work = Path(tempfile.mkdtemp(prefix="teacher_cache_bench_"))
    t0 = time.perf_counter()
    cache = TeacherCache(teacher, work / "cache", dtype=args.dtype, tiler=tiled_network)
    cold = cache.build(lrs)
    cold_s = time.perf_counter() - t0
    warm = TeacherCache(teacher, work / "cache", dtype=args.dtype, tiler=tiled_network).build(lrs)

    strategies = [s for s in args.strategies.split(",") if s]
    rates: dict[tuple[str, str], list[float]] = {(s, m): [] for s in strategies for m in MODES}
    for rep in range(args.reps):
        for strat in strategies:
            for mode in MODES:
                student = make_student(scale, teacher.channels)
                cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size,
                                  lr=1e-4, log_every=1, ckpt_every=0, device="cpu", teacher_cache=mode)
                res = Trainer(student, strat, sampler, cfg, teacher=teacher,
                              teacher_cache=cache if mode == "on" else None).fit()
                rates[(strat, mode)].append(steps_per_second(res.history))
                print(f"rep {rep} {strat:3s} teacher_cache={mode:3s} {rates[(strat, mode)][-1]:.3f} steps/s",
                      flush=True)

    px = sum(int(t.shape[-1]) * int(t.shape[-2]) for t in lrs)
    load = os.getloadavg()[0]
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Teacher: {teacher_name}, ×{scale}, {count_params(teacher):,} parameters; student: plain 6×16 + shuffle "
        f"conv, {count_params(student0):,} parameters. Batch {args.batch_size} × {args.patch_size}² HR patches "
        f"from {len(lrs)} training images ({px / 1e6:.2f} MP of LR), {args.steps} steps per run, "
        f"{args.reps} interleaved repetitions (median), {args.threads} torch threads, CPU ({cpu_model()}, "
        f"shared: load average {load:.1f} at the end), {date}. Command: `{cmd}`.",
        "",
        "| strategy | teacher per batch (steps/s) | cached outputs (steps/s) | speed-up: median of the "
        "interleaved pairs (range) |",
        "|---|---:|---:|---:|",
    ]
    for strat in strategies:
        a, b = (statistics.median(rates[(strat, m)]) for m in MODES)
        pairs = [on / off for off, on in zip(rates[(strat, "off")], rates[(strat, "on")], strict=True)]
        lines.append(f"| {strat} | {a:.3f} | {b:.3f} | {statistics.median(pairs):.1f}× "
                     f"({min(pairs):.1f}–{max(pairs):.1f}) |")
    lines += [
        "",
        f"Cache ({args.dtype}): built in {cold_s:.1f} s cold ({cold.built} images, whole-image teacher runs, "
        f"tiled above 256 LR px), opened again in {warm.seconds:.2f} s ({warm.reused} reused); "
        f"{cold.bytes / 2**20:.1f} MiB on disk ({cold.bytes / (px * scale * scale):.2f} bytes per HR pixel).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.dry:
        write_block(MARKERS, text, "Teacher outputs once: KD / AIL speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
