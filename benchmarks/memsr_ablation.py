"""MemSR's Table 1 ablation at our budget: winning init vs default init, with/without feature distillation,
winning vs random bridges — plus the student's PSNR straight after plainify, the teacher's, params/FLOPs/bound,
and optionally a bench of the r16f64 ×4 shuffle-tail student beside its teacher (docs/results.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memsr_ablation.py --out runs/memsr/ablation.md   # small budget
    .venv/bin/python benchmarks/memsr_ablation.py --smoke --out /tmp/memsr.md                        # seconds

Teacher: ``--teacher PATH`` (any EDSR-style checkpoint) or an EDSR trained here (``--teacher-arch``-sized,
``--teacher-steps`` steps on the bundled photos). Every student is fine-tuned for the same ``--steps`` with the
same data, seed and optimiser (Adam + OneCycle); only the initialisation and the loss differ.
Scores: Y-PSNR on Set5 (../shared/data/set5, our MATLAB-exact bicubic LR) and on the held-out default photos.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SET5 = REPO.parent / "shared" / "data" / "set5"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="Markdown report path (a .json is written beside it).")
    p.add_argument("--teacher", default=None, help="Teacher checkpoint; default: train one here.")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--teacher-feats", type=int, default=32)
    p.add_argument("--teacher-blocks", type=int, default=4)
    p.add_argument("--teacher-steps", type=int, default=600)
    p.add_argument("--steps", type=int, default=300, help="Fine-tuning steps per student (equal budget).")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=64, help="HR patch side.")
    p.add_argument("--lr", type=float, default=5e-4, help="OneCycle max lr of the fine-tuning.")
    p.add_argument("--eps", type=float, default=0.05)
    p.add_argument("--tail", choices=["copy", "shuffle"], default="shuffle")
    p.add_argument("--shift-coef", type=float, default=3.0,
                   help="Mean-shift coefficient of the init (official 3; srcompress default 30).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bench", action="store_true",
                   help="Also bench EDSR r16f64 ×4 (random weights) vs its plainified shuffle-tail student.")
    p.add_argument("--bench-size", default="1920x1080")
    p.add_argument("--smoke", action="store_true", help="Tiny settings, to check the script runs (seconds).")
    a = p.parse_args(argv)
    if a.smoke:
        a.teacher_feats, a.teacher_blocks, a.teacher_steps, a.steps, a.batch, a.patch = 8, 2, 4, 3, 2, 32
    return a


def psnr(model, data) -> float:
    from sr_compress.ops.evaluate import evaluate_images as evaluate

    return float(evaluate(model, data=data, with_bicubic=False)[0].mean.psnr_y)


def scores(model) -> dict[str, float]:
    return {"set5": psnr(model, str(SET5)) if SET5.is_dir() else float("nan"), "photos": psnr(model, None)}


def costs(model, size=(1920, 1080)) -> dict[str, float]:
    from sr_compress.deploy.bound import graph_cost
    from sr_compress.deploy.onnx import simplify_graph, to_onnx

    s = model.scale
    c = graph_cost(simplify_graph(to_onnx(copy.deepcopy(model).float().eval())), [1, 3, size[1] // s, size[0] // s])
    return {"params": c.params, "gflops": c.flops / 1e9, "bound_mb": c.bound_bytes / 1e6}


def main(argv=None) -> int:
    import torch

    from sr_compress.checkpoint import load_checkpoint
    from sr_compress.compress.plainify import plainify
    from sr_compress.models import build_model
    from sr_compress.ops.train import new_model, train_model
    from sr_compress.train.trainer import TrainConfig

    a = parse(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    work = out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    log = []

    def note(msg: str) -> None:
        log.append(f"[{time.time() - t_start:7.1f}s] {msg}")
        print(log[-1], flush=True)

    def cfg(steps: int, lr: float, epochs: int = 5) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=a.batch, patch_size=a.patch, lr=lr, scheduler="onecycle",
                           max_lr=lr, ckpt_every=0, log_every=max(1, steps // 10), epoch_length=max(1, steps // epochs),
                           seed=a.seed, device="cpu")

    # -- the teacher ---------------------------------------------------------------------------------------------
    if a.teacher:
        teacher = load_checkpoint(a.teacher).model.eval()
        teacher_desc = f"{a.teacher}"
    else:
        model = new_model("edsr", scale=a.scale, hparams={"n_feats": a.teacher_feats, "n_blocks": a.teacher_blocks},
                          seed=a.seed)
        t0 = time.time()
        teacher = train_model(model, out=work / "teacher.pt", config=cfg(a.teacher_steps, 1e-3), force=True).model
        teacher = teacher.eval()
        teacher_desc = (f"EDSR r{a.teacher_blocks}f{a.teacher_feats} ×{a.scale}, {a.teacher_steps} steps "
                        f"(batch {a.batch}, HR patch {a.patch}, Adam OneCycle 1e-3) on the bundled photos, "
                        f"{time.time() - t0:.0f} s")
    note(f"teacher: {teacher_desc}")
    rows: dict[str, dict] = {}
    rows["teacher"] = {**scores(teacher), **costs(teacher)}
    note(f"teacher scores {rows['teacher']}")

    # -- plainify --------------------------------------------------------------------------------------------------
    t0 = time.time()
    outcome = plainify(teacher, eps=a.eps, tail=a.tail, seed=a.seed, shift_coef=a.shift_coef)
    plainify_s = time.time() - t0
    rep = outcome.report
    winning = outcome.model
    note(f"plainify eps={a.eps} tail={a.tail}: widths {rep.widths} in {plainify_s:.1f} s")
    rows["plainify, no training"] = {**scores(winning), **costs(winning)}
    note(f"after plainify: {rows['plainify, no training']}")
    torch.manual_seed(a.seed)  # the same architecture, PyTorch's default init
    default = build_model("plain", **winning.hparams).train()

    # -- equal-budget fine-tuning ------------------------------------------------------------------------------------
    variants = [  # (label, init, strategy, bridges)
        ("winning init + FD (winning bridges)", "winning", "memsr", "winning"),
        ("winning init + FD (random bridges)", "winning", "memsr", "random"),
        ("winning init, L1 only", "winning", "l1", None),
        ("default init + FD (random bridges)", "default", "memsr", "random"),
        ("default init, L1 only", "default", "l1", None),
    ]
    for label, init, strategy, bridges in variants:
        student = copy.deepcopy(winning if init == "winning" else default)
        t0 = time.time()
        res = train_model(student, out=work / f"{init}_{strategy}_{bridges}.pt", config=cfg(a.steps, a.lr),
                          strategy=strategy, strategy_options={"bridges": bridges} if bridges else {},
                          teacher=teacher if strategy == "memsr" else None,
                          student_extra=outcome.extra, force=True)
        rows[label] = {**scores(res.model.eval()), "train_s": time.time() - t0, "final_loss": res.final_loss}
        note(f"{label}: {rows[label]}")

    bench = None
    if a.bench:
        bench = run_bench(a, work, note)

    result = {"settings": vars(a), "teacher": teacher_desc, "plainify_seconds": plainify_s,
              "widths": rep.widths, "layers": rep.layers, "tail_rel_error": rep.tail_rel_error,
              "rows": rows, "bench": bench, "log": log, "command": "python " + shlex.join(sys.argv)}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    out.write_text(markdown(result))
    note(f"wrote {out}")
    return 0


def run_bench(a, work: Path, note) -> dict:
    """EDSR r16f64 ×4 (random weights; latency and memory do not depend on them) vs its plainified student."""
    import torch

    from sr_compress.compress.plainify import plainify
    from sr_compress.config import parse_size
    from sr_compress.deploy.bench import bench_models
    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.models import build_model

    torch.manual_seed(a.seed)
    t = build_model("edsr", scale=4, n_feats=64, n_blocks=16).eval()
    t0 = time.time()
    o = plainify(t, eps=a.eps, tail="shuffle", seed=a.seed)
    secs = time.time() - t0
    note(f"r16f64 plainify: {secs:.1f} s, widths {o.report.widths}")
    paths = [work / "edsr_r16f64_x4.onnx", work / "plain_r16f64_x4.onnx"]
    export_onnx(t, paths[0], force=True)
    export_onnx(o.model, paths[1], force=True)
    res = bench_models(paths, size=parse_size(a.bench_size), threads=2, runs=3, warmup=1, tune_malloc=False)
    note("bench done")
    return {"plainify_seconds": secs, "widths": o.report.widths, "result": res.to_dict() if hasattr(res, "to_dict")
            else str(res)}


def markdown(r: dict) -> str:
    s = r["settings"]
    lines = [f"# MemSR ablation (eps {s['eps']}, tail {s['tail']}, shift coefficient {s['shift_coef']})", "",
             f"Teacher: {r['teacher']}. Student widths {r['widths']} (plainify {r['plainify_seconds']:.1f} s).",
             f"Fine-tuning: {s['steps']} steps each, batch {s['batch']}, HR patch {s['patch']}, Adam OneCycle "
             f"max lr {s['lr']}, seed {s['seed']}; 1 thread, 2-core AMD EPYC (shared), no GPU.", "",
             "| model | Set5 Y-PSNR | photos Y-PSNR | params | GFLOP @1080p | bound MB @1080p |",
             "|---|---|---|---|---|---|"]
    for name, row in r["rows"].items():
        lines.append(f"| {name} | {row['set5']:.2f} | {row['photos']:.2f} | {row.get('params', '')} | "
                     f"{_f(row.get('gflops'))} | {_f(row.get('bound_mb'))} |")
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def _f(v) -> str:
    return "" if v is None else f"{v:.1f}"


if __name__ == "__main__":
    sys.exit(main())
