"""Bundled default photos, image folders (HR-only and paired layouts) and the seeded patch sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sr_compress.data.datasets import (
    DEFAULT_SPLITS,
    SKIMAGE_PHOTOS,
    EvalPair,
    NamedImage,
    PatchSampler,
    default_images,
    eval_pairs,
    load_dataset,
    load_images,
    skimage_data_dir,
)
from sr_compress.data.degrade import NOISE_LEVEL, degrade, mod_crop
from sr_compress.errors import ConfigError, DataError
from sr_compress.imresize import imresize


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    (im.convert(mode) if mode else im).save(path)
    return path


def _coded(h: int, w: int) -> torch.Tensor:
    """An HR image whose channels encode x and y: a patch shows where it came from and how it was turned."""
    yy, xx = torch.meshgrid(torch.arange(h) / 255.0, torch.arange(w) / 255.0, indexing="ij")
    return torch.stack([xx, yy, torch.full_like(xx, 0.5)])


# -- default data --------------------------------------------------------------------------------------------
def test_default_photos_are_bundled_with_scikit_image():
    folder = skimage_data_dir()
    for name, file in SKIMAGE_PHOTOS.items():
        assert (folder / file).is_file(), f"{name}: {file} not in the installed wheel"


def test_default_split_is_fixed_and_disjoint():
    val, train = default_images("val"), default_images("train")
    assert [im.name for im in val] == ["chelsea", "coffee"]
    assert [im.name for im in train] == list(DEFAULT_SPLITS["train"])
    assert not {im.name for im in val} & {im.name for im in train}
    assert [im.name for im in default_images("all")] == [im.name for im in train + val]
    for im in train + val:
        assert im.hr.dtype == torch.float32 and im.hr.shape[0] == 3 and min(im.hr.shape[1:]) >= 300
        assert 0.0 <= im.hr.min().item() and im.hr.max().item() <= 1.0
    assert tuple(val[0].hr.shape) == (3, 300, 451)  # chelsea
    with pytest.raises(ConfigError, match="train, val, all"):
        default_images("test")


def test_default_eval_pairs_are_mod_cropped_and_deterministic():
    pairs = eval_pairs(None, 3)
    assert [p.name for p in pairs] == ["chelsea", "coffee"]
    chelsea = pairs[0]
    assert chelsea.hr.shape == (3, 300, 450) and chelsea.lr.shape == (3, 100, 150)
    made = degrade(mod_crop(default_images("val")[0].hr, 3), 3, "bi")  # float bicubic, not rounded
    assert torch.equal(chelsea.lr, chelsea.lr.mul(255).round().div(255))  # rounded to 8 bits, like a saved LR
    assert 0 < (chelsea.lr - made).abs().max().item() <= 4 / 255
    a, b = eval_pairs("default", 2, "dn"), eval_pairs("default", 2, "dn")
    assert torch.equal(a[1].lr, b[1].lr)
    assert (a[1].lr - eval_pairs(None, 2)[1].lr).std().item() == pytest.approx(NOISE_LEVEL, rel=0.2)


# -- folders -------------------------------------------------------------------------------------------------
def test_load_images_reads_supported_files_sorted(tmp_path):
    _save(tmp_path / "b.png", _rgb(20, 24, 1))
    _save(tmp_path / "a.BMP", _rgb(18, 16, 2))
    _save(tmp_path / "c.tif", _rgb(16, 16, 3))
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(tmp_path)
    assert [im.name for im in images] == ["a", "b", "c"]
    assert images[1].hr.shape == (3, 20, 24) and images[1].hr.dtype == torch.float32
    assert torch.equal(images[1].hr, torch.from_numpy(_rgb(20, 24, 1)).permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize("setup,match", [
    (lambda d: None, "image folder not found"),
    (lambda d: (d.mkdir(), (d / "x.txt").write_text("")), "no images"),
    (lambda d: (d.mkdir(), (d / "broken.png").write_bytes(b"not a png")), "broken.png: not a readable image"),
    (lambda d: _save(d / "alpha.png", np.dstack([_rgb(16, 16), np.full((16, 16), 7, np.uint8)])),
     r"alpha.png: image mode RGBA has transparent pixels"),
])
def test_folder_errors_are_one_clear_line(tmp_path, setup, match):
    folder = tmp_path / "imgs"
    setup(folder)
    with pytest.raises(DataError, match=match) as info:
        load_images(folder)
    assert "\n" not in str(info.value)


def _benchmark(root: Path, scale: int = 2) -> None:
    for name, (h, w) in {"baby": (24, 20), "bird": (17, 22)}.items():
        hr = _rgb(h, w, len(name))
        _save(root / "HR" / f"{name}.png", hr)
        _save(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", hr[: h // scale * scale: scale,
                                                                               : w // scale * scale: scale])


def test_benchmark_layout_gives_the_stored_pairs(tmp_path):
    _benchmark(tmp_path)
    pairs = eval_pairs(tmp_path, 2)
    assert [p.name for p in pairs] == ["baby", "bird"]
    bird = pairs[1]
    assert bird.hr.shape == (3, 16, 22) and bird.lr.shape == (3, 8, 11)  # HR 17 rows mod-cropped to 16
    assert torch.equal(bird.lr, bird.hr[:, ::2, ::2])  # the stored LR, not a recomputed one
    made = eval_pairs(tmp_path, 2, "bd")  # other degradations are made from HR
    assert torch.equal(made[1].lr, degrade(bird.hr, 2, "bd"))
    assert isinstance(load_dataset(tmp_path, 2, split="train")[0], EvalPair)
    assert isinstance(load_dataset(tmp_path, 3)[0], NamedImage)  # no X3 folder: HR only


def test_div2k_layout_and_split_choice(tmp_path):
    for prefix, seed in (("DIV2K_train", 1), ("DIV2K_valid", 2)):
        hr = _rgb(24, 24, seed)
        _save(tmp_path / f"{prefix}_HR" / "0001.png", hr)
        _save(tmp_path / f"{prefix}_LR_bicubic" / "X4" / "0001x4.png", hr[::4, ::4])
    val = eval_pairs(tmp_path, 4)
    train = load_dataset(tmp_path, 4, split="train")
    assert val[0].lr.shape == (3, 6, 6)
    assert torch.equal(val[0].hr, torch.from_numpy(_rgb(24, 24, 2)).permute(2, 0, 1).float() / 255)
    assert torch.equal(train[0].hr, torch.from_numpy(_rgb(24, 24, 1)).permute(2, 0, 1).float() / 255)


def test_paired_layout_errors(tmp_path):
    _benchmark(tmp_path)
    _save(tmp_path / "LR_bicubic" / "X2" / "babyx2.png", _rgb(11, 10))
    msg = r"babyx2.png: LR size 10x11 is not HR size 20x24 / 2 \(expected 10x12\)"
    with pytest.raises(DataError, match=msg):
        eval_pairs(tmp_path, 2)
    (tmp_path / "LR_bicubic" / "X2" / "babyx2.png").unlink()
    with pytest.raises(DataError, match="no LR image for baby"):
        eval_pairs(tmp_path, 2)
    with pytest.raises(DataError, match="data folder not found"):
        eval_pairs(tmp_path / "missing", 2)


def test_lr_named_like_its_hr_file_and_palette_images(tmp_path):
    hr = _rgb(16, 16)
    _save(tmp_path / "HR" / "a.png", hr, "P")  # palette without transparency: expanded to RGB
    _save(tmp_path / "LR_bicubic" / "X2" / "a.png", hr[::2, ::2])
    (pair,) = eval_pairs(tmp_path, 2)
    palette = np.asarray(Image.open(tmp_path / "HR" / "a.png").convert("RGB"))
    assert torch.equal(pair.hr, torch.from_numpy(palette.copy()).permute(2, 0, 1).float() / 255)
    assert pair.lr.shape == (3, 8, 8)


def test_hr_only_folder_pairs_are_mod_cropped(tmp_path):
    _save(tmp_path / "img.png", _rgb(29, 35))
    (pair,) = eval_pairs(tmp_path, 3)
    assert pair.hr.shape == (3, 27, 33) and pair.lr.shape == (3, 9, 11)


# -- patch sampler -------------------------------------------------------------------------------------------
def _images(n: int = 3, size: int = 48) -> list[NamedImage]:
    g = torch.Generator().manual_seed(0)
    return [NamedImage(f"im{i}", torch.rand(3, size + 3 * i, size + 5 * i, generator=g)) for i in range(n)]


def test_batches_have_the_contract_shapes():
    lr, hr = PatchSampler(_images(), scale=3, patch_size=24, batch_size=5).batch(0)
    assert lr.shape == (5, 3, 8, 8) and hr.shape == (5, 3, 24, 24)
    assert lr.dtype == hr.dtype == torch.float32 and lr.is_contiguous()
    assert 0 <= lr.min() and lr.max() <= 1


def test_a_batch_is_a_pure_function_of_seed_and_step():
    a = PatchSampler(_images(), scale=2, patch_size=16, batch_size=4, degradation="dn", seed=7)
    b = PatchSampler(_images(), scale=2, patch_size=16, batch_size=4, degradation="dn", seed=7)
    b.batch(3)  # history does not matter: resume at any step gives the same batch
    for step in (0, 5, 123456):
        assert all(torch.equal(x, y) for x, y in zip(a.batch(step), b.batch(step), strict=True))
    assert not torch.equal(a.batch(5)[1], a.batch(6)[1])
    c = PatchSampler(_images(), scale=2, patch_size=16, batch_size=4, degradation="dn", seed=8)
    assert not torch.equal(a.batch(5)[1], c.batch(5)[1])


@pytest.mark.parametrize("degradation", ["bi", "dn"])
def test_ranks_split_the_same_global_batch(degradation):
    s = PatchSampler(_images(), scale=2, patch_size=16, batch_size=6, degradation=degradation, seed=1)
    full_lr, full_hr = s.batch(9)
    for world in (2, 3):
        parts = [s.batch(9, rank=r, world_size=world) for r in range(world)]
        for r, (lr, hr) in enumerate(parts):
            assert torch.equal(lr, full_lr[r::world]) and torch.equal(hr, full_hr[r::world])
    with pytest.raises(ConfigError, match="cannot be split"):
        s.batch(0, rank=0, world_size=4)


def test_lr_patch_is_aligned_with_hr_patch_under_augmentation():
    s = PatchSampler(_images(2, 60), scale=3, patch_size=36, batch_size=8, seed=2)
    lr, hr = s.batch(4)
    # LR comes from the whole image (precomputed), so it equals bicubic of the HR patch away from patch edges
    # (antialiased ×1/3 kernel: 2 LR px reach); flips and transposes commute with imresize.
    assert (imresize(hr, 1 / 3).clamp(0, 1) - lr)[..., 2:-2, 2:-2].abs().max().item() < 1e-5


def test_all_eight_orientations_occur_and_crops_are_on_the_scale_grid():
    img = NamedImage("coded", _coded(60, 64))
    s = PatchSampler([img], scale=4, patch_size=16, batch_size=64, seed=3)
    _, hr = s.batch(0)
    seen = set()
    for p in hr:  # how the image's (x, y) change along the patch's rows and columns: one of 8 matrices
        step = (p[:2, 0, 1] - p[:2, 0, 0], p[:2, 1, 0] - p[:2, 0, 0])
        seen.add(tuple(round(v.item() * 255) for t in step for v in t))
    assert len(seen) == 8
    plain = PatchSampler([img], scale=4, patch_size=16, batch_size=16, seed=3, augment=False)
    for p in plain.batch(1)[1]:
        x0, y0 = round(p[0, 0, 0].item() * 255), round(p[1, 0, 0].item() * 255)
        assert x0 % 4 == 0 and y0 % 4 == 0
        assert torch.equal(p, img.hr[:, y0: y0 + 16, x0: x0 + 16])


def test_dn_adds_fresh_noise_to_the_same_crops():
    bi = PatchSampler(_images(), scale=2, patch_size=16, batch_size=8, degradation="bi", seed=4)
    dn = PatchSampler(_images(), scale=2, patch_size=16, batch_size=8, degradation="dn", seed=4)
    (lr_bi, hr_bi), (lr_dn, hr_dn) = bi.batch(2), dn.batch(2)
    assert torch.equal(hr_bi, hr_dn)
    assert (lr_dn - lr_bi).std().item() == pytest.approx(NOISE_LEVEL, rel=0.15)
    assert not torch.equal(dn.batch(3)[0] - bi.batch(3)[0], lr_dn - lr_bi)


def test_paired_images_crop_the_stored_lr():
    hr = torch.rand(3, 40, 44, generator=torch.Generator().manual_seed(5))
    lr = F.avg_pool2d(hr.unsqueeze(0), 2)[0]  # commutes with flips and transposes
    s = PatchSampler([EvalPair("p", lr, hr)], scale=2, patch_size=16, batch_size=8, seed=0)
    lr_b, hr_b = s.batch(0)
    assert torch.allclose(F.avg_pool2d(hr_b, 2), lr_b, atol=1e-6)


def test_bd_sampler_uses_blur_downsample():
    img = _images(1, 48)
    s = PatchSampler(img, scale=2, patch_size=48, batch_size=1, degradation="bd", augment=False)
    lr, hr = s.batch(0)  # the patch is the whole image
    assert torch.equal(hr[0], img[0].hr) and torch.allclose(lr[0], degrade(img[0].hr, 2, "bd"))


def test_sampler_errors():
    with pytest.raises(DataError, match=r"image im0 \(48x48\) is smaller than the training patch 64"):
        PatchSampler(_images(1), scale=2, patch_size=64, batch_size=1)
    with pytest.raises(ConfigError, match="multiple of the scale 3"):
        PatchSampler(_images(1), scale=3, patch_size=16, batch_size=1)
    with pytest.raises(ConfigError, match="bi, bd, dn"):
        PatchSampler(_images(1), scale=2, patch_size=16, batch_size=1, degradation="blur")
