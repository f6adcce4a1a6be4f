"""Training and evaluation data: bundled photos, image folders (HR-only or HR/LR pairs), seeded patch batches.

Images are float32 RGB tensors in [0, 1]: (3,H,W) for single images, (N,3,h,w) for batches.

- Default data, no download: natural photos bundled inside scikit-image's wheel, read straight from its
  installed ``skimage/data`` folder (public domain or CC0, see docs/data.md); fixed split ``DEFAULT_SPLITS``.
- Folders: HR images only (LR made with a degradation; bicubic LR rounded to 8 bits by MATLAB's uint8 path, as
  a saved LR file is), or the paired layouts that :mod:`sr_compress.data.layouts` detects — BasicSR
  (``HR/baby.png`` + ``LR_bicubic/X2/babyx2.png``), DIV2K, SelfExSR (``image_SRF_2/*_HR.png`` + ``*_LR.png``).
  Image files are read by :func:`sr_compress.data.images.read_u8` (greyscale → 3 equal channels, noted).
- :class:`PatchSampler`: batch ``step`` is a pure function of ``(seed, step)``, which makes resume exact and
  DDP batches independent of the number of processes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError
from ..imresize import imresize
from .degrade import NOISE_LEVEL, check_degradation, degrade, mod_crop
from .images import IMAGE_SUFFIXES, list_images, read_u8, to_tensor
from .layouts import Layout, detect_layout

log = logging.getLogger(__name__)

#: The bundled photos we use (name → file in skimage/data). All public domain or CC0 (docs/data.md).
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png",
    "rocket": "rocket.jpg",
    "immunohistochemistry": "ihc.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
}
DEFAULT_SPLITS = {
    "train": ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina"),
    "val": ("chelsea", "coffee"),
}
_SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class NamedImage:
    """An HR image: ``hr`` is (3,H,W) float32 RGB in [0,1]."""

    name: str
    hr: torch.Tensor
    #: what reading the file did beyond decoding 8-bit RGB (e.g. greyscale → 3 channels), for reports
    note: str | None = None


@dataclass(frozen=True)
class EvalPair:
    """An LR/HR pair: ``lr`` (3,h,w) and ``hr`` (3,h·scale,w·scale), mod-cropped; float32 RGB in [0,1]."""

    name: str
    lr: torch.Tensor
    hr: torch.Tensor
    note: str | None = None


# -- reading images ------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> torch.Tensor:
    """An image file → (3,H,W) float32 RGB in [0,1], by the rules of :func:`sr_compress.data.images.read_u8`."""
    return to_tensor(read_u8(path)[0])


def load_images(folder: str | Path) -> list[NamedImage]:
    """Every image directly inside ``folder`` as ``NamedImage(file stem, (3,H,W) float32 in [0,1])``."""
    return [_named(p.stem, p) for p in list_images(folder)]


def _named(name: str, path: Path) -> NamedImage:
    arr, note = read_u8(path)
    return NamedImage(name, to_tensor(arr), note)


# -- default data --------------------------------------------------------------------------------------------
def skimage_data_dir() -> Path:
    """The installed ``skimage/data`` folder (located without importing scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise DataError("scikit-image is not installed; it provides the default images (pip install it)")
    return Path(spec.origin).parent / "data"


@cache
def _default_image(name: str) -> torch.Tensor:
    path = skimage_data_dir() / SKIMAGE_PHOTOS[name]
    if not path.is_file():
        raise DataError(f"scikit-image's bundled photo {path.name} is missing from {path.parent}; "
                        "reinstall scikit-image or pass a data folder")
    return read_image(path)


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(_SPLITS)}")
    return split


def default_images(split: str = "train") -> list[NamedImage]:
    """The bundled photos of ``split`` ("train", "val" or "all"); read once per process, don't modify them."""
    names = DEFAULT_SPLITS["train"] + DEFAULT_SPLITS["val"] if _check_split(split) == "all" \
        else DEFAULT_SPLITS[split]
    return [NamedImage(n, _default_image(n)) for n in names]


# -- folders with HR/LR pairs --------------------------------------------------------------------------------
def find_layout(root: Path, scale: int, split: str = "train") -> tuple[Path, Path | None]:
    """(HR folder, LR folder or None) of ``root`` (kept for callers of the old API; see ``detect_layout``)."""
    layout = detect_layout(root, scale, split, check_sizes=False)
    first = layout.files[0]
    return first.hr.parent, first.lr.parent if layout.paired else None


