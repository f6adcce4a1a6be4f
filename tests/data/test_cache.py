"""The uint8 image cache (build, reuse, corruption, read-only data) and the cached patch loader (same draws as
PatchSampler, exact per-patch LR, pure function of (seed, step) with prefetching, exact resume, DDP rows)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_compress.data.cache import CACHE_ENV, ImageCache, cached_sampler, default_cache_dir
from sr_compress.data.datasets import EvalPair, PatchSampler, load_dataset
from sr_compress.data.degrade import mod_crop
from sr_compress.data.images import read_u8
from sr_compress.data.layouts import detect_layout
from sr_compress.errors import DataError
from sr_compress.imresize import imresize
from sr_compress.models import build_model, tiny_hparams
from sr_compress.train.trainer import TrainConfig, Trainer


def _photos(folder: Path, n: int = 3, seed: int = 0) -> Path:
    """Smooth-ish random images of different sizes (not multiples of the scales)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    for i in range(n):
        h, w = 41 + 7 * i, 50 + 5 * i
        base = g.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        im.save(folder / f"im{i}.png")
    return folder


def _files(folder: Path) -> list[tuple[str, Path]]:
    return [(p.stem, p) for p in sorted(folder.glob("*.png"))]


# -- the cache ---------------------------------------------------------------------------------------------------
def test_cache_builds_once_and_reuses_by_content(tmp_path):
    data, cache = _photos(tmp_path / "data"), ImageCache(tmp_path / "cache")
    events = []
    entries = cache.entries(_files(data), progress=events.append, workers=2)
    assert [e["done"] for e in events] == [1, 2, 3] and events[-1]["built"] == 3 and events[-1]["total"] == 3
    for (name, path), e in zip(_files(data), entries, strict=True):
        assert e.name == name and np.array_equal(e.array(), read_u8(path)[0]) and e.shape[2] == 3
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    assert not list((tmp_path / "cache").glob(".*.tmp"))  # no temporary files left behind
    events.clear()
    again = cache.entries(_files(data), progress=events.append)
    assert events[-1]["built"] == 0 and [e.file for e in again] == [e.file for e in entries]
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "renamed.png").write_bytes((data / "im1.png").read_bytes())
    (moved,) = cache.entries(_files(copy), progress=events.append)
    assert events[-1]["built"] == 0 and moved.file == entries[1].file  # keyed by content, not by path
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(data / "im1.png")  # edited: a new entry
    fresh = cache.entries(_files(data), progress=events.append)
    assert events[-1]["built"] == 1 and fresh[1].file != entries[1].file and fresh[1].shape == (20, 20, 3)


def test_corrupt_or_partial_entries_are_rebuilt(tmp_path):
    data, cache = _photos(tmp_path / "data", 2), ImageCache(tmp_path / "cache")
    first = cache.entries(_files(data))
    with open(first[0].file, "r+b") as f:  # a partial write (as if killed mid-copy)
        f.truncate(first[0].offset + 10)
    first[1].file.write_bytes(b"garbage")
    (tmp_path / "cache" / ".abc.npy.123.tmp").write_bytes(b"half")  # a killed builder's temp file: ignored
    (tmp_path / "cache" / "index").joinpath("junk.json").write_text("{not json")
    events = []
    again = cache.entries(_files(data), progress=events.append)
    assert events[-1]["built"] == 2
    for (_, path), e in zip(_files(data), again, strict=True):
        assert np.array_equal(e.array(), read_u8(path)[0])


def test_read_only_data_and_the_default_cache_folder(tmp_path, monkeypatch):
    data = _photos(tmp_path / "data", 1)
    os.chmod(data, stat.S_IRUSR | stat.S_IXUSR)  # like ../shared/data: nothing may be written there
    try:
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "envcache"))
        assert default_cache_dir() == tmp_path / "envcache"
        (e,) = ImageCache().entries(_files(data))
        assert e.file.parent == tmp_path / "envcache" and sorted(p.name for p in data.iterdir()) == ["im0.png"]
        monkeypatch.delenv(CACHE_ENV)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_dir() == tmp_path / "xdg" / "srcompress" / "images"
    finally:
        os.chmod(data, stat.S_IRWXU)
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(DataError, match="cannot create the image cache folder .*--cache-dir"):
        ImageCache(blocked / "cache")


# -- the loader --------------------------------------------------------------------------------------------------
def _sampler(tmp_path: Path, **kw):
    data = tmp_path / "data"
    if not data.exists():
        _photos(data)
    layout = detect_layout(data, kw.pop("scale", 2), "train")
    args = {"degradation": "bi", "seed": 3, "cache_dir": tmp_path / "cache", **kw}
    return cached_sampler(layout, layout.scale, args.pop("patch", 16), args.pop("batch", 6), **args)


