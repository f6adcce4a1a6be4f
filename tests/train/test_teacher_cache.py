"""Teacher outputs once: the cache (build, reuse, invalidation, storage), its alignment with the sampler's
patches, the trainer reading it (equivalence with per-batch teachers, resume), and ONNX teachers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.training import Crash, crash_at

from sr_compress.checkpoint import load_checkpoint, save_checkpoint
from sr_compress.data.datasets import EvalPair, NamedImage, PatchSampler
from sr_compress.deploy.onnx import export_onnx
from sr_compress.deploy.tiling import tiled_network
from sr_compress.errors import ConfigError
from sr_compress.models import SRModel, build_model, tiny_hparams
from sr_compress.train.strategies import build_strategy
from sr_compress.train.teacher_cache import TeacherCache
from sr_compress.train.trainer import TrainConfig, Trainer, check_teacher


def tiny(arch="edsr", seed=0, **over):
    torch.manual_seed(seed)
    return build_model(arch, **{**tiny_hparams(arch, 2), **over}).eval()


def images(n=3, size=(24, 20), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [NamedImage(f"im{i}", torch.rand(3, size[0] + 4 * i, size[1] + 2 * i, generator=g)) for i in range(n)]


def lrs(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 10 + i, 12 + 2 * i, generator=g) for i in range(n)]


class Nearest(SRModel):
    """Nearest-neighbour ×2: commutes with crops, flips and transposes (no border effects), so stored and
    per-patch outputs must agree exactly."""

    arch = "_nearest"

    def __init__(self):
        super().__init__(scale=2)

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest")


def config(**kw):
    base = {"steps": 4, "batch_size": 2, "patch_size": 8, "lr": 1e-3, "log_every": 1, "ckpt_every": 0,
            "device": "cpu"}
    return TrainConfig(**{**base, **kw})


# -- the cache itself ------------------------------------------------------------------------------------------
def test_build_reuse_and_invalidation(tmp_path):
    t, ims = tiny(), lrs()
    first = TeacherCache(t, tmp_path).build(ims)
    assert (first.images, first.built, first.reused) == (3, 3, 0)
    assert len(list(tmp_path.glob("*.npy"))) == 3
    again = TeacherCache(t, tmp_path).build(ims)
    assert (again.built, again.reused) == (0, 3) and again.bytes == first.bytes
    ims[1] = ims[1].clone()
    ims[1][0, 0, 0] += 0.25  # one changed image: one new entry
    assert TeacherCache(t, tmp_path).build(ims).built == 1
    other = tiny(seed=1)  # other weights: all new
    assert TeacherCache(other, tmp_path).build(ims).built == 3
    assert TeacherCache(t, tmp_path, dtype="uint8").build(ims).built == 3  # the dtype is in the key
    victim = TeacherCache(t, tmp_path).path(ims[0])
    victim.write_bytes(b"torn")  # an unreadable entry is rebuilt
    assert TeacherCache(t, tmp_path).build(ims).built == 1
    assert len(list(tmp_path.glob("*.npy"))) == 3 + 1 + 3 + 3


@pytest.mark.parametrize("dtype, tol", [("uint8", 0.5 / 255 + 1e-6), ("float16", 2e-3)])
def test_stored_values_and_crops(tmp_path, dtype, tol):
    t, ims = tiny(), lrs()
    cache = TeacherCache(t, tmp_path, dtype=dtype)
    cache.build(ims)
    with torch.no_grad():
        full = t(ims[2].unsqueeze(0))[0]
    if dtype == "uint8":
        full = full.clamp(0, 1)  # stored clipped to [0, 1]
    crop = cache.crop(2, 3, 4, 5, 6)
    assert crop.shape == (3, 10, 12) and crop.dtype == torch.float32
    assert (crop - full[:, 6:16, 8:20]).abs().max() <= tol
    entry = np.load(cache.path(ims[2]), mmap_mode="r")
    assert entry.dtype == np.dtype(dtype) and isinstance(entry, np.memmap)


def test_in_memory_cache_and_tiled_build():
    t = tiny()
    big = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(3))[0]
    plain = TeacherCache(t, None, dtype="float16")
    tiled = TeacherCache(t, None, dtype="float16", tile=8, tiler=tiled_network)
    a, b = plain.run_teacher(big), tiled.run_teacher(big)
    assert a.shape == (3, 80, 72) and (a - b).abs().max() < 1e-5  # the exact halo: tiles change nothing
    assert plain.build([big]).root is None and torch.equal(plain.crop(0, 0, 0, 40, 36), a.half().float())


def test_untileable_teacher_runs_whole_images():
    """A teacher with an image-wide statistic cannot be tiled exactly: the cache runs it untiled."""

    class GlobalMean(SRModel):
        arch = "_global"

        def __init__(self):
            super().__init__(scale=2)

        def forward(self, x):
            return F.interpolate(x, scale_factor=2, mode="nearest") - x.mean() + 0.5

    def tiler(model, tile):
        raise ConfigError("cannot derive the receptive field through op ReduceMean")

    big = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))
    cache = TeacherCache(GlobalMean(), None, tile=8, tiler=tiler)
    with torch.no_grad():
        assert torch.equal(cache.run_teacher(big), GlobalMean()(big.unsqueeze(0))[0])


def test_crop_before_build_is_an_error():
    with pytest.raises(ConfigError, match="not built"):
        TeacherCache(tiny(), None).crop(0, 0, 0, 2, 2)


# -- alignment with the sampler ------------------------------------------------------------------------------
def _assert_crops_line_up(sampler, cache):
    """With a teacher that commutes with crops and flips, the stored crops equal the teacher on each patch."""
    for step in (0, 7):
        lr, _ = sampler.batch(step)
        want = Nearest()(lr)
        got = sampler.teacher_batch(step, cache)
        assert got.shape == want.shape and (got - want).abs().max() < 1e-3
        assert torch.equal(sampler.teacher_batch(step, cache, 1, 2), got[1::2])  # DDP rows


@pytest.mark.parametrize("augment", [False, True])
def test_sampler_crops_line_up_with_patches(augment):
    """With a teacher that commutes with crops and flips, the stored crops equal the teacher on each patch."""
    sampler = PatchSampler(images(), scale=2, patch_size=8, batch_size=6, seed=4, augment=augment)
    cache = TeacherCache(Nearest(), None, dtype="float16")
    cache.build(sampler.lr_images())
    _assert_crops_line_up(sampler, cache)


def test_paired_layout_and_dn():
    lr = torch.rand(3, 10, 10)
    sampler = PatchSampler([EvalPair("p", lr, torch.rand(3, 20, 20))], 2, 8, 2)
    assert torch.equal(sampler.lr_images()[0], lr) and sampler.teacher_cache_problem() is None
    dn = PatchSampler(images(), 2, 8, 2, degradation="dn")
    assert "noise" in dn.teacher_cache_problem()


# -- the trainer ---------------------------------------------------------------------------------------------
def test_cached_equals_per_batch_without_border_effects(tmp_path):
    """Whole-image patches, no flips: the cached run differs from the per-batch run only by the uint8 rounding
    of the stored output (≤ 0.5/255 per pixel, and its clipping to [0, 1])."""
    ims = images(n=2, size=(16, 16))
    ims = [NamedImage(im.name, im.hr[:, :16, :16]) for im in ims]
    runs = {}
    for mode in ("off", "on"):
        sampler = PatchSampler(ims, 2, 16, 2, seed=1, augment=False)
        res = Trainer(tiny("plain"), "kd", sampler, config(teacher_cache=mode), teacher=tiny()).fit()
        runs[mode] = res
    assert runs["off"].teacher_cache is None and runs["on"].teacher_cache.built == 2
    for a, b in zip(runs["off"].history, runs["on"].history, strict=True):
        assert abs(a["distill"] - b["distill"]) < 2e-3 * max(a["distill"], 1e-3) + 1e-5
        assert abs(a["loss"] - b["loss"]) < 1e-3 * a["loss"]


def test_auto_on_off_and_refusals(tmp_path):
    ims = images()
    sampler = PatchSampler(ims, 2, 8, 2)
    kd = Trainer(tiny("plain"), "kd", sampler, config(steps=1), teacher=tiny(), out_dir=tmp_path / "kd").fit()
    assert kd.teacher_cache.built == 3 and len(list((tmp_path / "kd" / "teacher_cache").glob("*.npy"))) == 3
    off = Trainer(tiny("plain"), "kd", sampler, config(steps=1, teacher_cache="off"), teacher=tiny()).fit()
    assert off.teacher_cache is None
    ail = Trainer(tiny("plain"), "ail", sampler, config(steps=1), teacher=tiny()).fit()
    assert ail.teacher_cache is not None
    dn = PatchSampler(ims, 2, 8, 2, degradation="dn")
    assert Trainer(tiny("plain"), "kd", dn, config(steps=1), teacher=tiny()).fit().teacher_cache is None
    with pytest.raises(ConfigError, match="teacher_cache on: DN adds fresh noise"):
        Trainer(tiny("plain"), "kd", dn, config(steps=1, teacher_cache="on"), teacher=tiny()).fit()
    with pytest.raises(ConfigError, match="teacher_cache must be one of auto, on, off"):
        config(teacher_cache="yes")


def test_resume_with_the_cache_is_exact(tmp_path):
    sampler = PatchSampler(images(), 2, 8, 2, seed=3)
    cfg = config(steps=6, ckpt_every=3)
    full = Trainer(tiny("plain"), "kd", sampler, cfg, teacher=tiny(), out_dir=tmp_path / "a").fit()

    with pytest.raises(Crash):
        Trainer(tiny("plain"), "kd", sampler, cfg, teacher=tiny(), out_dir=tmp_path / "b", progress=crash_at(4)).fit()
    resumed = Trainer(tiny("plain", seed=9), "kd", sampler, cfg, teacher=tiny(),
                      out_dir=tmp_path / "b").fit(resume=tmp_path / "b" / "last.pt")
    assert resumed.resumed_from == 3 and resumed.teacher_cache.reused == 3 and resumed.teacher_cache.built == 0
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    with pytest.raises(ConfigError, match=r"different settings \(teacher_cache: 'auto' → 'off'\)"):
        Trainer(tiny("plain"), "kd", sampler, config(steps=6, ckpt_every=3, teacher_cache="off"), teacher=tiny(),
                out_dir=tmp_path / "b").fit(resume=tmp_path / "b" / "last.pt")


def quick_onnx(model, path):
    """Our export without the simplifier and the validation runs (they are tested in test_export.py)."""
    return export_onnx(model, path, simplify=False, validate=False).path


def _png_folder(folder, n=2):
    from PIL import Image

    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(g.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


# -- ONNX teachers ---------------------------------------------------------------------------------------------
def test_onnx_teacher_checks(tmp_path):
    student = tiny("plain")
    onnx_t = load_checkpoint(quick_onnx(tiny(), tmp_path / "t.onnx")).model
    check_teacher(build_strategy("kd"), student, onnx_t)
    with pytest.raises(ConfigError, match="needs the teacher's inner features; a onnx teacher gives only"):
        check_teacher(build_strategy("memsr"), student, onnx_t)
    y_t = load_checkpoint(quick_onnx(tiny("fsrcnn", channels=1), tmp_path / "y.onnx")).model
    with pytest.raises(ConfigError, match="must share a colour space"):
        check_teacher(build_strategy("kd"), student, y_t)
    with pytest.raises(ConfigError, match="read-only and cannot be trained"):
        Trainer(onnx_t, "l1", PatchSampler(images(), 2, 8, 2), config())
    t3 = load_checkpoint(quick_onnx(build_model("edsr", **tiny_hparams("edsr", 3)), tmp_path / "t3.onnx"))
    with pytest.raises(ConfigError, match="teacher is ×3 but the student is ×2"):
        check_teacher(build_strategy("ail"), student, t3.model)


@pytest.mark.parametrize("strategy", ["kd", "ail"])
def test_finetune_from_an_onnx_teacher(tmp_path, strategy):
    """finetune S.pt --teacher T.onnx: a few steps, finite loss, the output written; cached and per batch."""
    from sr_compress.ops.train import finetune

    data = _png_folder(tmp_path / "data")
    student = save_checkpoint(tiny("plain"), tmp_path / "s.pt")
    teacher = quick_onnx(tiny(), tmp_path / "t.onnx")
    for mode in ("auto", "off"):  # a folder goes through the image-cache loader, which cuts stored outputs too
        out = tmp_path / f"s_{mode}.pt"
        res = finetune(student, out=out, config=config(steps=2, teacher_cache=mode), strategy=strategy,
                       teacher=teacher, data=data)
        assert out.is_file() and np.isfinite(res.final_loss)
        if mode == "auto":
            assert res.teacher_cache.built == 2 and res.teacher_cache.images == 2
        else:
            assert res.teacher_cache is None
        assert load_checkpoint(out).model.provenance[-1]["params"]["teacher"]["path"] == str(teacher)


# -- folder data: the image-cache loader (CachedPatchSampler) ---------------------------------------------------
def _folder_source(folder, tmp_path, patch=8, batch=6, **kw):
    from sr_compress.data.datasets import training_source

    return training_source(folder, 2, patch, batch, cache_dir=tmp_path / "images", prefetch=0, **kw)


def _tiny_pngs(folder, n=2, size=(16, 16)):
    from PIL import Image

    folder.mkdir()
    g = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(g.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("augment", [False, True])
def test_folder_data_crops_line_up_with_patches(tmp_path, augment):
    """The image-cache loader's whole-image LR (made on demand from the uint8 HR) and its boxes and flips: with a
    teacher that commutes with crops and flips, the stored crops equal the teacher on each patch."""
    sampler = _folder_source(_png_folder(tmp_path / "d", n=3), tmp_path, seed=4, augment=augment)
    assert sampler.teacher_cache_problem() is None
    cache = TeacherCache(Nearest(), tmp_path / "tc", dtype="float16")
    assert cache.build(sampler.lr_images()).built == 3
    _assert_crops_line_up(sampler, cache)
    dn = _folder_source(tmp_path / "d", tmp_path, degradation="dn")
    assert "noise" in dn.teacher_cache_problem()


def test_folder_data_warm_start_makes_no_lr(tmp_path, monkeypatch):
    """Entries of folder data are found by the loader's content key (image file + LR recipe): a second build
    reuses them without making any whole LR; another degradation is another key."""
    data = _png_folder(tmp_path / "d", n=3)
    sampler = _folder_source(data, tmp_path, seed=4)
    first = TeacherCache(Nearest(), tmp_path / "tc")
    assert first.build(sampler.lr_images()).built == 3
    again = _folder_source(data, tmp_path, seed=4)

    def no_lr(index):
        raise AssertionError(f"made the LR of image {index}")

    monkeypatch.setattr(again, "whole_lr", no_lr)
    warm = TeacherCache(Nearest(), tmp_path / "tc")
    assert warm.build(again.lr_images()).reused == 3
    assert torch.equal(again.teacher_batch(3, warm), sampler.teacher_batch(3, first))
    bd = _folder_source(data, tmp_path, seed=4, degradation="bd")
    assert TeacherCache(Nearest(), tmp_path / "tc").build(bd.lr_images()).built == 3


def test_folder_data_cached_equals_per_batch(tmp_path):
    """KD on a folder through the image-cache loader: ``auto`` reads stored outputs; with whole-image patches and
    no flips it differs from the per-batch teacher only by the float16 rounding of the stored output."""
    data = _tiny_pngs(tmp_path / "d")
    runs = {}
    for mode in ("off", "auto"):
        sampler = _folder_source(data, tmp_path, patch=16, batch=2, seed=1, augment=False)
        runs[mode] = Trainer(tiny("plain"), "kd", sampler, config(teacher_cache=mode), teacher=tiny()).fit()
    assert runs["off"].teacher_cache is None and runs["auto"].teacher_cache.built == 2
    for a, b in zip(runs["off"].history, runs["auto"].history, strict=True):
        assert abs(a["distill"] - b["distill"]) < 2e-3 * max(a["distill"], 1e-3) + 1e-5
        assert abs(a["loss"] - b["loss"]) < 1e-3 * a["loss"]


def test_folder_data_resume_with_the_cache_is_exact(tmp_path):
    """A crash and resume on folder data (fresh loader) reuses the stored outputs and reaches the same weights."""
    data = _png_folder(tmp_path / "d", n=3)
    cfg = config(steps=6, ckpt_every=3)
    full = Trainer(tiny("plain"), "kd", _folder_source(data, tmp_path, batch=2, seed=3), cfg, teacher=tiny(),
                   out_dir=tmp_path / "a").fit()
    assert full.teacher_cache.built == 3

    with pytest.raises(Crash):
        Trainer(tiny("plain"), "kd", _folder_source(data, tmp_path, batch=2, seed=3), cfg, teacher=tiny(),
                out_dir=tmp_path / "b", progress=crash_at(4)).fit()
    resumed = Trainer(tiny("plain", seed=9), "kd", _folder_source(data, tmp_path, batch=2, seed=3), cfg,
                      teacher=tiny(), out_dir=tmp_path / "b").fit(resume=tmp_path / "b" / "last.pt")
    assert resumed.resumed_from == 3 and resumed.teacher_cache.reused == 3 and resumed.teacher_cache.built == 0
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_a_cache_handed_in_unbuilt_is_the_one_used(tmp_path):
    """An unbuilt TeacherCache has length 0 (falsy): the trainer must still use it, not build a private one."""
    teacher = tiny()
    mine = TeacherCache(teacher, tmp_path / "shared_cache")
    sampler = PatchSampler(images(), 2, 8, 2)
    res = Trainer(tiny("plain"), "kd", sampler, config(steps=1), teacher=teacher, out_dir=tmp_path / "run",
                  teacher_cache=mine).fit()
    assert res.teacher_cache.built == 3 and len(list((tmp_path / "shared_cache").glob("*.npy"))) == 3
    assert not (tmp_path / "run" / "teacher_cache").exists()
