"""Training data at the field's scale: a uint8 image cache and a patch loader that reads from it.

**Cache** (:class:`ImageCache`): every image is decoded once (by :func:`sr_compress.data.images.read_u8`) into
``<cache>/<key>.npy``, an (H, W, 3) uint8 array; ``key`` is the SHA-256 of the image *file's bytes*, so a
renamed or copied file reuses its entry and an edited one gets a new entry. The default folder is
``$SRCOMPRESS_CACHE``, else ``$XDG_CACHE_HOME/srcompress/images``, else ``~/.cache/srcompress/images`` — never
inside the data folder, which may be read-only (shared datasets). Per data folder a small index
(``index/<hash of the folder path>.json``: file name → size, mtime, key) spares re-hashing unchanged files, so
a warm start only stats the files and reads the 128-byte ``.npy`` headers. Every write goes to a temporary file
in the cache folder and is renamed into place (``os.replace``): a killed build leaves no partial entry, and
builders running at the same time (DDP ranks, two jobs) at worst both write identical bytes. An entry whose
header or size is wrong (a truncated file) is rebuilt.

**Loader** (:class:`CachedPatchSampler`): the :class:`~sr_compress.data.datasets.PatchSampler` contract — batch
``step`` is a pure function of ``(seed, step)``, DDP ranks take rows ``rank::world_size`` — with patches cut
from memory-mapped cache files (map, copy the window, unmap: resident memory stays bounded by the batches, not
by the dataset) and LR made per patch: the HR window plus a 3-LR-pixel margin (clipped at the image border) is
degraded and the margin dropped, which gives exactly the LR of the whole image (bicubic: MATLAB's uint8 path,
rounded to 8 bits as the published LR files are). Stored LR files (paired layouts) are cached and cropped
instead. Batches ahead of the one asked for are prepared by worker threads (``prefetch``), off the trainer's
critical path; which batch a step gets never depends on timing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..imresize import imresize
from .datasets import PatchSampler, _augment
from .degrade import degrade
from .images import read_u8

CACHE_ENV = "SRCOMPRESS_CACHE"
MARGIN = 3  # LR pixels around a patch from which its LR is made (bicubic taps reach < 3 LR px at ×2..×4)
Progress = Callable[[dict[str, Any]], None]


def default_cache_dir() -> Path:
    """``$SRCOMPRESS_CACHE``, else ``$XDG_CACHE_HOME/srcompress/images``, else ``~/.cache/srcompress/images``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "srcompress" / "images"


def file_key(path: Path) -> str:
    """SHA-256 (hex, 32 chars kept) of a file's bytes: the cache key of the image it holds."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class CacheEntry:
    """One cached image: its name, the ``.npy`` file, where the pixels start and their (H, W, 3) shape."""

    name: str
    file: Path
    offset: int
    shape: tuple[int, int, int]
    note: str | None = None

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Rows ``y0:y1``, columns ``x0:x1`` as a fresh (h, w, 3) uint8 array; the mapping is dropped after."""
        m = np.memmap(self.file, dtype=np.uint8, mode="r", offset=self.offset, shape=self.shape)
        try:
            return np.array(m[y0:y1, x0:x1])
        finally:
            m._mmap.close()  # unmap now: pages read for this patch leave the process's resident set

    def array(self) -> np.ndarray:
        return self.window(0, self.shape[0], 0, self.shape[1])


def _read_npy_header(file: Path) -> tuple[int, tuple[int, ...]] | None:
    """(data offset, shape) of a valid uint8 .npy whose size matches its header, else None."""
    try:
        with open(file, "rb") as f:
            fmt = np.lib.format
            version = fmt.read_magic(f)
            read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if read is None:
                return None
            shape, fortran, dtype = read(f)
            offset = f.tell()
        size = file.stat().st_size
    except (OSError, ValueError):
        return None
    if dtype != np.uint8 or fortran or len(shape) != 3 or shape[2] != 3 or size != offset + math.prod(shape):
        return None
    return offset, tuple(int(v) for v in shape)