def _u8_pairs(folder: Path, s: int) -> list[EvalPair]:
    """Whole-image pairs with the LR of MATLAB's uint8 imresize (the reference the per-patch LR must equal)."""
    out = []
    for im in load_dataset(folder, s):
        hr = mod_crop(im.hr, s)
        lr = imresize(hr.mul(255).round().to(torch.uint8), 1 / s, uint8=True).float() / 255
        out.append(EvalPair(im.name, lr, hr))
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cached_batches_equal_whole_image_lr_crops(tmp_path, scale):
    """Same draws as PatchSampler; per-patch LR (window + margin) equals the whole image's uint8 bicubic LR,
    borders included (patches of 24 px on ~45 px images touch the borders often)."""
    cached = _sampler(tmp_path, scale=scale, patch=8 * scale, batch=8, prefetch=0)
    ref = PatchSampler(_u8_pairs(tmp_path / "data", scale), scale, 8 * scale, 8, seed=3)
    for step in range(4):
        (a_lr, a_hr), (b_lr, b_hr) = cached.batch(step), ref.batch(step)
        assert torch.equal(a_hr, b_hr) and torch.equal(a_lr, b_lr), step


def test_bd_and_dn_per_patch(tmp_path):
    data = _photos(tmp_path / "data")
    images = load_dataset(data, 2)
    bd = _sampler(tmp_path, degradation="bd", prefetch=0)
    ref = PatchSampler(images, 2, 16, 6, degradation="bd", seed=3)
    (a_lr, a_hr), (b_lr, b_hr) = bd.batch(1), ref.batch(1)
    assert torch.equal(a_hr, b_hr) and torch.allclose(a_lr, b_lr, atol=1e-6)
    dn, bi = _sampler(tmp_path, degradation="dn", prefetch=0), _sampler(tmp_path, prefetch=0)
    noise = dn.batch(2)[0] - bi.batch(2)[0]
    assert 0.05 < noise.std().item() < 0.15 and torch.equal(dn.batch(2)[0], dn.batch(2)[0])


def test_batches_are_a_pure_function_of_seed_and_step_with_prefetch(tmp_path):
    plain = _sampler(tmp_path, prefetch=0)
    fetching = _sampler(tmp_path, prefetch=3, workers=2)
    try:
        for step in (0, 1, 2, 7, 3, 4, 100):  # jumps (resume) and steps already prefetched
            a, b = plain.batch(step), fetching.batch(step)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), step
        full = plain.batch(9)
        for world in (2, 3):
            for r in range(world):
                lr, hr = fetching.batch(9, rank=r, world_size=world)
                assert torch.equal(lr, full[0][r::world]) and torch.equal(hr, full[1][r::world])
    finally:
        fetching.close()


def test_stored_lr_files_are_cached_and_cropped(tmp_path):
    root = tmp_path / "bench"
    _photos(root / "HR")
    (root / "LR_bicubic" / "X2").mkdir(parents=True)
    for p in sorted((root / "HR").glob("*.png")):
        a = np.asarray(Image.open(p))
        Image.fromarray(a[: a.shape[0] // 2 * 2: 2, : a.shape[1] // 2 * 2: 2]).save(
            root / "LR_bicubic" / "X2" / f"{p.stem}x2.png")
    layout = detect_layout(root, 2, "train")
    s = cached_sampler(layout, 2, 16, 6, seed=1, cache_dir=tmp_path / "cache", prefetch=0)
    ref = PatchSampler(load_dataset(root, 2), 2, 16, 6, seed=1)
    for step in range(3):
        a, b = s.batch(step), ref.batch(step)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 6  # 3 HR + 3 LR


def test_sampler_errors(tmp_path):
    with pytest.raises(DataError, match=r"image im0 \(50x41\) is smaller than the training patch 48 px"):
        _sampler(tmp_path, patch=48)


def test_training_resumes_exactly_with_the_cached_loader(tmp_path):
    """A crash and resume with a fresh sampler (new threads, cold prefetch) reaches the uninterrupted weights."""

    class Crash(Exception):
        pass

    def crash(ev):
        if ev["step"] == 3:
            raise Crash

    def model():
        torch.manual_seed(0)
        return build_model("edsr", **tiny_hparams("edsr", 2))

    cfg = TrainConfig(steps=4, batch_size=2, patch_size=16, lr=1e-3, log_every=1, ckpt_every=2, device="cpu")
    full = Trainer(model(), "l1", _sampler(tmp_path, batch=2), cfg, out_dir=tmp_path / "a").fit()
    with pytest.raises(Crash):
        Trainer(model(), "l1", _sampler(tmp_path, batch=2), cfg, out_dir=tmp_path / "b", progress=crash).fit()
    resumed = Trainer(model(), "l1", _sampler(tmp_path, batch=2), cfg, out_dir=tmp_path / "b").fit(
        resume=tmp_path / "b" / "last.pt")
    assert resumed.resumed_from == 2
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_training_source_picks_memory_or_cache(tmp_path):
    from sr_compress.data.cache import CachedPatchSampler
    from sr_compress.data.datasets import training_source

    photos = training_source(None, 2, 16, 2)
    assert type(photos) is PatchSampler
    data = _photos(tmp_path / "data")
    events = []
    src = training_source(data, 2, 16, 2, cache_dir=tmp_path / "c", progress=events.append, prefetch=0)
    assert isinstance(src, CachedPatchSampler) and src.images == 3 and events[-1]["built"] == 3
    lr, hr = src.batch(0)
    assert lr.shape == (2, 3, 8, 8) and hr.shape == (2, 3, 16, 16)
