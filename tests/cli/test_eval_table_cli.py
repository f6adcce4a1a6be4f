"""``srcompress eval`` with several models/sets (the paper table), --bench, --scales, --y, --report; and
``train --cache-dir`` (a data folder goes through the image cache)."""

from __future__ import annotations

import json
import shutil

import numpy as np
from helpers.cli import one_error_line
from PIL import Image


def _set(folder, n=2, seed=0):
    folder.mkdir(parents=True)
    g = np.random.default_rng(seed)
    for i in range(n):
        small = g.integers(0, 256, (8, 9, 3), dtype=np.uint8)
        Image.fromarray(small).resize((36 + 4 * i, 32), Image.BICUBIC).save(folder / f"im{i}.png")
    return folder


def test_eval_table_from_one_call(tmp_path, invoke, tiny_ckpt):
    bench = tmp_path / "bench"
    _set(bench / "Set5")
    _set(bench / "benchmark" / "BSD100", 3, seed=1)
    other = tmp_path / "b.pt"
    shutil.copy(tiny_ckpt, other)
    code, out, err = invoke("eval", tiny_ckpt, other, "--bench", bench, "--report", tmp_path / "rep", "--y",
                            "matlab")
    assert code == 0, err
    assert "Set5" in out and "B100" in out and "bicubic" in out and "matlab" in out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["y"] == "matlab" and rep["methods"] == ["bicubic", tiny_ckpt.name, "b.pt"]
    assert [s["name"] for s in rep["sets"]] == ["Set5", "B100"]
    cell = rep["rows"][1]["sets"]["B100"]
    assert len(cell["images"]) == 3 and {"psnr_y", "ssim_y", "psnr_rgb"} <= set(cell)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| ×2 | bicubic |" in md and "Y convention **matlab**" in md
    code, _, err = invoke("eval", tiny_ckpt, "--bench", bench, "--report", tmp_path / "rep")
    assert code == 2 and "report.md exists" in one_error_line(err)
    code, out, err = invoke("eval", tiny_ckpt, "--data", bench / "Set5", "--data", bench / "benchmark" / "BSD100",
                            "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["y"] == "float" and [s["name"] for s in doc["sets"]] == ["Set5", "BSD100"]


def test_eval_single_model_names_its_convention(tmp_path, invoke, tiny_ckpt):
    data = _set(tmp_path / "d")
    code, out, err = invoke("eval", tiny_ckpt, "--data", data, "--json")
    assert code == 0, err
    assert all(r["y"] == "float" for r in json.loads(out)["reports"])
    code, out, err = invoke("eval", tiny_ckpt, "--data", data, "--y", "matlab", "--json")
    assert all(r["y"] == "matlab" for r in json.loads(out)["reports"])
    code, _, err = invoke("eval", tiny_ckpt, "--data", data, "--scales", "2,x")
    assert code == 2 and "--scales takes comma-separated integers" in one_error_line(err)
    code, _, err = invoke("eval", tiny_ckpt, "--bench", tmp_path / "d", "--crops", tmp_path / "c.png")
    assert code == 2 and "--crops and --all-depths take one model" in one_error_line(err)


def test_train_reads_a_folder_through_the_cache(tmp_path, invoke):
    data = _set(tmp_path / "data", 2)
    cache = tmp_path / "cache"
    code, out, err = invoke("train", "--arch", "edsr", "--scale", "2", "--hparam", "n_feats=8", "--hparam",
                            "n_blocks=1", "--data", data, "--steps", "2", "--batch-size", "2", "--patch-size", "16",
                            "--cache-dir", cache, "-o", tmp_path / "m.pt")
    assert code == 0, err
    assert len(list(cache.glob("*.npy"))) == 2 and (tmp_path / "m.pt").is_file()
