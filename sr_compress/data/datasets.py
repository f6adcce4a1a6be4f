"""Training and evaluation data: bundled photos, image folders (HR-only or HR/LR pairs), seeded patch batches.

Images are float32 RGB tensors in [0, 1]: (3,H,W) for single images, (N,3,h,w) for batches.

- Default data, no download: natural photos bundled inside scikit-image's wheel, read straight from its
  installed ``skimage/data`` folder (public domain or CC0, see docs/data.md); fixed split ``DEFAULT_SPLITS``.
- Folders: HR images only (LR made with a degradation), or paired layouts — DIV2K
  (``DIV2K_train_HR/0001.png`` + ``DIV2K_train_LR_bicubic/X2/0001x2.png``) and the benchmark layout
  (``HR/baby.png`` + ``LR_bicubic/X2/babyx2.png``).
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

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .degrade import NOISE_LEVEL, check_degradation, degrade, mod_crop

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

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

_GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass(frozen=True)
class NamedImage:
    """An HR image: ``hr`` is (3,H,W) float32 RGB in [0,1]."""

    name: str
    hr: torch.Tensor


@dataclass(frozen=True)
class EvalPair:
    """An LR/HR pair: ``lr`` (3,h,w) and ``hr`` (3,h·scale,w·scale), mod-cropped; float32 RGB in [0,1]."""

    name: str
    lr: torch.Tensor
    hr: torch.Tensor


# -- reading images ------------------------------------------------------------------------------------------
def _mode_problem(mode: str) -> str | None:
    if mode in _GRAY_MODES or mode.startswith("I;"):
        return "grayscale"
    if mode in _ALPHA_MODES:
        return "has an alpha channel"
    return None if mode in ("RGB", "P") else "not RGB"


def read_image(path: str | Path) -> torch.Tensor:
    """An 8-bit RGB image file → (3,H,W) float32 in [0,1]. Palettes are expanded, other modes refused."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            problem = _mode_problem(im.mode)
            if im.mode == "P" and "transparency" in im.info:
                problem = "has transparency"
            if problem:
                raise DataError(f"{p}: image mode {im.mode} ({problem}); RGB is required, convert it first")
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{p}: not a readable image ({e})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def list_images(folder: str | Path) -> list[Path]:
    """Image files (``IMAGE_SUFFIXES``, any case) directly inside ``folder``, sorted by name."""
    d = Path(folder)
    if not d.exists():
        raise DataError(f"image folder not found: {d}")
    if not d.is_dir():
        raise DataError(f"not a folder: {d}")
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({'/'.join(IMAGE_SUFFIXES)}) in {d}")
    return files


def load_images(folder: str | Path) -> list[NamedImage]:
    """Every image directly inside ``folder`` as ``NamedImage(file stem, (3,H,W) float32 in [0,1])``."""
    return [NamedImage(p.stem, read_image(p)) for p in list_images(folder)]


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
def _pick(cands: list[Path], split: str, root: Path) -> Path | None:
    if len(cands) > 1:
        key = "valid" if split == "val" else "train"
        cands = [d for d in cands if key in d.name.lower()] or cands
    if len(cands) > 1:
        raise DataError(f"{root} holds several HR folders ({', '.join(d.name for d in cands)}); point at one")
    return cands[0] if cands else None


def find_layout(root: Path, scale: int, split: str = "train") -> tuple[Path, Path | None]:
    """(HR folder, LR folder or None) of ``root``: benchmark ``HR`` + ``LR_bicubic/X{s}``, DIV2K
    ``<prefix>_HR`` + ``<prefix>_LR_bicubic/X{s}`` (train/valid chosen by ``split``), else ``root`` alone."""
    x = f"X{scale}"
    if (root / "HR").is_dir():
        lr = root / "LR_bicubic" / x
        return root / "HR", lr if lr.is_dir() else None
    hr = _pick(sorted(d for d in root.glob("*_HR") if d.is_dir()), split, root)
    if hr is None:
        return root, None
    lr = root / f"{hr.name[:-3]}_LR_bicubic" / x
    return hr, lr if lr.is_dir() else None


def _lr_files(lr_dir: Path, stems: Sequence[str], scale: int) -> list[Path]:
    """The LR file of each HR stem: ``<stem>x<scale>.<ext>`` (DIV2K, benchmarks) or ``<stem>.<ext>``."""
    index = {p.stem: p for p in sorted(lr_dir.iterdir(), reverse=True) if p.suffix.lower() in IMAGE_SUFFIXES}
    out = []
    for stem in stems:
        path = index.get(f"{stem}x{scale}") or index.get(stem)
        if path is None:
            raise DataError(f"no LR image for {stem} in {lr_dir} (expected {stem}x{scale}.png)")
        out.append(path)
    return out


