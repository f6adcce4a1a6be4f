"""benchmarks/zoo.py (issue #16) runs its whole pipeline — teacher cache, the seven training runs, int8 (when
this checkout has ``quantize``), eval, bench, docs section and pictures — on generated images and tiny
teachers of the real families, and ``--table-only`` rebuilds the same section from the saved results."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_compress.checkpoint import save_checkpoint
from sr_compress.imresize import imresize
from sr_compress.models import build_model, model_class

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "zoo.py"
#: what the benchmark builds on: the teacher cache and ONNX reading (#14, onnxt), the IMDN/RLFN/SRVGGNetCompact
#: families (#14, zoo), evaluate_table and the MATLAB uint8 bicubic (#13, data), quantize (#15, optional)
NEEDS = ("sr_compress.train.teacher_cache", "sr_compress.models.imdn", "sr_compress.models.srvgg")
MISSING = [m for m in NEEDS if importlib.util.find_spec(m) is None]


def _load():
    spec = importlib.util.spec_from_file_location("zoo_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _image(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth, textured 8-bit RGB image (sums of random sinusoids)."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(4):
            fy, fx, ph = g.uniform(0.02, 0.3), g.uniform(0.02, 0.3), g.uniform(0, 2 * math.pi)
            out[..., c] += np.sin(fy * yy + fx * xx + ph)
    return np.clip((out / 8 + 0.5) * 255, 0, 255).round().astype(np.uint8)


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _lr(hr: np.ndarray, s: int) -> np.ndarray:
    t = torch.from_numpy(hr).permute(2, 0, 1).contiguous()
    return imresize(t, 1.0 / s, uint8=True).permute(1, 2, 0).numpy()


def _fake_data(root: Path) -> None:
    """The shared data folder in miniature: Set5/Set14 (SelfExSR), B100 (benchmark layout), train291, zoo."""
    for set_name, names in (("Set5", ["img_001", "img_002"]), ("Set14", ["img_001", "img_002"])):
        for s in (2, 4):
            for i, n in enumerate(names):
                hr = _image(10 + i, 64, 80)
                _save(root / "benchmarks" / set_name / f"image_SRF_{s}" / f"{n}_SRF_{s}_HR.png", hr)
                _save(root / "benchmarks" / set_name / f"image_SRF_{s}" / f"{n}_SRF_{s}_LR.png", _lr(hr, s))
    for i, n in enumerate(["101", "102"]):
        hr = _image(20 + i, 64, 80)
        _save(root / "benchmarks" / "B100" / "HR" / f"{n}.png", hr)
        for s in (2, 4):
            _save(root / "benchmarks" / "B100" / "LR_bicubic" / f"X{s}" / f"{n}x{s}.png", _lr(hr, s))
    # T91 is also int8's calibration folder: quantize's plain-student rewrites cut 64-px LR patches (256 HR at ×4)
    for folder, n, side in (("T91", 2, 256), ("BSD200", 2, 96)):
        for i in range(n):
            _save(root / "train291" / folder / f"{folder}_{i}.png", _image(30 + i + 5 * len(folder), side, side))
    zoo = root / "weights" / "zoo"
    zoo.mkdir(parents=True)
    for arch, scale, name in (("imdn", 2, "IMDN_x2"), ("rlfn", 4, "rlfn_x4"), ("fsrcnn", 2, "fsrcnn_x2"),
                              ("srvgg", 4, "realesr-animevideov3")):
        torch.manual_seed(0)
        model = build_model(arch, **model_class(arch).tiny(scale))
        save_checkpoint(model, zoo / f"{name}.pth")


@pytest.mark.skipif(bool(MISSING), reason=f"this checkout lacks {MISSING} (issues #13/#14 not merged)")
def test_zoo_benchmark_end_to_end(tmp_path):
    mod = _load()
    data, work = tmp_path / "data", tmp_path / "work"
    _fake_data(data)
    doc, img = tmp_path / "docs" / "results.md", tmp_path / "docs" / "img"
    doc.parent.mkdir(parents=True)
    doc.write_text("# Results\n\nearlier text\n")
    common = ["--work", str(work), "--data", str(data), "--doc", str(doc), "--img-dir", str(img),
              "--small-steps", "2", "--large-steps", "2", "--slim-steps", "2", "--ail-rounds", "2",
              "--batch", "2", "--patch", "48", "--small-shape", "2x4", "--large-shape", "2x8",
              "--size", "96x64", "--calib-patch", "16", "--runs", "1", "--warmup", "0", "--no-bench-memory",
              "--command", "make proof"]
    out = mod.main(common)

    # training: seven runs, one budget per size, every strategy on it; kd/ail read the teacher cache
    names = ["s_l1", "s_kd", "s_ail", "l_l1", "l_kd", "l_ail", "slim_srvgg"]
    for name in names:
        run = json.loads((work / name / "run.json").read_text())
        assert (work / name / "student.pt").exists() and run["job"]["steps"] == 2 and run["wall_s"] >= 0
        assert math.isfinite(run["final_loss"]) and run["images"] == 4
        assert (run["teacher_cache"] is not None) == (run["job"]["strategy"] in ("kd", "ail"))
    small = json.loads((work / "s_l1" / "run.json").read_text())
    assert small["params"] == sum(p.numel() for p in build_model("plain", **mod.plain_hparams(2, 4, 2)).parameters())
    slim = json.loads((work / "slim_srvgg" / "run.json").read_text())
    assert slim["job"]["slim_rho"] == 0.5 and slim["job"]["patch"] == 72  # ×4: 1.5 × the ×2 patch
    full = build_model("srvgg", **model_class("srvgg").tiny(4))
    assert 0 < slim["params"] < sum(p.numel() for p in full.parameters())  # a slimmed SRVGGNetCompact

    # eval: bicubic per scale, the zoo files that exist, every student; real PSNR values
    ev = json.loads((work / "eval.json").read_text())["rows"]
    assert {"bicubic@2", "bicubic@4", "zoo:zoo/IMDN_x2.pth@2", "zoo:zoo/rlfn_x4.pth@4",
            "zoo:zoo/fsrcnn_x2.pth@2"} <= set(ev)
    assert {f"student:{n}" for n in names} <= set(ev)
    assert "zoo:zoo/IMDN_x4.pth@4" not in ev  # no such file here: skipped, not an error
    for row in ev.values():
        assert set(row["sets"]) == {"Set5", "Set14", "B100"}
        assert all(0 < v["psnr_y"] < 100 and -1 < v["ssim_y"] <= 1 for v in row["sets"].values())
    assert ev["bicubic@2"]["sets"]["Set5"]["psnr_y"] > ev["bicubic@4"]["sets"]["Set5"]["psnr_y"] > 30

    # bench: each architecture once (PyTorch + float ONNX), the zoo nets, at the stated size
    be = json.loads((work / "bench.json").read_text())
    assert {"arch:s_l1", "arch:l_l1", "arch:slim_srvgg", "arch_onnx:s_l1"} <= set(be["rows"])
    assert "arch:s_kd" not in be["rows"]  # same architecture as s_l1
    assert be["settings"]["size"] == [96, 64] and be["rows"]["arch:s_l1"]["params"] == small["params"]

    quant = json.loads((work / "quant.json").read_text())
    if mod._quantize_fn() is not None:
        assert not [n for n in names if "error" in quant["rows"][n]]
        assert {f"int8:{n}" for n in names} <= set(ev) and "minmax (default)" in quant["variants"]
    else:
        assert "quantize" in quant["missing"]

    # docs: one section between the markers, tables filled from the saved results, pictures written
    text = doc.read_text()
    assert text.startswith("# Results\n\nearlier text\n") and text.count(mod.BEGIN) == 1
    section = out["table"]["section"]
    assert "| IMDN ×2 | 2 |" in section and "| plain 3×4 scratch (L1) | 2 |" in section
    assert "2 steps × batch 2 × 48² HR px, lr 0.001, 1 thread" in section
    assert "AIL ≥ KD ≥ scratch" in section and "FSRCNN's published ×2" in section
    assert (img / "proof_tradeoff.png").stat().st_size > 1000 and (img / "proof_crops.png").stat().st_size > 1000

    # --table-only: nothing retrained or remeasured, the same section again
    before = {n: (work / n / "run.json").stat().st_mtime_ns for n in names}
    again = mod.main([*common, "--table-only"])
    assert again["table"]["section"] == section and doc.read_text().count(mod.BEGIN) == 1
    assert before == {n: (work / n / "run.json").stat().st_mtime_ns for n in names}


@pytest.mark.parametrize("spec,expected", [("5x16", (5, 16)), ("6X48", (6, 48))])
def test_shape_option(spec, expected):
    assert _load()._shape(spec) == expected