def _write_atomic(folder: Path, name: str, write: Callable[[Any], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, folder / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ImageCache:
    """Decoded uint8 images under ``folder`` (default :func:`default_cache_dir`), keyed by file content."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_cache_dir()
        try:
            (self.folder / "index").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create the image cache folder {self.folder} ({e.strerror}); choose "
                            f"another with --cache-dir or ${CACHE_ENV}") from None
        if not os.access(self.folder, os.W_OK):
            raise DataError(f"the image cache folder {self.folder} is not writable; choose another with "
                            f"--cache-dir or ${CACHE_ENV}")
        self._lock = threading.Lock()

    def _index_path(self, source_dir: Path) -> Path:
        digest = hashlib.blake2b(str(source_dir.resolve()).encode(), digest_size=8).hexdigest()
        return self.folder / "index" / f"{digest}.json"

    def _load_index(self, source_dir: Path) -> dict[str, Any]:
        try:
            data = json.loads(self._index_path(source_dir).read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_index(self, source_dir: Path, index: dict[str, Any]) -> None:
        path = self._index_path(source_dir)
        text = json.dumps({"folder": str(source_dir.resolve()), "files": index}, indent=0).encode()
        _write_atomic(path.parent, path.name, lambda f: f.write(text))

    def _entry(self, name: str, path: Path, known: dict[str, Any] | None) -> tuple[CacheEntry, dict, bool]:
        """The entry of one image file, built if missing or broken; (entry, index record, built?)."""
        st = path.stat()
        if known and known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
            key, note = known["key"], known.get("note")
        else:
            key, note = file_key(path), None
        file = self.folder / f"{key}.npy"
        head = _read_npy_header(file)
        built = head is None
        if built:
            arr, note = read_u8(path)
            _write_atomic(self.folder, file.name, lambda f: np.save(f, arr, allow_pickle=False))
            head = (_read_npy_header(file) or (0, ()))
            if not head[1]:
                raise DataError(f"{file}: the cache entry just written cannot be read back")
        record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "key": key, "note": note}
        return CacheEntry(name, file, head[0], head[1], note), record, built

    def entries(self, files: Sequence[tuple[str, Path]], *, progress: Progress | None = None,
                workers: int | None = None) -> list[CacheEntry]:
        """Cache entries of ``(name, image path)``: existing valid ones reused, the others decoded once (by
        ``workers`` threads). ``progress({done, total, built, name})`` after every file."""
        files = [(n, Path(p)) for n, p in files]
        by_dir: dict[Path, dict[str, Any]] = {}
        for _, p in files:
            if p.parent not in by_dir:
                by_dir[p.parent] = self._load_index(p.parent).get("files", {})
        out: list[CacheEntry | None] = [None] * len(files)
        records: dict[Path, dict[str, Any]] = {d: dict(ix) for d, ix in by_dir.items()}
        done, built_n = 0, 0

        def one(i: int) -> None:
            nonlocal done, built_n
            name, p = files[i]
            entry, record, built = self._entry(name, p, by_dir[p.parent].get(p.name))
            with self._lock:
                out[i] = entry
                records[p.parent][p.name] = record
                done += 1
                built_n += built
                if progress is not None:
                    progress({"done": done, "total": len(files), "built": built_n, "name": name})

        n = workers if workers is not None else min(4, os.cpu_count() or 1)
        if n <= 1 or len(files) <= 1:
            for i in range(len(files)):
                one(i)
        else:
            with ThreadPoolExecutor(n, thread_name_prefix="srcompress-cache") as pool:
                for f in [pool.submit(one, i) for i in range(len(files))]:
                    f.result()
        for d, ix in records.items():
            if ix != by_dir[d]:
                self._save_index(d, ix)
        return [e for e in out if e is not None]


# -- the loader -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _CachedItem:
    name: str
    hr: CacheEntry
    lr: CacheEntry | None  # a stored LR file (paired layouts), else LR is made per patch

    def lr_size(self, s: int) -> tuple[int, int]:
        if self.lr is not None:
            return self.lr.shape[0], self.lr.shape[1]
        return self.hr.shape[0] // s, self.hr.shape[1] // s


def _to_float(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)


class CachedPatchSampler(PatchSampler):
    """Seeded LR/HR patches from cached images; the :class:`~sr_compress.data.datasets.PatchSampler` contract.

    ``items``: ``(name, HR entry, LR entry or None)``. ``prefetch``: batches prepared ahead by ``workers``
    threads (0: each batch made when asked). The draws (image, position, flips, DN noise) are PatchSampler's,
    so given the same images both cut the same HR patches for every ``(seed, step)``.
    """

    def __init__(self, items: Sequence[tuple[str, CacheEntry, CacheEntry | None]], scale: int, patch_size: int,
                 batch_size: int, degradation: str = "bi", seed: int = 0, augment: bool = True,
                 prefetch: int = 4, workers: int = 2) -> None:
        self._configure(scale, patch_size, batch_size, degradation, seed, augment)
        if not items:
            raise DataError("no training images")
        if prefetch < 0 or workers < 0:
            raise ConfigError(f"prefetch and workers must be ≥ 0, got {prefetch} and {workers}")
        self._items = [_CachedItem(n, h, lr) for n, h, lr in items]
        for it in self._items:
            h, w = it.lr_size(self.scale)
            if min(h, w) < self.lr_patch:
                raise DataError(f"image {it.name} ({it.hr.shape[1]}x{it.hr.shape[0]}) is smaller than the "
                                f"training patch {self.patch_size} px")
            if it.lr is not None and (it.hr.shape[0] < h * self.scale or it.hr.shape[1] < w * self.scale):
                raise DataError(f"{it.name}: HR is smaller than LR × {self.scale}")
        self.prefetch, self.workers = int(prefetch), int(workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[tuple[int, int, int], Future] = {}

    @property
    def images(self) -> int:
        return len(self._items)

    def _crop(self, index: int, pos: Sequence[float], flags: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        item, lp, s = self._items[index], self.lr_patch, self.scale
        h, w = item.lr_size(s)
        y, x = math.floor(pos[0] * (h - lp + 1)), math.floor(pos[1] * (w - lp + 1))
        hr = _to_float(item.hr.window(y * s, (y + lp) * s, x * s, (x + lp) * s))
        if item.lr is not None:
            lr = _to_float(item.lr.window(y, y + lp, x, x + lp))
        else:
            lr = self._make_lr(item, y, x, h, w)
        return _augment(lr, flags).contiguous(), _augment(hr, flags).contiguous()

    def _make_lr(self, item: _CachedItem, y: int, x: int, h: int, w: int) -> torch.Tensor:
        """LR of the patch at LR (y, x): the HR window with a MARGIN (clipped to the mod-cropped image) degraded
        as a whole image would be, the margin dropped — equal to cropping the whole image's LR."""
        s, lp = self.scale, self.lr_patch
        y0, y1, x0, x1 = max(0, y - MARGIN), min(h, y + lp + MARGIN), max(0, x - MARGIN), min(w, x + lp + MARGIN)
        win = torch.from_numpy(item.hr.window(y0 * s, y1 * s, x0 * s, x1 * s)).permute(2, 0, 1)
        if self.degradation == "bd":
            lr = degrade(win.float().div_(255.0).unsqueeze(0), s, "bd")[0]
        else:  # bi, and dn's noise-free part (PatchSampler.batch adds the noise)
            lr = imresize(win.contiguous(), 1.0 / s, uint8=True).float().div_(255.0)
        return lr[:, y - y0: y - y0 + lp, x - x0: x - x0 + lp]

    # -- batches, prepared ahead ----------------------------------------------------------------------------
    def _make(self, step: int, rank: int, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return super().batch(step, rank, world_size)

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``step`` (see PatchSampler.batch); the next ``prefetch`` batches are started in the background."""
        key = (int(step), rank, world_size)
        fut = self._pending.pop(key, None)
        if self.prefetch and self._pool is None:
            self._pool = ThreadPoolExecutor(max(self.workers, 1), thread_name_prefix="srcompress-loader")
        if self._pool is not None:
            for k in [k for k in self._pending if k[0] < step or k[1:] != key[1:]]:
                self._pending.pop(k).cancel()
            for ahead in range(step + 1, step + 1 + self.prefetch):
                k = (ahead, rank, world_size)
                if k not in self._pending:
                    self._pending[k] = self._pool.submit(self._make, ahead, rank, world_size)
        return fut.result() if fut is not None else self._make(step, rank, world_size)

    def teacher_cache_problem(self) -> str | None:
        """Stored whole-image teacher outputs (sr_compress.train.teacher_cache) are not cut by this loader yet:
        it makes each patch's LR from its HR crop, so ``teacher_cache = "auto"`` runs the teacher per batch."""
        return ("the image-cache loader makes each patch's LR from its HR crop, which stored whole-image teacher "
                "outputs do not follow yet")

    def close(self) -> None:
        """Stop the worker threads (batches not yet asked for are dropped)."""
        for f in self._pending.values():
            f.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to clean up
            pass


def cached_sampler(layout: Any, scale: int, patch_size: int, batch_size: int, *, degradation: str = "bi",
                   seed: int = 0, augment: bool = True, cache_dir: str | os.PathLike | None = None,
                   progress: Progress | None = None, prefetch: int = 4, workers: int = 2,
                   build_workers: int | None = None) -> CachedPatchSampler:
    """A :class:`CachedPatchSampler` over a detected layout (:func:`sr_compress.data.layouts.detect_layout`):
    its images cached (built on first use, ``progress`` per file), stored LR used for ``bi`` pairs."""
    cache = ImageCache(cache_dir)
    use_lr = layout.paired and degradation == "bi"
    files = [(f.name, f.hr) for f in layout.files] + ([(f.name, f.lr) for f in layout.files] if use_lr else [])
    entries = cache.entries(files, progress=progress, workers=build_workers)
    n = len(layout.files)
    items = [(f.name, entries[i], entries[n + i] if use_lr else None) for i, f in enumerate(layout.files)]
    return CachedPatchSampler(items, scale, patch_size, batch_size, degradation, seed, augment, prefetch, workers)


__all__ = ["CACHE_ENV", "CacheEntry", "CachedPatchSampler", "ImageCache", "cached_sampler", "default_cache_dir",
           "file_key"]
