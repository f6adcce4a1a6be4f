"""Published-number check for the released lightweight nets (../shared/data/weights/zoo): Set5 (and Set14, B100
with ``--sets``) Y-PSNR with the MATLAB-bicubic LR files, beside the published and the reference-measured
figures of data/README.md.

Protocol (data/README.md, "Set5 protocol"): the net runs on the whole LR image; its RGB output is clipped to
[0, 1], scaled to 0–255 and rounded; Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255; **Y-float** keeps Y in
float, **Y-round** rounds the Y of SR and HR (MATLAB ``rgb2ycbcr`` on uint8); ``s`` pixels shaved; PSNR per
image, then the mean. Y nets (FSRCNN): the predicted Y is clipped, scaled and rounded; the HR Y as above. The
LR Y given to FSRCNN is our standard BT.601 Y (the model contract) and, in a second column, yjn870's
preprocess (typo'd 64.738 coefficient, /256) with which the weights were trained and the reference measured.

Duplicated here until the data branch lands (switch to the shared code after the merge):
- SelfExSR pairing (``<Set>/image_SRF_<s>/img_NNN_SRF_<s>_{HR,LR}.png``) and B100's benchmark layout with
  ``.jpg`` HR cropped to s × LR (:func:`selfexsr_pairs`, :func:`b100_pairs`);
- the Y-float convention (RGB rounded, Y not): done with ``sr_compress.metrics.psnr(quantize=False)`` on a
  pre-rounded image. Greyscale files (Set14 bridge) are expanded to R = G = B.

    PYTHONPATH=. .venv/bin/python benchmarks/zoo_set5.py                       # Set5, every zoo net
    PYTHONPATH=. .venv/bin/python benchmarks/zoo_set5.py --sets Set5 Set14 B100 --json /tmp/zoo.json
    PYTHONPATH=. .venv/bin/python benchmarks/zoo_set5.py --slim 0.25 0.5 --nets rlfn_x4 realesr-animevideov3

``--slim RHO…``: also evaluate each net after ``slim`` (l1 selection, weights copied, with and without gain
calibration, no fine-tuning) at each ρ: parameters and Set5 Y-PSNR — what slimming costs before any training.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sr_compress.checkpoint import load_checkpoint  # noqa: E402
from sr_compress.color import rgb_to_y  # noqa: E402
from sr_compress.metrics import psnr  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
# file, scale, published Set5 (data/README.md; None: none published), reference-measured (Y-float, Y-round)
NETS = [
    ("IMDN_x2", 2, 38.00, (37.997, 37.912)), ("IMDN_x3", 3, 34.36, (34.362, 34.326)),
    ("IMDN_x4", 4, 32.21, (32.211, 32.189)), ("RFDN_AIM", 4, None, (32.161, 32.139)),
    ("rlfn_x4", 4, 32.24, (32.240, 32.218)), ("rlfn_ntire_x4", 4, None, (32.098, 32.076)),
    ("fsrcnn_x2", 2, 36.94, (36.997, 36.962)), ("fsrcnn_x3", 3, 33.06, (32.569, 32.552)),
    ("fsrcnn_x4", 4, 30.55, (30.478, 30.467)), ("realesr-animevideov3", 4, None, (28.232, 28.220)),
]


def read_rgb(path: Path) -> torch.Tensor:
    """(3,H,W) float32 in [0,1]; greyscale expanded to R = G = B."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def selfexsr_pairs(root: Path, scale: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, lr, hr) from a SelfExSR folder ``image_SRF_<s>`` (HR is already s × LR)."""
    folder = root / f"image_SRF_{scale}"
    out = []
    for hr_path in sorted(folder.glob(f"img_*_SRF_{scale}_HR.png")):
        lr_path = hr_path.with_name(hr_path.name.replace("_HR.png", "_LR.png"))
        out.append((hr_path.name.split("_SRF")[0], read_rgb(lr_path), read_rgb(hr_path)))
    return out


