"""Training data at DIV2K scale: cold cache build, warm start, loader throughput vs an EDSR trainer, RSS.

    python benchmarks/data_scale.py --root /tmp/srcompress_div2k_synth      # or: make data-scale

1. ``make``: a synthetic DIV2K-size folder of ``--images`` (800) PNGs of about 2040×1356 px, tiled from random
   crops, flips and rotations of the photos bundled with scikit-image (no download), written OUTSIDE the repo.
2. ``cold``: the uint8 cache built from scratch (a fresh cache folder): time and size.
3. ``loader``: batches of 16 × 96 px HR patches at ×2 (bicubic LR made per patch), timed on one thread, and
   with the prefetching workers.
4. ``train`` (a fresh process, warm cache): EDSR r16f64 ×2, batch 16, patch 96, ``--steps`` steps with the
   cached loader: time to the first batch and to the first finished step from process start, seconds per step,
   peak RSS (``ru_maxrss``).
Prints one JSON document (also written to ``--out``). Needs several GB of disk under ``--root``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

W, H = 2040, 1356
PHOTOS = ("astronaut.png", "rocket.jpg", "ihc.png", "hubble_deep_field.jpg", "retina.jpg", "chelsea.png",
          "coffee.png")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _synthetic(i: int, photos: list) -> object:
    import numpy as np

    g = np.random.default_rng(i)
    h = H - int(g.integers(0, 5)) * 12  # DIV2K heights vary a little
    out = np.empty((h, W, 3), np.uint8)
    y = 0
    while y < h:  # rows of tiles, each a random crop of a random photo, flipped/rotated
        th = min(int(g.integers(250, 700)), h - y)
        x = 0
        while x < W:
            tw = min(int(g.integers(250, 900)), W - x)
            p = photos[int(g.integers(len(photos)))]
            p = np.rot90(p, int(g.integers(4)))
            if g.integers(2):
                p = p[:, ::-1]
            reps = (-(-th // p.shape[0]), -(-tw // p.shape[1]), 1)
            big = np.tile(p, reps) if reps[:2] != (1, 1) else p
            oy, ox = int(g.integers(big.shape[0] - th + 1)), int(g.integers(big.shape[1] - tw + 1))
            out[y:y + th, x:x + tw] = big[oy:oy + th, ox:ox + tw]
            x += tw
        y += th
    return out


def make(root: Path, n: int) -> float:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    from sr_compress.data.datasets import skimage_data_dir

    folder = root / "DIV2K_train_HR"
    if folder.is_dir() and len(list(folder.glob("*.png"))) == n:
        _log(f"make: {n} images already in {folder}")
        return 0.0
    folder.mkdir(parents=True, exist_ok=True)
    photos = [np.asarray(Image.open(skimage_data_dir() / p).convert("RGB")) for p in PHOTOS]
    t0 = time.perf_counter()

    def one(i: int) -> None:
        path = folder / f"{i + 1:04d}.png"
        if not path.exists():
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(_synthetic(i, photos)).save(tmp, compress_level=1)
            os.replace(tmp, path)
        if (i + 1) % 100 == 0:
            _log(f"make: {i + 1}/{n}")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def cold(root: Path, cache: Path) -> dict:
    import shutil

    from sr_compress.data.cache import ImageCache
    from sr_compress.data.layouts import detect_layout

    if cache.exists():
        shutil.rmtree(cache)
    layout = detect_layout(root, 2, "train", check_sizes=False)
    t0 = time.perf_counter()

    def progress(ev: dict) -> None:
        if ev["done"] % 100 == 0:
            _log(f"cold cache: {ev['done']}/{ev['total']} ({ev['built']} built)")

    ImageCache(cache).entries([(f.name, f.hr) for f in layout.files], progress=progress, workers=2)
    took = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in cache.glob("*.npy"))
    t0 = time.perf_counter()
    ImageCache(cache).entries([(f.name, f.hr) for f in layout.files])
    warm = time.perf_counter() - t0
    return {"images": len(layout.files), "cold_build_s": round(took, 1), "cache_gb": round(size / 1e9, 2),
            "warm_check_s": round(warm, 2)}


def _sampler(root: Path, cache: Path, prefetch: int, workers: int):
    from sr_compress.data.cache import cached_sampler
    from sr_compress.data.layouts import detect_layout

    layout = detect_layout(root, 2, "train", check_sizes=False)
    return cached_sampler(layout, 2, 96, 16, cache_dir=cache, prefetch=prefetch, workers=workers)


def loader(root: Path, cache: Path, batches: int) -> dict:
    s = _sampler(root, cache, 0, 0)
    s.batch(0)
    t0 = time.perf_counter()
    for i in range(1, batches + 1):
        s.batch(i)
    one = (time.perf_counter() - t0) / batches
    p = _sampler(root, cache, 4, 2)
    p.batch(0)
    time.sleep(2.0)  # let the workers fill the queue, then drain it faster than it refills
    t0 = time.perf_counter()
    for i in range(1, batches + 1):
        p.batch(i)
    two = (time.perf_counter() - t0) / batches
    p.close()
    return {"batch_s_one_thread": round(one, 4), "batch_s_prefetch_2_workers": round(two, 4)}


def train(root: Path, cache: Path, steps: int) -> dict:
    import torch

    from sr_compress.models import build_model
    from sr_compress.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    times: list[float] = []
    sampler = _sampler(root, cache, 4, 2)
    t_sampler = time.perf_counter() - T_START
    sampler.batch(0)
    t_batch = time.perf_counter() - T_START
    torch.manual_seed(0)
    model = build_model("edsr", scale=2, n_feats=64, n_blocks=16)
    cfg = TrainConfig(steps=steps, batch_size=16, patch_size=96, lr=1e-4, log_every=1, ckpt_every=0,
                      device="cpu")
    Trainer(model, "l1", sampler, cfg, progress=lambda ev: times.append(time.perf_counter() - T_START)).fit()
    sampler.close()
    per_step = (times[-1] - times[0]) / max(len(times) - 1, 1)
    return {"sampler_ready_s": round(t_sampler, 2), "first_batch_s": round(t_batch, 2),
            "first_step_done_s": round(times[0], 2), "step_s": round(per_step, 2), "steps": len(times),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("/tmp/srcompress_div2k_synth"))
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default: ROOT/../<root>_cache)")
    ap.add_argument("--images", type=int, default=800)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--only", choices=["make", "cold", "loader", "train"], default=None)
    args = ap.parse_args()
    if ROOT in args.root.resolve().parents:
        sys.exit("--root must be outside the repository")
    cache = args.cache or args.root.with_name(args.root.name + "_cache")
    if args.only == "train":  # the fresh process
        print(json.dumps(train(args.root, cache, args.steps)))
        return
    import torch

    torch.set_num_threads(2)
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "images": args.images,
                 "torch": torch.__version__, "load_avg_start": os.getloadavg()}
    res["make_s"] = round(make(args.root, args.images), 1)
    if args.only == "make":
        print(json.dumps(res, indent=2))
        return
    res["cache"] = cold(args.root, cache)
    _log(f"cache: {res['cache']}")
    res["loader"] = loader(args.root, cache, args.batches)
    _log(f"loader: {res['loader']}")
    out = subprocess.run([sys.executable, __file__, "--root", str(args.root), "--cache", str(cache), "--steps",
                          str(args.steps), "--only", "train"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    res["train"] = json.loads(out.stdout.strip().splitlines()[-1])
    res["loader_speedup_vs_trainer"] = round(res["train"]["step_s"] / res["loader"]["batch_s_one_thread"], 1)
    res["load_avg_end"] = os.getloadavg()
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
