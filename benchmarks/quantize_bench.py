"""Issue #15's benchmark: float32 vs int8 vs half precision, quality, latency and peak memory side by side.

For each model (the demo's EDSR teacher, plain and slim students — checkpoints from ``--demo DIR`` — and a
plainified EDSR r16f64 ×4 with a one-shuffle tail built from a *random-init* teacher, ``--width 64``):

1. export the float32 ONNX graph; quantise it with :func:`sr_compress.deploy.quantize.quantize` to int8
   (defaults: MinMax, per-channel weights, the exact plain-student rewrites, conv widths aligned for
   onnxruntime's fused int8 kernel), and to int8 without the alignment (``align=False``: what onnxruntime does
   with the widths as they are); for plain students also without the rewrites (the collapse of issue #15) and
   fp16 ONNX (onnxruntime CPU);
2. quality on the held-out bundled photos (256 px centre crops): Y-PSNR of each precision, the drop, the
   largest per-pixel difference; PyTorch bf16 scored the same way;
3. latency (one process, all entries interleaved, ``--runs`` each after ``--warmup``) and peak memory (one
   fresh process per entry and round, :mod:`sr_compress.deploy.memory`) at ``--size`` output, onnxruntime
   preset ``lowmem`` (ORT_ENABLE_ALL, arena off, glibc mmap threshold 1 MB) and PyTorch float32 / bf16.

    PYTHONPATH=. .venv/bin/python benchmarks/quantize_bench.py --demo /tmp/demo_models --out /tmp/qbench \\
        --json /tmp/qbench/result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from sr_compress.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from sr_compress.deploy.bench import (  # noqa: E402
    cpu_model,
    input_shape,
    inspect_model,
    model_cost,
    set_mmap_threshold,
    summarize,
    time_interleaved,
    torch_threads,
)
from sr_compress.deploy.memory import probe_env, run_probe  # noqa: E402
from sr_compress.deploy.onnx import export_onnx  # noqa: E402
from sr_compress.deploy.quantize import held_out_pairs, quantize  # noqa: E402
from sr_compress.deploy.runners import ORT_PRESETS, open_runner  # noqa: E402

MB = 1e6


def r16_plain_student(out: Path) -> Path:
    """A plainified EDSR r16f64 ×4 (random-init teacher, seed 0), width 64, one-shuffle tail."""
    from sr_compress.compress.plainify.winning_init import winning_init
    from sr_compress.models import build_model

    path = out / "plain_r16f64_x4.pt"
    if not path.exists():
        torch.manual_seed(0)
        teacher = build_model("edsr", scale=4, n_feats=64, n_blocks=16)
        student, _, _ = winning_init(teacher, width=64, tail="shuffle")
        save_checkpoint(student, path)
    return path


@torch.no_grad()
def torch_quality(pt: Path, pairs: list, dtype: torch.dtype) -> float:
    from sr_compress.metrics import psnr

    model = load_checkpoint(pt).model.eval().to(dtype)
    scores = []
    for p in pairs:
        sr = model(p.lr[None].to(dtype)).float().clamp(0, 1)
        scores.append(psnr(sr, p.hr, crop=model.scale))
    return statistics.mean(scores)


def prepare(models: dict[str, Path], out: Path, log: logging.Logger) -> tuple[list[dict], dict]:
    entries, quality = [], {}
    for name, pt in models.items():
        m = load_checkpoint(pt).model.eval()
        plain = m.arch == "plain"
        f32 = out / f"{name}.onnx"
        if not f32.exists():
            export_onnx(m, f32, validate=False)
        entries.append({"model": name, "variant": "float32 ORT", "path": str(f32), "precision": "float32"})
        q = {}
        variants = [("int8", {"precision": "int8"}), ("int8 unaligned", {"precision": "int8", "align": False})]
        if plain:
            variants += [("int8 (no rewrites)", {"precision": "int8", "rewrite": False}),
                         ("fp16 ORT", {"precision": "fp16"})]
        for label, kw in variants:
            slug = {"int8 (no rewrites)": "int8_raw", "int8 unaligned": "int8_unaligned"}.get(label, label.split()[0])
            dest = out / f"{name}_{slug}.onnx"
            src = pt if kw.get("rewrite", True) and kw["precision"] == "int8" else f32
            _, rep = quantize(src, dest, max_drop=1e9, force=True, **kw)
            q[label] = {k: getattr(rep, k) for k in ("float_psnr_y", "quant_psnr_y", "drop_db", "max_diff_levels",
                                                       "weights_by_dtype", "rewrites")}
            log.info("%s %s: float %.3f → %.3f dB (%.3f), max diff %.1f levels", name, label, rep.float_psnr_y,
                     rep.quant_psnr_y, rep.drop_db, rep.max_diff_levels)
            if label != "int8 (no rewrites)":
                entries.append({"model": name, "variant": f"{label} ORT" if label.startswith("int8") else label,
                                "path": str(dest), "precision": "float32"})
        pairs = held_out_pairs(None, m.scale, 256)
        f = torch_quality(pt, pairs, torch.float32)
        b = torch_quality(pt, pairs, torch.bfloat16)
        q["bf16 PyTorch"] = {"float_psnr_y": f, "quant_psnr_y": b, "drop_db": f - b}
        log.info("%s bf16 PyTorch: %.3f → %.3f dB", name, f, b)
        entries.append({"model": name, "variant": "float32 PyTorch", "path": str(pt), "precision": "float32"})
        entries.append({"model": name, "variant": "bf16 PyTorch", "path": str(pt), "precision": "bf16"})
        quality[name] = q
    return entries, quality


def measure(entries: list[dict], size: tuple[int, int], threads: int, warmup: int, runs: int, rounds: int,
            log: logging.Logger) -> None:
    for e in entries:
        spec = inspect_model(e["path"])
        e["shape"] = input_shape(spec, size)
        cost = model_cost(spec, e["shape"])
        e.update(bound_bytes=cost.bound_bytes, params_by_dtype=cost.params_by_dtype, flops=cost.flops,
                 weights_bytes=cost.weights_bytes, peak_node=cost.peak_node)
    set_mmap_threshold(ORT_PRESETS.get("lowmem")["malloc_mmap_threshold"])
    with torch_threads(threads):
        runners = [open_runner(Path(e["path"]), shape=e["shape"], threads=threads, preset="lowmem",
                               precision=e["precision"]) for e in entries]
        times = time_interleaved(runners, warmup=warmup, runs=runs)
    del runners
    for e, t in zip(entries, times, strict=True):
        e["latency"] = vars(summarize(t))
    rng = random.Random(0)
    for r in range(rounds):
        order = list(range(len(entries)))
        rng.shuffle(order)
        for i in order:
            e = entries[i]
            args = [e["path"], "--shape", ",".join(map(str, e["shape"])), "--threads", threads, "--preset",
                    "lowmem", "--precision", e["precision"]]
            e.setdefault("memory", []).append(run_probe(args, env=probe_env(ORT_PRESETS.get("lowmem"), "cpu")))
            log.info("memory round %d %s %s: first %.1f MB", r, e["model"], e["variant"],
                     e["memory"][-1]["first_bytes"] / MB)


def table(entries: list[dict], quality: dict) -> str:
    lines = ["| model | variant | Y-PSNR float → variant (drop) | max diff (levels) | params by dtype | bound MB | "
             "peak MB first / steady | peak × float32 ORT | median ms | × float32 ORT |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    base = {}
    for e in entries:
        e["peak"] = max(statistics.median(p["first_bytes"] for p in e["memory"]),
                        statistics.median(p["steady_bytes"] for p in e["memory"]))
        if e["variant"] == "float32 ORT":
            base[e["model"]] = e
    for e in entries:
        b = base[e["model"]]
        key = {"int8 ORT": "int8", "int8 unaligned ORT": "int8 unaligned", "fp16 ORT": "fp16 ORT",
               "bf16 PyTorch": "bf16 PyTorch"}.get(e["variant"])
        q = quality[e["model"]].get(key) if key else None
        qs = (f"{q['float_psnr_y']:.3f} → {q['quant_psnr_y']:.3f} ({-q['drop_db']:+.3f})" if q else "")
        diff = f"{q['max_diff_levels']:.1f}" if q and "max_diff_levels" in q else ""
        first = statistics.median(p["first_bytes"] for p in e["memory"]) / MB
        steady = statistics.median(p["steady_bytes"] for p in e["memory"]) / MB
        params = ", ".join(f"{k} {v:,}" for k, v in (e["params_by_dtype"] or {}).items())
        med, base_med = e["latency"]["median_s"], b["latency"]["median_s"]
        lines.append(f"| {e['model']} | {e['variant']} | {qs} | {diff} | {params} | {e['bound_bytes'] / MB:.1f} | "
                     f"{first:.1f} / {steady:.1f} | {e['peak'] / b['peak']:.2f} | "
                     f"{med * 1e3:.0f} | {med / base_med:.2f} |")
    for name, q in quality.items():
        raw = q.get("int8 (no rewrites)")
        if raw:
            lines.append(f"| {name} | int8 without the rewrites (not timed) | {raw['float_psnr_y']:.3f} → "
                         f"{raw['quant_psnr_y']:.3f} ({-raw['drop_db']:+.3f}) | {raw['max_diff_levels']:.1f} "
                         "| | | | | | |")
    return "\n".join(lines)


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, help="folder with the demo's teacher.pt, plain_ft.pt, slim_ft.pt")
    ap.add_argument("--no-r16", action="store_true", help="skip the plainified EDSR r16f64 ×4")
    ap.add_argument("--out", type=Path, default=Path("/tmp/quantize_bench"))
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("quantize_bench")
    logging.getLogger("root").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    models: dict[str, Path] = {}
    if args.demo:
        for name, file in (("demo teacher", "teacher.pt"), ("demo plain", "plain_ft.pt"),
                           ("demo slim", "slim_ft.pt")):
            if (args.demo / file).exists():
                models[name] = args.demo / file
    if not args.no_r16:
        models["plain r16f64 x4 (random-init teacher)"] = r16_plain_student(args.out)
    w, h = (int(v) for v in args.size.split("x"))
    load_start = _load()
    entries, quality = prepare(models, args.out, log)
    measure(entries, (w, h), args.threads, args.warmup, args.runs, args.rounds, log)
    md = table(entries, quality)
    header = (f"{cpu_model()}, {args.threads} threads, load average {load_start} → {_load()}, output {w}×{h}, "
              f"onnxruntime preset lowmem (ORT_ENABLE_ALL, arena off, mmap threshold 1 MB), {args.warmup} warm-up + "
              f"{args.runs} timed runs interleaved, memory {args.rounds} fresh process(es) per entry; "
              f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}")
    print(header + "\n\n" + md)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "entries": entries, "quality": quality,
                                         "table": md}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