def load_pair(hr_path: Path, lr_path: Path, scale: int, name: str | None = None) -> EvalPair:
    """One HR/LR file pair; HR mod-cropped; the LR size must be the HR size // scale."""
    (hr, hr_note), (lr, lr_note) = read_u8(hr_path), read_u8(lr_path)
    want = (hr.shape[0] // scale, hr.shape[1] // scale)
    if tuple(lr.shape[:2]) != want:
        raise DataError(f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} is not HR size "
                        f"{hr.shape[1]}x{hr.shape[0]} / {scale} (expected {want[1]}x{want[0]})")
    note = hr_note or lr_note
    return EvalPair(name or hr_path.stem, to_tensor(lr), mod_crop(to_tensor(hr), scale), note)


def dataset_layout(source: str | Path, scale: int, split: str = "val") -> Layout:
    """The detected :class:`~sr_compress.data.layouts.Layout` of a data folder (for reports)."""
    return detect_layout(Path(source), scale, split)


def load_dataset(source: str | Path | None, scale: int, degradation: str = "bi",
                 split: str = "train") -> list[NamedImage] | list[EvalPair]:
    """Images of ``source``: None/"default" = bundled photos of ``split``; a folder = its HR images, or its
    HR/LR pairs when it has a paired layout and ``degradation`` is "bi" (the stored LR are bicubic)."""
    degradation, split = check_degradation(degradation), _check_split(split)
    if source is None or str(source) == "default":
        return default_images(split)
    layout = detect_layout(Path(source), scale, split)
    if layout.paired and degradation != "bi":
        log.info("%s: ignoring the bicubic LR images, making %s LR from HR", layout.root, degradation)
    if not layout.paired or degradation != "bi":
        return [_named(f.name, f.hr) for f in layout.files]
    return [load_pair(f.hr, f.lr, scale, f.name) for f in layout.files]