def b100_pairs(root: Path, scale: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(id, lr, hr) from the benchmark layout; the ``.jpg`` HR cropped to s × LR, top-left kept."""
    out = []
    for hr_path in sorted((root / "HR").glob("*.jpg")):
        lr = read_rgb(root / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png")
        hr = read_rgb(hr_path)[:, : lr.shape[1] * scale, : lr.shape[2] * scale]
        out.append((hr_path.stem, lr, hr))
    return out


def pairs_for(dataset: str, scale: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    root = DATA / "benchmarks" / dataset
    return b100_pairs(root, scale) if dataset == "B100" else selfexsr_pairs(root, scale)


def yjn870_y(rgb01: torch.Tensor) -> torch.Tensor:
    """yjn870/FSRCNN-pytorch's preprocess: Y on 0..255 with its typo'd coefficients, / 255 (float32)."""
    img = (rgb01 * 255.0).round()
    return ((16.0 + (64.738 * img[0] + 129.057 * img[1] + 25.064 * img[2]) / 256.0) / 255.0)[None, None]


@torch.no_grad()
def image_psnr(model, lr: torch.Tensor, hr: torch.Tensor, scale: int, typo_y: bool = False) -> tuple[float, float]:
    """(Y-float, Y-round) PSNR of one image under the README protocol."""
    if model.channels == 1:
        x = yjn870_y(lr) if typo_y else rgb_to_y(lr[None])
        sr = (model(x)[0].clamp(0, 1) * 255).round() / 255  # predicted Y, rounded
        hr_y = rgb_to_y(hr.double())
        return (psnr(sr, hr_y, crop=scale, y=False, quantize=False),
                psnr(sr, hr_y, crop=scale, y=False, quantize=True))
    sr = (model(lr[None])[0].clamp(0, 1) * 255).round() / 255  # uint8 RGB
    return psnr(sr, hr, crop=scale, y=True, quantize=False), psnr(sr, hr, crop=scale, y=True, quantize=True)


def load(name: str, scale: int):
    return load_checkpoint(DATA / "weights" / "zoo" / f"{name}.pth", overrides={"scale": scale}
                           if name.startswith("fsrcnn") else None).model


def evaluate(name: str, scale: int, dataset: str, model=None) -> dict:
    model = load(name, scale) if model is None else model
    t0 = time.perf_counter()
    per = [(n, *image_psnr(model, lr, hr, scale)) for n, lr, hr in pairs_for(dataset, scale)]
    row = {"net": name, "arch": model.arch, "scale": scale, "set": dataset, "images": len(per),
           "yfloat": float(np.mean([p[1] for p in per])), "yround": float(np.mean([p[2] for p in per])),
           "per_image_yfloat": [round(p[1], 3) for p in per]}
    if model.channels == 1:  # the input Y the weights were trained with
        typo = [image_psnr(model, lr, hr, scale, typo_y=True) for _, lr, hr in pairs_for(dataset, scale)]
        row["yfloat_typo_input"] = float(np.mean([t[0] for t in typo]))
        row["yround_typo_input"] = float(np.mean([t[1] for t in typo]))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=["Set5"], choices=["Set5", "Set14", "B100"])
    ap.add_argument("--nets", nargs="+", default=[n for n, *_ in NETS])
    ap.add_argument("--json", type=Path, help="write every row (appended as it is measured) to this file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--slim", nargs="+", type=float, default=[], metavar="RHO",
                    help="evaluate slimmed copies (l1, copy; calibrated and not) on the first set instead")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (DATA / "weights" / "zoo").is_dir():
        print(f"no zoo weights at {DATA / 'weights' / 'zoo'}", file=sys.stderr)
        return 2
    info = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "threads": args.threads, "rows": []}
    known = {n: (s, pub, meas) for n, s, pub, meas in NETS}
    if args.slim:
        return slim_table(args, known, info)
    print(f"{'net':22s} {'set':6s} s  Y-float  Y-round  | published  ref Y-float/Y-round  Δfloat")
    for dataset in args.sets:
        for name in args.nets:
            scale, pub, meas = known[name]
            row = evaluate(name, scale, dataset)
            info["rows"].append(row)
            extra = ""
            if dataset == "Set5":
                row["published"], row["reference"] = pub, meas
                row["delta_vs_reference"] = round(row["yfloat"] - meas[0], 4)
                extra = f"| {pub if pub else '-':>9} {meas[0]:7.3f}/{meas[1]:7.3f}  {row['delta_vs_reference']:+.3f}"
            if "yfloat_typo_input" in row:
                extra += f"  (typo-Y input: {row['yfloat_typo_input']:.3f}/{row['yround_typo_input']:.3f})"
            print(f"{name:22s} {dataset:6s} {scale}  {row['yfloat']:7.3f}  {row['yround']:7.3f}  {extra}  "
                  f"[{row['seconds']} s]", flush=True)
            if args.json:
                args.json.write_text(json.dumps(info, indent=1))
    return 0


def slim_table(args, known: dict, info: dict) -> int:
    from sr_compress.compress.slim import slim
    from sr_compress.models import count_params

    dataset = args.sets[0]
    print(f"{'net':22s} {'rho':>5s} {'calib':5s} {'params':>9s} {'Y-float':>8s} {'Y-round':>8s}  ({dataset})")
    for name in args.nets:
        scale = known[name][0]
        model = load(name, scale)
        base = evaluate(name, scale, dataset, model)
        print(f"{name:22s} {0:5.2f} {'-':5s} {count_params(model):9,d} {base['yfloat']:8.3f} {base['yround']:8.3f}",
              flush=True)
        info["rows"].append({**base, "rho": 0.0, "params": count_params(model)})
        for rho in args.slim:
            for calibrate in (True, False):
                small, rep = slim(model, rho, select="l1", init="copy", calibrate=calibrate)
                row = evaluate(name, scale, dataset, small)
                row.update(rho=rho, calibrate=calibrate, params=rep.params_after, macs=rep.macs_after)
                info["rows"].append(row)
                print(f"{name:22s} {rho:5.2f} {str(calibrate):5s} {rep.params_after:9,d} {row['yfloat']:8.3f} "
                      f"{row['yround']:8.3f}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
