"""The paper table: models × sets × scales in one call, both Y conventions, Markdown/JSON, bounded memory."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_compress.data.datasets import eval_pairs
from sr_compress.deploy.tiling import tiled_network
from sr_compress.errors import ConfigError, OutputExistsError
from sr_compress.evaluate import evaluate_bicubic, evaluate_model, evaluate_table, write_table
from sr_compress.metrics import psnr
from sr_compress.models import build_model, tiny_hparams


def _set(root: Path, n: int = 2, grey: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(len(root.name))
    for i in range(n):
        small = g.integers(0, 256, (9, 10, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((40 + 4 * i, 36 + 3 * i), Image.BICUBIC)
        (im.convert("L") if grey and i == 0 else im).save(root / f"im{i}.png")
    return root


def _tiny(arch: str, scale: int = 2):
    torch.manual_seed(0)
    return build_model(arch, **tiny_hparams(arch, scale)).eval()


def test_one_call_gives_the_whole_table(tmp_path):
    sets = {"A": _set(tmp_path / "A"), "B": _set(tmp_path / "Bee", 3, grey=True)}
    edsr, vdsr = _tiny("edsr"), _tiny("vdsr")
    events = []
    tab = evaluate_table({"edsr": edsr, "vdsr": vdsr}, sets, [2, 3], progress=events.append)
    assert tab.methods == ["bicubic", "edsr", "vdsr"] and tab.y == "float"
    assert [(e["set"], e["scale"], e["done"], e["total"]) for e in events][:3] == [("A", 2, 1, 2), ("A", 2, 2, 2),
                                                                                   ("B", 2, 1, 3)]
    # the same numbers as one model on one folder
    pairs = eval_pairs(sets["B"], 2)
    assert tab.mean("edsr", "B", 2).psnr_y == pytest.approx(evaluate_model(edsr, pairs).mean.psnr_y, abs=1e-9)
    assert tab.mean("bicubic", "B", 2).psnr_y == pytest.approx(evaluate_bicubic(pairs, 2).mean.psnr_y, abs=1e-9)
    assert tab.mean("edsr", "A", 3) is None and tab.mean("vdsr", "A", 3) is not None  # VDSR runs at any scale
    md = tab.to_markdown()
    assert "| ×3 | edsr | – | – |" in md and "Y convention **float**" in md
    assert "B ×2: " in md and "im0: greyscale (L) read as 3 equal channels" in md
    d = tab.to_dict()
    assert d["y"] == "float" and "kept in float" in d["convention"] and d["scales"] == [2, 3]
    row = next(r for r in d["rows"] if r["method"] == "vdsr" and r["scale"] == 3)
    assert set(row["sets"]["A"]) == {"psnr_y", "ssim_y", "psnr_rgb", "images"} and len(row["sets"]["B"]["images"]) == 3
    assert d["sets"][1]["layout"].endswith("HR images only, 3 images (×2, LR made from HR)")


def test_y_conventions_are_named_and_differ(tmp_path):
    data = _set(tmp_path / "A")
    fl = evaluate_table({}, [data], 2, y="float")
    mat = evaluate_table({}, [data], 2, y="matlab")
    a, b = fl.mean("bicubic", "A", 2), mat.mean("bicubic", "A", 2)
    assert a.psnr_rgb == b.psnr_rgb and a.psnr_y != b.psnr_y
    pairs = eval_pairs(data, 2)
    up = [torch.nn.functional.interpolate(p.lr[None], scale_factor=2)[0] for p in pairs]  # any prediction
    rounded = [psnr(u, p.hr, crop=2) for u, p in zip(up, pairs, strict=True)]  # the metric's MATLAB default
    fl_y = [psnr(u, p.hr, crop=2, round_y=False) for u, p in zip(up, pairs, strict=True)]
    assert rounded != fl_y
    assert "rounded to 8 bits" in mat.to_markdown() and mat.to_dict()["y"] == "matlab"
    with pytest.raises(ConfigError, match="unknown Y convention 'rounded'; choose one of: float, matlab"):
        evaluate_table({}, [data], 2, y="rounded")


def test_tiled_evaluation_gives_the_same_numbers(tmp_path):
    data = _set(tmp_path / "A")
    edsr = _tiny("edsr")
    whole = evaluate_table({"m": edsr}, [data], 2)
    tiny_budget = functools.partial(tiled_network, tile=8)  # 8-px tiles: many tiles per image
    tiled = evaluate_table({"m": edsr}, [data], 2, wrap=tiny_budget)
    assert tiled.mean("m", "A", 2).psnr_y == pytest.approx(whole.mean("m", "A", 2).psnr_y, abs=1e-3)


def test_reports_are_written_once(tmp_path):
    tab = evaluate_table({}, {"A": _set(tmp_path / "A")}, 2)
    md, js = write_table(tab, tmp_path / "rep")
    assert md.read_text().startswith("Y-PSNR (dB) / SSIM; Y convention **float**")
    assert json.loads(js.read_text())["rows"][0]["method"] == "bicubic"
    with pytest.raises(OutputExistsError, match="use --force"):
        write_table(tab, tmp_path / "rep")
    write_table(tab, tmp_path / "rep", force=True)


def test_scale_errors(tmp_path):
    data = _set(tmp_path / "A")
    with pytest.raises(ConfigError, match=r"different scales \(\[2, 3\]\); give the scales"):
        evaluate_table({"a": _tiny("edsr", 2), "b": _tiny("edsr", 3)}, [data])
    with pytest.raises(ConfigError, match="no datasets"):
        evaluate_table({"a": _tiny("edsr")}, [])
