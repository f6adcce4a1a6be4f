"""Output names of a multi-file operation, planned and checked before the first file is written.

``upscale`` writes one PNG per input image; every name is computed and checked (collisions, inputs, existing
files) up front, so a refusal never leaves a partial set behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ConfigError, DataError, OutputExistsError
from ..fileio import check_output, input_conflict

#: At most this many images per call (each is an output file to plan).
MAX_IMAGES = 100_000


def upscale_name(src: str | os.PathLike, scale: int) -> str:
    """``photo.jpg`` at ×2 → ``photo_x2.png``."""
    return f"{Path(src).stem}_x{scale}.png"


def plan_upscale_outputs(images: Sequence[str | os.PathLike], out: str | os.PathLike, scale: int, *,
                         inputs: Iterable[str | os.PathLike | None] = (),
                         force: bool = False) -> list[tuple[Path, Path]]:
    """``(source, target)`` for every image, all checked before anything is written.

    One image and ``out`` ending in ``.png``: that file. Otherwise ``out`` is a folder of
    ``<stem>_x<scale>.png``; ``out`` ending in ``.png`` with several images is refused (it would silently
    become a folder), as is an existing file used as the folder. Two images mapping to one name (``A/x.png``
    and ``B/x.png``) are refused, with or without ``force``; each target is checked by
    :func:`sr_compress.fileio.check_output` against every image and ``inputs`` (the model)."""
    srcs = [Path(p) for p in images]
    if not srcs:
        raise DataError("no input images given")
    if len(srcs) > MAX_IMAGES:
        raise ConfigError(f"{len(srcs)} images in one call (at most {MAX_IMAGES})")
    out = Path(out)
    every_input = [*srcs, *[i for i in inputs if i is not None]]
    why = input_conflict(out, every_input)
    if why is not None:
        raise OutputExistsError(f"refusing to write {out}: {why} (--force never replaces an input)")
    if out.suffix.lower() == ".png":
        if len(srcs) > 1:
            raise ConfigError(f"-o {out} names one file, but {len(srcs)} images were given; give a folder")
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"{out} is a file; give a folder for {len(srcs)} images (or a .png for one)")
        targets = [out / upscale_name(p, scale) for p in srcs]
    seen: dict[str, Path] = {}
    for src, dst in zip(srcs, targets, strict=True):
        key = os.path.normcase(os.path.abspath(dst))
        if key in seen:
            raise OutputExistsError(f"{seen[key]} and {src} would both be written to {dst}; "
                                    "rename one or upscale them separately")
        seen[key] = src
    for dst in targets:
        check_output(dst, inputs=every_input, force=force)
    return list(zip(srcs, targets, strict=True))
