"""Teacher outputs computed once per training image, stored compactly, memory-mapped, cropped per patch.

Strategies that need only the teacher's output (``kd``, and ``ail``'s initial importance w0) do not need the
teacher to run on every batch: the trainer asks the data source for the crop of a stored whole-image output
that lines up with each LR patch (docs/training.md, "Teacher outputs once").

- **Made once per image**: the teacher runs on the whole LR image (its model input: Y for Y teachers, the
  bicubic-upscaled image for pre-upsampling ones); when a side exceeds ``tile`` and a ``tiler`` is given (the
  operations layer passes :func:`sr_compress.deploy.tiling.tiled_network`: this layer does not import
  deploy), tile by tile with the exact halo (the stitched output equals the whole-image output up to float
  reassociation). A teacher whose receptive field cannot be bounded — a global op such as IMDN's
  contrast-aware channel attention, whose statistics span the whole input — runs untiled (tiles would
  change its output).
- **Stored compactly**: ``float16`` (the default) or ``uint8`` (``round(clip(T(x), 0, 1)·255)``, half the
  size), one ``.npy`` file per image, (C, H·s, W·s), read back memory-mapped so resident memory stays bounded.
- **Keyed by content**: the file name is a hash of the teacher (its weights, or the ONNX file and how it is
  called), the LR image's bytes, the scale, the storage dtype and :data:`CACHE_VERSION`; a changed teacher or
  image makes a new entry, an unchanged one is reused (also by a resumed run and by the next run on the
  same data). Files are written atomically, so concurrent builders (DDP ranks) cannot leave a torn file.

What differs from running the teacher per patch: the teacher sees the whole image, so near a patch border
its output uses the real neighbouring pixels instead of the conv's zero padding of the patch; random flips and
transpositions are applied to the stored output (the teacher saw the image in its original orientation); the
stored value is rounded (float16: relative 2⁻¹¹; uint8: ≤ 0.5/255 and clipped to [0, 1]). Measured effects:
docs/results.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..fileio import atomic_write

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DTYPES = ("uint8", "float16")
#: float16 (docs/results.md, "storage precision", VDSR teacher on Set5): 79.8 dB stored vs float output, AIL's
#: w0 moves by ≤ 0.008 (mean 0.002). uint8 is half the size and fine for KD's target (58.9 dB, teacher vs HR
#: −0.03 dB) but moves w0 by up to 0.067 (mean 0.027: g's slope is α0/4 = 25 per unit error), a tenth of a
#: round's λ step: the one default must serve both strategies, so it is the precise one.
DEFAULT_DTYPE = "float16"
DEFAULT_TILE = 256  # LR px: larger images run tile by tile (exact halo)
MODES = ("auto", "on", "off")
ENV_ROOT = "SRCOMPRESS_TEACHER_CACHE"  # a shared cache folder instead of the run's own


@dataclass
class CacheReport:
    """What :meth:`TeacherCache.build` did: entries ``built`` and ``reused``, seconds spent, bytes on disk."""

    images: int
    built: int
    reused: int
    seconds: float
    bytes: int
    dtype: str
    root: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def image_key(lr: torch.Tensor) -> str:
    """Content hash of an LR image (its float32 values and shape)."""
    t = lr.detach().to("cpu", torch.float32).contiguous()
    return _digest(str(list(t.shape)), t.reshape(-1).view(torch.uint8).numpy().tobytes())


class TeacherCache:
    """Whole-image teacher outputs for a list of LR images (see the module docstring).

    ``teacher``: the frozen teacher (SRModel or ONNX-backed model). ``root``: the folder of the ``.npy``
    entries, or None to keep them in memory (tests, throw-away runs). ``dtype``: ``uint8`` or ``float16``.
    ``tile``: LR pixels per tile side when a whole image is larger; ``tiler(model, tile=...)`` returns a
    callable that runs ``model`` tile by tile (None: whole images in one call).
    """

    def __init__(self, teacher: Any, root: str | os.PathLike | None, *, dtype: str = DEFAULT_DTYPE,
                 tile: int = DEFAULT_TILE, tiler: Callable[..., Any] | None = None) -> None:
        from ..checkpoint import model_fingerprint

        if dtype not in DTYPES:
            raise ConfigError(f"teacher cache dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if int(tile) < 8:
            raise ConfigError(f"teacher cache tile must be at least 8 px, got {tile!r}")
        self.teacher, self.dtype, self.tile, self.tiler = teacher, dtype, int(tile), tiler
        self.root = Path(root) if root is not None else None
        self.scale = int(teacher.scale)
        self._teacher_key = model_fingerprint(teacher)
        self._entries: list[np.ndarray] = []
        self._sizes: list[tuple[int, int]] = []
        self._untileable = False

    # -- keys and files -----------------------------------------------------------------------------------------
    def key(self, lr: torch.Tensor) -> str:
        return _digest(f"srcompress-teacher-cache/{CACHE_VERSION}", self._teacher_key, image_key(lr),
                       str(self.scale), self.dtype)

    def path(self, lr: torch.Tensor) -> Path | None:
        return self.root / f"{self.key(lr)}.npy" if self.root is not None else None

    # -- building -------------------------------------------------------------------------------------------------
    def build(self, lr_images: Sequence[torch.Tensor], device: torch.device | str = "cpu") -> CacheReport:
        """Make (or reuse) the entry of every LR image (RGB (3,h,w) float32 in [0, 1], the order the sampler
        indexes them) and open them for :meth:`crop`."""
        t0 = time.perf_counter()
        built = reused = size = 0
        self._entries, self._sizes = [], []
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        for lr in lr_images:
            h, w = int(lr.shape[-2]), int(lr.shape[-1])
            shape = (self.teacher.channels, h * self.scale, w * self.scale)
            path = self.path(lr)
            arr = _open(path, shape, self.dtype) if path is not None else None
            if arr is None:
                arr = self.quantize(self.run_teacher(lr, device))
                if path is not None:
                    atomic_write(path, lambda p, a=arr: _save_npy(p, a), force=True)
                    arr = _open(path, shape, self.dtype)
                built += 1
            else:
                reused += 1
            size += path.stat().st_size if path is not None else arr.nbytes
            self._entries.append(arr)
            self._sizes.append((h, w))
        report = CacheReport(len(self._entries), built, reused, round(time.perf_counter() - t0, 3), size,
                             self.dtype, str(self.root) if self.root is not None else None)
        log.info("teacher cache: %d built, %d reused, %.1f MB, %.1f s", built, reused, size / 1e6, report.seconds)
        return report

    @torch.no_grad()
    def run_teacher(self, lr: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """The teacher's float output (C, H·s, W·s) on the whole LR image (tiled when large)."""
        from ..infer import model_input, to_model_space

        t = self.teacher
        x = model_input(t, to_model_space(t, lr.unsqueeze(0).to(device, torch.float32)))
        net = t
        if max(lr.shape[-2:]) > self.tile and self.tiler is not None and not self._untileable:
            try:
                net = self.tiler(t, tile=self.tile)
            except ConfigError as e:  # e.g. a global op (IMDN's contrast-aware attention): tiles would differ
                self._untileable = True
                log.warning("teacher cache: running whole images untiled (%s)", e)
        return net(x)[0].float().cpu()

    def quantize(self, y: torch.Tensor) -> np.ndarray:
        if self.dtype == "uint8":
            return y.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
        return y.to(torch.float16).numpy()

    # -- reading --------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def crop(self, index: int, y: int, x: int, h: int, w: int) -> torch.Tensor:
        """The stored output under the LR box (top ``y``, left ``x``, ``h``×``w`` LR px) of image ``index``:
        float32 (C, h·s, w·s)."""
        if not self._entries:
            raise ConfigError("the teacher cache was not built (call build() first)")
        s, arr = self.scale, self._entries[index]
        part = np.array(arr[:, y * s:(y + h) * s, x * s:(x + w) * s])
        t = torch.from_numpy(part)
        return t.float().div_(255.0) if self.dtype == "uint8" else t.float()


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def _open(path: Path | None, shape: tuple[int, ...], dtype: str) -> np.ndarray | None:
    """The memory-mapped entry at ``path`` if it exists and has the expected shape and dtype, else None."""
    if path is None or not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        log.warning("teacher cache: %s is unreadable; rebuilding it", path)
        return None
    if tuple(arr.shape) != shape or arr.dtype != np.dtype(dtype):
        log.warning("teacher cache: %s has shape %s %s, expected %s %s; rebuilding it", path, arr.shape,
                    arr.dtype, shape, dtype)
        return None
    return arr


def cache_root(out_dir: str | os.PathLike | None) -> Path | None:
    """Where a run keeps its entries: ``$SRCOMPRESS_TEACHER_CACHE`` if set (shared between runs), else
    ``<out_dir>/teacher_cache``, else nowhere (in memory)."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env)
    return Path(out_dir) / "teacher_cache" if out_dir is not None else None


class CachedTeacherOutputs:
    """The trainer's per-batch teacher output read from a :class:`TeacherCache` through a data source that
    cuts the same boxes (``source.teacher_batch(step, cache, rank, world_size)``, e.g. ``PatchSampler``)."""

    def __init__(self, source: Any, cache: TeacherCache) -> None:
        self.source, self.cache = source, cache

    def __call__(self, step: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        return self.source.teacher_batch(step, self.cache, rank, world_size)
