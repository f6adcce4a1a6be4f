"""Where the HR and LR files of a dataset folder are: the field's layouts, detected and described.

:func:`detect_layout` looks at a folder (headers only, nothing decoded) and returns a :class:`Layout` — the
kind, one :class:`PairFiles` per image and a one-line description for reports. Layouts (docs/data.md):

- ``basicsr``: ``ROOT/HR/<name>.<ext>`` + ``ROOT/LR_bicubic/X<s>/<name>x<s>.<ext>`` (EDSR/BasicSR benchmark
  folders; B100's HR may be the original ``.jpg`` files, paired by name).
- ``div2k``: ``ROOT/<prefix>_HR/`` + ``ROOT/<prefix>_LR_bicubic/X<s>/`` (DIV2K, Flickr2K; train or valid).
- ``selfexsr``: ``image_SRF_<s>/<name>_SRF_<s>_HR.<ext>`` + ``..._LR.<ext>`` (SelfExSR, and the benchmark zips
  of many repositories), pointed at either the ``image_SRF_<s>`` folder or the set root holding them.
- ``hr-only``: a folder of HR images; LR is made from them. A folder that mixes HR and LR files of one of the
  layouts above (``a_HR.png`` + ``a_LR.png``, ``a.png`` + ``ax2.png``) is never read as HR-only.

Pairs are checked here: a missing LR file, or an LR whose size is not ``floor(HR / s)``, is one DataError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .images import IMAGE_SUFFIXES, list_images, read_header

KINDS = ("hr-only", "basicsr", "div2k", "selfexsr")
_SELFEX = re.compile(r"^(?P<base>.+?)(?:_SRF_(?P<s>\d+))?_(?P<kind>HR|LR)$", re.IGNORECASE)
_SRF_DIR = re.compile(r"^image_SRF_(\d+)$", re.IGNORECASE)
_LR_NAME = re.compile(r"^(?P<base>.+)x(?P<s>\d)$")


@dataclass(frozen=True)
class PairFiles:
    """One image: its name, the HR file and the stored LR file (None: LR is made from HR)."""

    name: str
    hr: Path
    lr: Path | None = None


@dataclass(frozen=True)
class Layout:
    kind: str
    root: Path
    scale: int
    files: tuple[PairFiles, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def paired(self) -> bool:
        return all(f.lr is not None for f in self.files)

    def describe(self) -> str:
        """One line for reports, e.g. ``Set5/image_SRF_2: SelfExSR layout, 5 HR/LR pairs (×2, stored LR)``."""
        n = len(self.files)
        what = {"hr-only": "HR images only", "basicsr": "BasicSR layout (HR/ + LR_bicubic/)",
                "div2k": "DIV2K layout", "selfexsr": "SelfExSR layout (*_HR + *_LR)"}[self.kind]
        how = f"{n} HR/LR pairs (×{self.scale}, stored LR)" if self.paired else \
            f"{n} images (×{self.scale}, LR made from HR)"
        return f"{self.root}: {what}, {how}" + "".join(f"; {x}" for x in self.notes)


def _dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES)


def _pick(cands: list[Path], split: str, root: Path) -> Path | None:
    if len(cands) > 1:
        key = "valid" if split == "val" else "train"
        cands = [d for d in cands if key in d.name.lower()] or cands
    if len(cands) > 1:
        raise DataError(f"{root} holds several HR folders ({', '.join(d.name for d in cands)}); point at one")
    return cands[0] if cands else None


def _lr_index(lr_dir: Path, hr: list[Path], scale: int) -> list[PairFiles]:
    """The LR file of each HR file: ``<stem>x<scale>.<ext>`` (DIV2K, benchmarks) or ``<stem>.<ext>``."""
    index = {p.stem: p for p in sorted(_images(lr_dir), reverse=True)}
    out = []
    for h in hr:
        lr = index.get(f"{h.stem}x{scale}") or index.get(h.stem)
        if lr is None:
            raise DataError(f"no LR image for {h.name} in {lr_dir} (expected {h.stem}x{scale}.png)")
        out.append(PairFiles(h.stem, h, lr))
    return out


def _selfexsr(folder: Path, scale: int) -> Layout:
    """An ``image_SRF_<s>`` folder: pairs ``<base>[_SRF_<s>]_HR`` ↔ ``..._LR``; names are ``<base>``."""
    m = _SRF_DIR.match(folder.name)
    if m and int(m.group(1)) != scale:
        raise DataError(f"{folder} holds ×{m.group(1)} pairs, not ×{scale}")
    hr: dict[str, Path] = {}
    lr: dict[str, Path] = {}
    for p in _images(folder):
        mm = _SELFEX.match(p.stem)
        if mm is None:
            raise DataError(f"{folder} mixes SelfExSR files (*_HR, *_LR) with {p.name}; remove it or point "
                            "at a folder of one layout")
        if mm.group("s") and int(mm.group("s")) != scale:
            raise DataError(f"{p}: a ×{mm.group('s')} file in a ×{scale} evaluation")
        (hr if mm.group("kind").upper() == "HR" else lr)[mm.group("base")] = p
    if not hr:
        raise DataError(f"{folder} holds SelfExSR LR files (*_LR) but no HR files (*_HR)")
    for base in sorted(set(lr) - set(hr)):
        raise DataError(f"{lr[base]}: an LR file without its HR file ({base}_HR)")
    files = []
    for base in sorted(hr):
        if base not in lr:
            raise DataError(f"{hr[base]}: no LR file for it ({hr[base].name.replace('_HR', '_LR')})")
        files.append(PairFiles(base, hr[base], lr[base]))
    return Layout("selfexsr", folder, scale, tuple(files))


def _check_mixed(folder: Path, files: list[Path]) -> None:
    """Refuse an HR-only reading of a folder that holds LR files of the benchmark layout next to their HR."""
    stems = {p.stem for p in files}
    for p in files:
        m = _LR_NAME.match(p.stem)
        if m and m.group("base") in stems:
            raise DataError(f"{folder} mixes HR and LR files of the benchmark layout ({m.group('base')} and "
                            f"{p.name}); put HR images in HR/ and LR images in LR_bicubic/X{m.group('s')}/")


def _check_sizes(files: list[PairFiles], scale: int) -> None:
    for f in files:
        if f.lr is None:
            continue
        h, lr = read_header(f.hr), read_header(f.lr)
        want = (h.width // scale, h.height // scale)
        if (lr.width, lr.height) != want:
            raise DataError(f"{f.lr}: LR size {lr.width}x{lr.height} is not HR size {h.width}x{h.height} / "
                            f"{scale} (expected {want[0]}x{want[1]})")


def detect_layout(root: str | Path, scale: int, split: str = "val", *, check_sizes: bool = True) -> Layout:
    """The layout of ``root`` for ``scale`` (``split``: which DIV2K half when both are present).

    Order: ``HR/`` (BasicSR), ``*_HR/`` (DIV2K), ``image_SRF_*/`` (SelfExSR set root), ``*_HR``/``*_LR`` files
    (SelfExSR folder), else HR-only. A BasicSR/DIV2K folder without ``X<scale>`` LR is read HR-only (noted).
    ``check_sizes``: read every pair's headers and refuse an LR that is not ``floor(HR / scale)``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}" if not root.exists() else f"not a folder: {root}")
    x = f"X{scale}"
    dirs = _dirs(root)
    kind, hr_dir, lr_dir = None, None, None
    if (root / "HR").is_dir():
        kind, hr_dir, lr_dir = "basicsr", root / "HR", root / "LR_bicubic" / x
    elif (hr := _pick([d for d in dirs if d.name.endswith("_HR")], split, root)) is not None:
        kind, hr_dir, lr_dir = "div2k", hr, root / f"{hr.name[:-3]}_LR_bicubic" / x
    if kind is not None:
        hr_files = list_images(hr_dir)
        if lr_dir.is_dir():
            files = _lr_index(lr_dir, hr_files, scale)
            if check_sizes:
                _check_sizes(files, scale)
            return Layout(kind, root, scale, tuple(files))
        note = f"no {lr_dir.relative_to(root)} folder"
        return Layout("hr-only", hr_dir, scale, tuple(PairFiles(p.stem, p) for p in hr_files), (note,))
    srf = {int(m.group(1)): d for d in dirs if (m := _SRF_DIR.match(d.name))}
    if srf:
        if scale not in srf:
            have = ", ".join(f"image_SRF_{s}" for s in sorted(srf))
            raise DataError(f"{root} has no image_SRF_{scale} folder (it has {have})")
        layout = _selfexsr(srf[scale], scale)
    elif _SRF_DIR.match(root.name) or any(_SELFEX.match(p.stem) for p in _images(root)):
        layout = _selfexsr(root, scale)
    else:
        files = list_images(root)
        _check_mixed(root, files)
        return Layout("hr-only", root, scale, tuple(PairFiles(p.stem, p) for p in files))
    if check_sizes:
        _check_sizes(list(layout.files), scale)
    return layout


#: Standard benchmark sets as folders are usually named (the first name is the one reported).
BENCHMARK_SETS = {"Set5": ("set5",), "Set14": ("set14",), "B100": ("b100", "bsd100", "bsds100"),
                  "Urban100": ("urban100",), "Manga109": ("manga109",)}


def find_benchmark_sets(root: str | Path) -> dict[str, Path]:
    """The standard set folders (Set5, Set14, B100/BSD100, Urban100, Manga109) directly under ``root`` or one
    level below (e.g. ``root/benchmark/Set5``), by name, case-insensitive; ordered as the papers' tables."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"benchmark folder not found: {root}")
    found: dict[str, Path] = {}
    for folder in [root, *_dirs(root)]:
        for d in _dirs(folder):
            for name, aliases in BENCHMARK_SETS.items():
                if d.name.lower() in aliases and name not in found:
                    found[name] = d
    if not found:
        raise DataError(f"no benchmark sets ({', '.join(BENCHMARK_SETS)}) under {root}")
    return {n: found[n] for n in BENCHMARK_SETS if n in found}


__all__ = ["BENCHMARK_SETS", "KINDS", "Layout", "PairFiles", "detect_layout", "find_benchmark_sets"]
