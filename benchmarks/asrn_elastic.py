"""ASRN elastic depth: SS vs DSL vs DSL+PSD at one fixed budget, evaluated at every depth (docs/results.md).

Trains ASRN ×2 (5 MABs of 96) on the bundled photos four ways from the same initial weights — ``ss`` (only
the last output supervised), ``dsl`` (deep supervision), ``dsl_psd`` (DSL + progressive self-distillation,
λ = 0.1) and our ablation ``dsl_psd_deepest`` (PSD with the last block teaching every block) — then truncates
each to depths 5..1 (``truncate``, no retraining) and reports per depth: Y-PSNR/SSIM on ../shared/data/set5
(HR images, bicubic LR made by our eval path) and on the held-out photos, params, FLOPs, and ONNX latency /
peak memory from ``bench``. Writes OUT/results.json and OUT/results.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/asrn_elastic.py --out /tmp/asrn_bench            # full
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/asrn_elastic.py --out /tmp/asrn_smoke --tiny      # smoke test
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SET5 = REPO.parent / "shared" / "data" / "set5" / "HR"
VARIANTS = {"ss": {"dsl": False, "psd": False}, "dsl": {"dsl": True, "psd": False},
            "dsl_psd": {"dsl": True, "psd": True}, "dsl_psd_deepest": {"dsl": True, "psd": True, "psd_mode": "deepest"}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="work folder (checkpoints, ONNX, results)")
    ap.add_argument("--phase", choices=["train", "eval", "all"], default="all")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64, help="HR patch side")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--step-size", type=int, default=1000, help="halve the learning rate every N steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench-size", default="1280x720", help="output size (W×H) for bench")
    ap.add_argument("--runs", type=int, default=5, help="timed bench runs per model")
    ap.add_argument("--tiny", action="store_true", help="smoke test: tiny ASRN, 4 steps, small bench")
    return ap.parse_args(argv)


def hparams(args: argparse.Namespace) -> dict:
    from sr_compress.models import tiny_hparams

    return tiny_hparams("asrn", 2) if args.tiny else {"n_feats": 96, "n_blocks": 5}


def train_all(args: argparse.Namespace) -> dict[str, dict]:
    import torch

    from sr_compress.ops.train import new_model, train_model
    from sr_compress.train.trainer import TrainConfig

    torch.set_num_threads(1)
    steps = 4 if args.tiny else args.steps
    config = TrainConfig(steps=steps, batch_size=args.batch, patch_size=args.patch, lr=args.lr, scheduler="step",
                         step_size=args.step_size, gamma=0.5, seed=args.seed, ckpt_every=500,
                         log_every=max(1, steps // 20), device="cpu")
    info = {}
    for name, opts in VARIANTS.items():
        out = args.out / f"{name}.pt"
        if out.exists():
            info[name] = {"path": str(out), "reused": True}
            continue
        model = new_model("asrn", scale=2, hparams=hparams(args), seed=args.seed)  # same start for all three
        t0 = time.perf_counter()
        res = train_model(model, out=out, config=config, strategy="dsl_psd", strategy_options=opts,
                          resume=(args.out / f"{name}.train" / "last.pt").exists())
        info[name] = {"path": str(out), "seconds": time.perf_counter() - t0, "final_loss": res.final_loss,
                      "history": res.history}
        print(f"{name}: {steps} steps in {info[name]['seconds']:.0f} s, loss {res.final_loss:.4f}", flush=True)
    (args.out / "train.json").write_text(json.dumps({"config": config.to_dict(), "runs": info}, indent=2))
    return info


def evaluate_all(args: argparse.Namespace, command: str) -> dict:
    """Every variant at every depth on Set5 and the held-out photos; bench of the depths (one variant: the
    depth-k graphs of the three variants differ only in their weights)."""
    import torch

    from sr_compress.compress.truncate import evaluate_depths
    from sr_compress.config import parse_size
    from sr_compress.evaluate import eval_pairs_for
    from sr_compress.ops.common import load_model

    torch.set_num_threads(1)
    from sr_compress.evaluate import evaluate_bicubic

    sets = {"set5": eval_pairs_for(SET5, 2), "photos": eval_pairs_for("default", 2)}
    bicubic = {data: evaluate_bicubic(pairs, 2).mean.psnr_y for data, pairs in sets.items()}
    scores = {}
    for name in VARIANTS:
        model = load_model(args.out / f"{name}.pt").model
        scores[name] = {data: evaluate_depths(model, pairs, size=(320, 180)).to_dict() for data, pairs in sets.items()}
        print(f"{name}: " + ", ".join(f"{r['depth']}: {r['psnr_y']:.2f}" for r in scores[name]["set5"]["rows"]),
              flush=True)
    cost, settings = bench_depths(args, load_model(args.out / "dsl_psd.pt").model, parse_size(args.bench_size))
    result = {"command": f"OMP_NUM_THREADS=1 python benchmarks/asrn_elastic.py {command}".strip(),
              "date": time.strftime("%Y-%m-%d"), "train": json.loads((args.out / "train.json").read_text())["config"]
              if (args.out / "train.json").exists() else None, "scores": scores, "bicubic": bicubic, "bench": cost,
              "bench_settings": settings}
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    (args.out / "results.md").write_text(markdown(result))
    print(markdown(result))
    return result


def bench_depths(args: argparse.Namespace, model, size: tuple[int, int]) -> tuple[list[dict], str]:
    """Export the model truncated to each depth and bench the graphs side by side (ORT, CPU, 1 thread)."""
    from sr_compress.compress.truncate import truncate
    from sr_compress.deploy.bench import bench_models
    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.deploy.report import settings_line

    paths = []
    for k in range(len(model.body), 0, -1):
        path = args.out / f"asrn_x2_k{k}.onnx"
        export_onnx(truncate(model, blocks=k)[0], path, force=True)
        paths.append(path)
    runs = 1 if args.tiny else args.runs
    res = bench_models(paths, size=size, threads=1, warmup=1, runs=runs, rounds=1, memory=True,
                       tune_malloc=False)
    rows = []
    for k, m in zip(range(len(model.body), 0, -1), res.models, strict=True):
        rows.append({"depth": k, "params": m.params, "gflops": m.flops / 1e9, "median_ms": m.latency.median_s * 1e3,
                     "peak_mb": m.memory.steady_bytes / 2**20 if m.memory else None,
                     "bound_mb": m.bound_bytes / 2**20})
    return rows, settings_line(res)


def markdown(result: dict) -> str:
    """The elastic table: Y-PSNR per depth for each variant on both sets, then cost per depth."""
    names = list(result["scores"])
    depths = [r["depth"] for r in result["scores"][names[0]]["set5"]["rows"]]
    cost = {r["depth"]: r for r in result["bench"]}
    head = ["blocks"] + [f"{n} {d}" for d in ("set5", "photos") for n in names] + [
        "params", "GFLOPs", "ORT median ms", "peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, k in enumerate(depths):
        cells = [str(k)] + [f"{result['scores'][n][d]['rows'][i]['psnr_y']:.2f}" for d in ("set5", "photos")
                            for n in names]
        c = cost[k]
        peak = f"{c['peak_mb']:.0f}" if c["peak_mb"] is not None else "–"
        cells += [f"{c['params']:,}", f"{c['gflops']:.1f}", f"{c['median_ms']:.0f}", peak]
        lines.append("| " + " | ".join(cells) + " |")
    drop = ["drop N→1"] + [f"{r[0]['psnr_y'] - r[-1]['psnr_y']:.2f}" for d in ("set5", "photos") for n in names
                           for r in [result["scores"][n][d]["rows"]]] + ["", "", "", ""]
    lines.append("| " + " | ".join(drop) + " |")
    bic = ["bicubic"] + [f"{result['bicubic'][d]:.2f}" for d in ("set5", "photos") for _ in names] + [""] * 4
    lines.append("| " + " | ".join(bic) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.phase in ("train", "all"):
        train_all(args)
    if args.phase in ("eval", "all"):
        evaluate_all(args, " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))


if __name__ == "__main__":
    main()
