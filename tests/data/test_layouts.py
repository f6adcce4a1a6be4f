"""Benchmark layouts detected and reported: HR-only, BasicSR, DIV2K, SelfExSR (folder and set root), with the
mixed-folder refusal and one-line pair errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from PIL import Image

from sr_compress.data.datasets import eval_pairs, load_dataset
from sr_compress.data.layouts import detect_layout, find_benchmark_sets
from sr_compress.errors import DataError
from sr_compress.imresize import imresize

SIZES = {"img_001": (26, 20), "img_002": (17, 22)}  # (H, W) before the mod-crop


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    (im.convert(mode) if mode else im).save(path)
    return path


def _lr(hr: np.ndarray, s: int) -> np.ndarray:
    """The MATLAB uint8 bicubic LR of the mod-cropped HR (what the published LR files are)."""
    h, w = hr.shape[0] // s * s, hr.shape[1] // s * s
    t = torch.from_numpy(hr[:h, :w].copy()).permute(2, 0, 1)
    return imresize(t, 1 / s, uint8=True).permute(1, 2, 0).numpy()


def _selfexsr(root: Path, s: int = 2) -> Path:
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        hr = _rgb(h, w, i)[: h // s * s, : w // s * s]  # SelfExSR HR files are mod-cropped per scale
        _save(root / f"image_SRF_{s}" / f"{name}_SRF_{s}_HR.png", hr)
        _save(root / f"image_SRF_{s}" / f"{name}_SRF_{s}_LR.png", _lr(hr, s))
    return root


def _basicsr(root: Path, s: int = 2, hr_ext: str = ".png") -> Path:
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        hr = _rgb(h, w, i)  # uncropped, like B100's original JPEG files
        _save(root / "HR" / f"{name}{hr_ext}", hr)
        _save(root / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png", _lr(hr, s))
    return root


def _hr_only(root: Path) -> Path:
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        _save(root / f"{name}.png", _rgb(h, w, i))
    return root


def _same(a, b) -> None:
    assert [p.name for p in a] == [p.name for p in b]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.lr, y.lr) and torch.equal(x.hr, y.hr), x.name


def test_the_three_layouts_of_one_set_give_identical_pairs(tmp_path):
    """SelfExSR folder, SelfExSR set root, BasicSR and HR-only (LR made by the uint8 MATLAB path): the same
    names, the same mod-cropped HR, the same 8-bit LR."""
    sx = _selfexsr(tmp_path / "sx")
    bs = _basicsr(tmp_path / "bs")
    ho = _hr_only(tmp_path / "ho")
    kinds = {detect_layout(d, 2).kind for d in (sx, sx / "image_SRF_2", bs, ho)}
    assert kinds == {"selfexsr", "basicsr", "hr-only"}
    ref = eval_pairs(bs, 2)
    assert [p.name for p in ref] == ["img_001", "img_002"] and ref[1].hr.shape == (3, 16, 22)
    for d in (sx, sx / "image_SRF_2", ho):
        _same(eval_pairs(d, 2), ref)


def test_descriptions_name_the_layout(tmp_path):
    sx = _selfexsr(tmp_path / "Set5")
    assert detect_layout(sx, 2).describe().endswith("SelfExSR layout (*_HR + *_LR), 2 HR/LR pairs (×2, stored LR)")
    bs = _basicsr(tmp_path / "bs")
    d3 = detect_layout(bs, 3)  # no LR_bicubic/X3: HR-only inside HR/, and it says so
    assert d3.kind == "hr-only" and not d3.paired
    assert d3.describe().endswith("HR images only, 2 images (×3, LR made from HR); no LR_bicubic/X3 folder")


def test_jpeg_hr_pairs_by_name_and_is_mod_cropped(tmp_path):
    """B100 as shipped: original .jpg HR (not multiples of the scale), .png LR; HR cropped top-left."""
    bs = _basicsr(tmp_path / "b100", s=3, hr_ext=".jpg")
    pairs = eval_pairs(bs, 3)
    jpg = np.asarray(Image.open(bs / "HR" / "img_002.jpg").convert("RGB"))
    assert pairs[1].hr.shape == (3, 15, 21) and pairs[1].lr.shape == (3, 5, 7)
    assert torch.equal(pairs[1].hr, torch.from_numpy(jpg[:15, :21].copy()).permute(2, 0, 1).float() / 255)


def test_a_mixed_folder_is_never_read_as_hr_only(tmp_path):
    mixed = tmp_path / "mixed"
    _save(mixed / "baby.png", _rgb(8, 8, 0))
    _save(mixed / "babyx2.png", _rgb(4, 4, 0))
    with pytest.raises(DataError, match=r"mixes HR and LR files of the benchmark layout \(baby and babyx2.png\)"):
        load_dataset(mixed, 2)
    sx = _selfexsr(tmp_path / "sx") / "image_SRF_2"
    assert detect_layout(sx, 2).kind == "selfexsr"  # read as pairs, never as 4 HR images
    assert len(eval_pairs(sx, 2)) == 2
    _save(sx / "notes.png", _rgb(8, 8, 0))
    with pytest.raises(DataError, match="mixes SelfExSR files"):
        eval_pairs(sx, 2)


@pytest.mark.parametrize("break_it,match", [
    (lambda d: (d / "image_SRF_2" / "img_002_SRF_2_LR.png").unlink(), r"img_002_SRF_2_HR.png: no LR file"),
    (lambda d: (d / "image_SRF_2" / "img_002_SRF_2_HR.png").unlink(), r"an LR file without its HR file"),
    (lambda d: _save(d / "image_SRF_2" / "img_001_SRF_2_LR.png", _rgb(5, 5, 0)),
     r"img_001_SRF_2_LR.png: LR size 5x5 is not HR size 20x26 / 2 \(expected 10x13\)"),
])
def test_mismatched_selfexsr_pairs_are_one_line(tmp_path, break_it, match):
    root = _selfexsr(tmp_path / "s")
    break_it(root)
    with pytest.raises(DataError, match=match) as info:
        eval_pairs(root, 2)
    assert "\n" not in str(info.value)


def test_scale_errors(tmp_path):
    root = _selfexsr(tmp_path / "s")
    with pytest.raises(DataError, match=r"has no image_SRF_3 folder \(it has image_SRF_2\)"):
        detect_layout(root, 3)
    with pytest.raises(DataError, match="holds ×2 pairs, not ×4"):
        detect_layout(root / "image_SRF_2", 4)
    bs = _basicsr(tmp_path / "b")
    (bs / "LR_bicubic" / "X2" / "img_001x2.png").unlink()
    with pytest.raises(DataError, match=r"no LR image for img_001.png .*expected img_001x2.png"):
        detect_layout(bs, 2)


def test_find_benchmark_sets(tmp_path):
    for name in ("Set14", "BSD100", "set5", "other"):
        (tmp_path / "benchmark" / name).mkdir(parents=True)
    (tmp_path / "Urban100").mkdir()
    found = find_benchmark_sets(tmp_path)
    assert list(found) == ["Set5", "Set14", "B100", "Urban100"]
    assert found["B100"] == tmp_path / "benchmark" / "BSD100"
    with pytest.raises(DataError, match="no benchmark sets"):
        find_benchmark_sets(tmp_path / "benchmark" / "other")


@pytest.mark.skipif(not (SHARED_DATA / "benchmarks").is_dir(), reason="needs ../shared/data/benchmarks")
def test_the_shared_benchmark_sets_are_detected():
    bench = SHARED_DATA / "benchmarks"
    assert list(find_benchmark_sets(bench)) == ["Set5", "Set14", "B100"]
    set14 = detect_layout(bench / "Set14", 3)
    assert set14.kind == "selfexsr" and len(set14.files) == 14 and set14.files[2].name == "img_003"
    b100 = detect_layout(bench / "B100", 4, check_sizes=False)
    assert b100.kind == "basicsr" and len(b100.files) == 100 and b100.files[0].hr.suffix == ".jpg"
