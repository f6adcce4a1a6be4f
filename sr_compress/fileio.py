"""Safe output files: atomic writes, no silent overwrite, never over an input."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import DataError, OutputExistsError


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), force: bool = False) -> Path:
    """Validate an output path: not an input, not an existing file unless ``force``, parent creatable."""
    out = Path(path)
    for src in inputs:
        if Path(src).exists() and out.exists() and out.resolve() == Path(src).resolve():
            raise OutputExistsError(f"refusing to write {out}: it is an input of this command")
    if out.is_dir():
        raise OutputExistsError(f"{out} is a directory; give a file path")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; use --force to replace it")
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, inputs: Iterable = (),
                 force: bool = False) -> Path:
    """Call ``write(tmp_path)`` then move the temp file onto ``path`` in one step (same directory)."""
    out = check_output(path, inputs=inputs, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, out)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str, **kw) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), **kw)


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} not found: {p}")
    if not p.is_file():
        raise DataError(f"{what} is not a file: {p}")
    return p


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (an input's identity in provenance and recipe cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