def load_pair(hr_path: Path, lr_path: Path, scale: int) -> EvalPair:
    """One HR/LR file pair; HR mod-cropped; the LR size must be the HR size // scale."""
    hr, lr = read_image(hr_path), read_image(lr_path)
    want = (hr.shape[1] // scale, hr.shape[2] // scale)
    if tuple(lr.shape[1:]) != want:
        raise DataError(f"{lr_path}: LR size {lr.shape[2]}x{lr.shape[1]} is not HR size "
                        f"{hr.shape[2]}x{hr.shape[1]} / {scale} (expected {want[1]}x{want[0]})")
    return EvalPair(hr_path.stem, lr, mod_crop(hr, scale))


def load_dataset(source: str | Path | None, scale: int, degradation: str = "bi",
                 split: str = "train") -> list[NamedImage] | list[EvalPair]:
    """Images of ``source``: None/"default" = bundled photos of ``split``; a folder = its HR images, or its
    HR/LR pairs when it has a paired layout and ``degradation`` is "bi" (the stored LR are bicubic)."""
    degradation, split = check_degradation(degradation), _check_split(split)
    if source is None or str(source) == "default":
        return default_images(split)
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}" if not root.exists() else f"not a folder: {root}")
    hr_dir, lr_dir = find_layout(root, scale, split)
    if lr_dir is not None and degradation != "bi":
        log.info("%s: ignoring the bicubic LR images, making %s LR from HR", lr_dir, degradation)
    if lr_dir is None or degradation != "bi":
        return load_images(hr_dir)
    hr_files = list_images(hr_dir)
    lr_files = _lr_files(lr_dir, [p.stem for p in hr_files], scale)
    return [load_pair(h, lr, scale) for h, lr in zip(hr_files, lr_files, strict=True)]


def eval_pairs(source: str | Path | None, scale: int, degradation: str = "bi",
               split: str = "val") -> list[EvalPair]:
    """Evaluation pairs: stored pairs as they are, or HR mod-cropped and degraded (DN noise seeded per image,
    so the pairs are the same on every call)."""
    out = []
    for i, item in enumerate(load_dataset(source, scale, degradation, split)):
        if isinstance(item, EvalPair):
            out.append(item)
            continue
        hr = mod_crop(item.hr, scale)
        gen = torch.Generator().manual_seed(step_seed(0, i))
        out.append(EvalPair(item.name, degrade(hr, scale, degradation, generator=gen), hr))
    return out


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
        if patch_size < scale or patch_size % scale:
            raise ConfigError(f"patch_size must be a positive multiple of the scale {scale}, "
                              f"got {patch_size}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not images:
            raise DataError("no training images")
        self.scale, self.patch_size, self.batch_size = int(scale), int(patch_size), int(batch_size)
        self.lr_patch = self.patch_size // self.scale
        self.degradation = check_degradation(degradation)
        self.seed, self.augment = int(seed), bool(augment)
        self._items = [self._item(im) for im in images]

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
        if world_size < 1 or not 0 <= rank < world_size or self.batch_size % world_size:
            raise ConfigError(f"batch_size {self.batch_size} cannot be split as rank {rank} of {world_size}")
        g = torch.Generator().manual_seed(step_seed(self.seed, step))
        n, b, lp = len(self._items), self.batch_size, self.lr_patch
        which = torch.randint(0, n, (b,), generator=g).tolist()
        pos = torch.rand(b, 2, generator=g, dtype=torch.float64).tolist()
        flags = torch.randint(0, 2, (b, 3), generator=g).tolist()
        noise = torch.randn(b, 3, lp, lp, generator=g) if self.degradation == "dn" else None
        rows = range(rank, b, world_size)
        pairs = [self._crop(which[i], pos[i], flags[i] if self.augment else (0, 0, 0)) for i in rows]
        lr = torch.stack([p[0] for p in pairs])
        hr = torch.stack([p[1] for p in pairs])
        if noise is not None:
            lr = (lr + NOISE_LEVEL * noise[rank::world_size]).clamp_(0.0, 1.0)
        return lr, hr

    def _crop(self, index: int, pos: Sequence[float],
              flags: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        item, lp, s = self._items[index], self.lr_patch, self.scale
        lr = self._lr(item)
        h, w = lr.shape[-2:]
        y, x = math.floor(pos[0] * (h - lp + 1)), math.floor(pos[1] * (w - lp + 1))
        lr_p = lr[:, y: y + lp, x: x + lp]
        hr_p = item.hr[:, y * s: (y + lp) * s, x * s: (x + lp) * s]
        return _augment(lr_p, flags).contiguous(), _augment(hr_p, flags).contiguous()


__all__ = ["DEFAULT_SPLITS", "EvalPair", "IMAGE_SUFFIXES", "NamedImage", "PatchSampler", "SKIMAGE_PHOTOS",
           "default_images", "eval_pairs", "find_layout", "list_images", "load_dataset",
           "load_images", "load_pair", "read_image", "step_seed"]