def bicubic_lr_u8(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic LR of a mod-cropped (3,H,W) HR in [0,1] made as a saved LR file is: MATLAB's uint8
    ``imresize`` of the 8-bit HR (bit-exact with the published benchmark LR files), back to float [0,1]."""
    u8 = hr.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return imresize(u8, 1.0 / scale, uint8=True).float().div_(255.0)


def make_eval_pair(item: NamedImage, scale: int, degradation: str, index: int) -> EvalPair:
    """HR mod-cropped and degraded: ``bi`` by :func:`bicubic_lr_u8` (rounded to 8 bits, like the published LR
    files), ``bd``/``dn`` by :func:`~sr_compress.data.degrade.degrade` (DN noise seeded by ``index``)."""
    if min(item.hr.shape[1:]) < scale:  # a 1×1 image has no ×2 LR: one line naming it, not an AttributeError
        raise DataError(f"{item.name}: {item.hr.shape[2]}x{item.hr.shape[1]} px is smaller than the scale ×{scale}")
    hr = mod_crop(item.hr, scale)
    if degradation == "bi":
        return EvalPair(item.name, bicubic_lr_u8(hr, scale), hr, item.note)
    gen = torch.Generator().manual_seed(step_seed(0, index))
    return EvalPair(item.name, degrade(hr, scale, degradation, generator=gen), hr, item.note)


def eval_pairs(source: str | Path | None, scale: int, degradation: str = "bi",
               split: str = "val") -> list[EvalPair]:
    """Evaluation pairs: stored pairs as they are, or HR mod-cropped and degraded (bicubic LR rounded to 8 bits
    as a saved file is; DN noise seeded per image, so the pairs are the same on every call)."""
    return [item if isinstance(item, EvalPair) else make_eval_pair(item, scale, degradation, i)
            for i, item in enumerate(load_dataset(source, scale, degradation, split))]


def iter_eval_pairs(layout: Layout, degradation: str = "bi"):
    """The evaluation pairs of a detected layout, read one at a time (bounded memory for large sets)."""
    degradation = check_degradation(degradation)
    for i, f in enumerate(layout.files):
        if f.lr is not None and degradation == "bi":
            yield load_pair(f.hr, f.lr, layout.scale, f.name)
        else:
            yield make_eval_pair(_named(f.name, f.hr), layout.scale, degradation, i)


# -- training patches ----------------------------------------------------------------------------------------
def step_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, step)``: independent streams for neighbouring steps."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(step)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class _Item:
    name: str
    hr: torch.Tensor  # (3, h·s, w·s), mod-cropped
    lr: torch.Tensor | None  # (3, h, w); None until made from hr


def _augment(t: torch.Tensor, flags: Sequence[int]) -> torch.Tensor:
    """Horizontal flip, vertical flip, transpose (together: the 8 rotations/reflections) of (C,H,W)."""
    if flags[0]:
        t = t.flip(-1)
    if flags[1]:
        t = t.flip(-2)
    return t.transpose(-1, -2) if flags[2] else t


class PatchSampler:
    """Seeded random LR/HR training patches.

    ``images``: ``NamedImage`` (LR made once per image with ``degradation``; DN adds fresh noise per batch)
    or ``EvalPair`` (stored LR used as is). ``patch_size`` is the HR patch side (a multiple of ``scale``);
    crops are aligned to the scale grid; ``augment`` adds random flips and transposition.
    """

    def __init__(self, images: Sequence[NamedImage | EvalPair], scale: int, patch_size: int, batch_size: int,
                 degradation: str = "bi", seed: int = 0, augment: bool = True) -> None:
        self._configure(scale, patch_size, batch_size, degradation, seed, augment)
        if not images:
            raise DataError("no training images")
        self._items = [self._item(im) for im in images]

    def _configure(self, scale: int, patch_size: int, batch_size: int, degradation: str, seed: int,
                   augment: bool) -> None:
        """Check and keep the settings (shared with ``sr_compress.data.cache.CachedPatchSampler``)."""
        if patch_size < scale or patch_size % scale:
            raise ConfigError(f"patch_size must be a positive multiple of the scale {scale}, "
                              f"got {patch_size}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.scale, self.patch_size, self.batch_size = int(scale), int(patch_size), int(batch_size)
        self.lr_patch = self.patch_size // self.scale
        self.degradation = check_degradation(degradation)
        self.seed, self.augment = int(seed), bool(augment)

    def _item(self, im: NamedImage | EvalPair) -> _Item:
        s = self.scale
        if isinstance(im, EvalPair):
            h, w = im.lr.shape[-2:]
            if im.hr.shape[-2] < h * s or im.hr.shape[-1] < w * s:
                raise DataError(f"{im.name}: HR is smaller than LR × {s}")
            item = _Item(im.name, im.hr[:, : h * s, : w * s], im.lr)
        else:
            item = _Item(im.name, mod_crop(im.hr, s), None)
        hh, ww = item.hr.shape[-2:]
        if min(hh, ww) < self.patch_size:
            raise DataError(f"image {im.name} ({ww}x{hh}) is smaller than the training patch "
                            f"{self.patch_size} px")
        return item

    def _lr(self, item: _Item) -> torch.Tensor:
        if item.lr is None:  # made once; DN's noise is added per batch instead
            kind = "bi" if self.degradation == "dn" else self.degradation
            item.lr = degrade(item.hr.unsqueeze(0), self.scale, kind)[0]
        return item.lr

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``step`` → (lr (B/ws,3,p/s,p/s), hr (B/ws,3,p,p)), float32 in [0,1].

        The global batch depends only on ``(seed, step)``; process ``rank`` of ``world_size`` gets its rows
        ``rank::world_size``, so any number of processes together see the same samples.
        """
        which, pos, flags, g = self._draws(step, rank, world_size)
        b, lp = self.batch_size, self.lr_patch
        noise = torch.randn(b, 3, lp, lp, generator=g) if self.degradation == "dn" else None
        rows = range(rank, b, world_size)
        pairs = [self._crop(which[i], pos[i], flags[i]) for i in rows]
        lr = torch.stack([p[0] for p in pairs])
        hr = torch.stack([p[1] for p in pairs])
        if noise is not None:
            lr = (lr + NOISE_LEVEL * noise[rank::world_size]).clamp_(0.0, 1.0)
        return lr, hr

    def _draws(self, step: int, rank: int, world_size: int) -> tuple[list, list, list, torch.Generator]:
        """The random choices of batch ``step``: image indices, crop positions, augmentation flags (and the
        generator, for DN's noise, drawn next)."""
        if world_size < 1 or not 0 <= rank < world_size or self.batch_size % world_size:
            raise ConfigError(f"batch_size {self.batch_size} cannot be split as rank {rank} of {world_size}")
        g = torch.Generator().manual_seed(step_seed(self.seed, step))
        n, b = len(self._items), self.batch_size
        which = torch.randint(0, n, (b,), generator=g).tolist()
        pos = torch.rand(b, 2, generator=g, dtype=torch.float64).tolist()
        flags = torch.randint(0, 2, (b, 3), generator=g).tolist()
        if not self.augment:
            flags = [(0, 0, 0)] * b
        return which, pos, flags, g

    def _box(self, index: int, pos: Sequence[float]) -> tuple[int, int]:
        """Top-left LR pixel of the crop at relative position ``pos`` of image ``index``."""
        h, w = self._lr(self._items[index]).shape[-2:]
        lp = self.lr_patch
        return math.floor(pos[0] * (h - lp + 1)), math.floor(pos[1] * (w - lp + 1))

    def _crop(self, index: int, pos: Sequence[float],
              flags: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        item, lp, s = self._items[index], self.lr_patch, self.scale
        lr = self._lr(item)
        y, x = self._box(index, pos)
        lr_p = lr[:, y: y + lp, x: x + lp]
        hr_p = item.hr[:, y * s: (y + lp) * s, x * s: (x + lp) * s]
        return _augment(lr_p, flags).contiguous(), _augment(hr_p, flags).contiguous()

    # -- cached teacher outputs (sr_compress.train.teacher_cache) -------------------------------------------------
    def lr_images(self) -> list[torch.Tensor]:
        """The whole LR image (3,h,w) of every training image, in index order: what the patches are cut from
        (without DN's per-batch noise)."""
        return [self._lr(item) for item in self._items]

    def teacher_cache_problem(self) -> str | None:
        """Why stored whole-image teacher outputs cannot stand for this sampler's patches (None: they can)."""
        if self.degradation == "dn":
            return "DN adds fresh noise to every patch, which a stored teacher output cannot follow"
        return None

    def teacher_batch(self, step: int, cache: Any, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """The stored teacher outputs under the LR patches of batch ``step`` (same boxes and flips as
        :meth:`batch`): ``cache.crop(index, y, x, h, w)`` → (C, h·s, w·s), stacked to (B/ws, C, p, p)."""
        which, pos, flags, _ = self._draws(step, rank, world_size)
        lp = self.lr_patch
        crops = [_augment(cache.crop(which[i], *self._box(which[i], pos[i]), lp, lp), flags[i])
                 for i in range(rank, self.batch_size, world_size)]
        return torch.stack([c.contiguous() for c in crops])


def training_source(data: str | Path | None, scale: int, patch_size: int, batch_size: int, *,
                    degradation: str = "bi", seed: int = 0, augment: bool = True,
                    cache_dir: str | Path | None = None, progress=None, prefetch: int = 4,
                    workers: int = 2) -> PatchSampler:
    """The training batch source of ``data``: the bundled photos (None/"default") in memory (``PatchSampler``);
    a folder (any layout, its ``train`` half) through the uint8 image cache (``CachedPatchSampler``: built on
    first use with ``progress({done, total, built, name})``, memory-mapped patches, per-patch LR, ``prefetch``
    batches made ahead by ``workers`` threads). ``cache_dir``: default ``sr_compress.data.cache.default_cache_dir``.
    """
    degradation = check_degradation(degradation)
    if data is None or str(data) == "default":
        return PatchSampler(default_images("train"), scale, patch_size, batch_size, degradation, seed, augment)
    from .cache import cached_sampler

    layout = detect_layout(Path(data), scale, "train")
    return cached_sampler(layout, scale, patch_size, batch_size, degradation=degradation, seed=seed,
                          augment=augment, cache_dir=cache_dir, progress=progress, prefetch=prefetch,
                          workers=workers)


__all__ = ["DEFAULT_SPLITS", "EvalPair", "IMAGE_SUFFIXES", "NamedImage", "PatchSampler", "SKIMAGE_PHOTOS",
           "bicubic_lr_u8", "dataset_layout", "default_images", "eval_pairs", "find_layout", "iter_eval_pairs",
           "list_images", "load_dataset", "load_images", "load_pair", "make_eval_pair", "read_image",
           "step_seed", "training_source"]
