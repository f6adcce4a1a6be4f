"""Safe output files: atomic writes, no silent overwrite, never over an input."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .errors import DataError, InputError, OutputExistsError


class FileSystemError(InputError):
    """An operating-system error on a path (permission, missing or non-folder parent, disk full, name too
    long, read-only file system), as one line naming the path."""


_ERRNO_TEXT = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file is in the way",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.EROFS: "read-only file system",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EXDEV: "cannot move across file systems",
    errno.EBUSY: "device or resource busy",
    errno.ETXTBSY: "file busy",
    errno.EFBIG: "file too large",
    errno.EMFILE: "too many open files",
}


def is_file_system_error(e: BaseException) -> bool:
    """An OSError srcompress explains as one line (:data:`_ERRNO_TEXT`); others stay internal errors."""
    return isinstance(e, OSError) and e.errno in _ERRNO_TEXT


def _shorten(path: str, limit: int = 120) -> str:
    return path if len(path) <= limit else path[:60] + "…" + path[-(limit - 61):]


def os_error_message(e: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an OSError: what went wrong and on which path (``e.filename`` first, then ``path``)."""
    where = e.filename if e.filename is not None else path
    text = _ERRNO_TEXT.get(e.errno, e.strerror or type(e).__name__)
    if isinstance(where, bytes):
        where = os.fsdecode(where)
    return f"{_shorten(str(where))}: {text}" if where is not None else text


def file_system_error(e: OSError, path: str | os.PathLike | None = None) -> FileSystemError:
    err = FileSystemError(os_error_message(e, path))
    err.errno = e.errno  # type: ignore[attr-defined]
    return err


@contextlib.contextmanager
def clean_os_errors(path: str | os.PathLike | None = None) -> Iterator[None]:
    """Turn a known OSError raised inside into a :class:`FileSystemError` naming the path."""
    try:
        yield
    except OSError as e:
        if not is_file_system_error(e):
            raise
        raise file_system_error(e, path) from e


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _inside(child: str, folder: str) -> bool:
    return child == folder or child.startswith(folder.rstrip(os.sep) + os.sep)


def input_conflict(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> str | None:
    """Why writing ``path`` would touch one of ``inputs`` (None if it would not).

    Considered: the resolved path (symlinks followed, also a symlink whose target does not exist yet), hard
    links (same device and inode), and input folders (a data folder: nothing may be written inside it)."""
    out_real = os.path.realpath(path)
    try:
        out_stat: os.stat_result | None = os.stat(path)
    except (OSError, ValueError):
        out_stat = None
    for src in inputs:
        if src is None:
            continue
        src_real = os.path.realpath(src)
        try:
            src_stat: os.stat_result | None = os.stat(src)
        except (OSError, ValueError):
            src_stat = None
        if src_stat is not None and stat.S_ISDIR(src_stat.st_mode):
            if _inside(out_real, src_real):
                return f"it is inside the input folder {src}"
            continue
        if out_real == src_real:
            return f"it is an input of this command ({src})"
        if out_stat is not None and src_stat is not None and _same_file(out_stat, src_stat):
            return f"it is an input of this command (a hard link to {src})"
    return None


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                 force: bool = False) -> Path:
    """Validate an output path: never an input (see :func:`input_conflict`; ``force`` does not change that),
    not an existing file unless ``force``, not a folder, and a parent that is (or can become) a folder."""
    out = Path(path)
    why = input_conflict(out, inputs)
    if why is not None:
        raise OutputExistsError(f"refusing to write {out}: {why} (--force never replaces an input)")
    with clean_os_errors(out):
        if any(len(os.fsencode(part)) > 255 for part in out.parts):
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(out))
        if out.is_dir():
            raise OutputExistsError(f"{out} is a directory; give a file path")
        if (out.exists() or out.is_symlink()) and not force:
            raise OutputExistsError(f"{out} exists; use --force to replace it")
        for parent in out.absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    raise FileSystemError(f"{out}: {parent} is a file, not a folder")
                break
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, inputs: Iterable = (),
                 force: bool = False) -> Path:
    """Call ``write(tmp_path)`` then move the temp file onto ``path`` in one step (same directory).

    OS errors (permission, disk full, …) become one-line :class:`FileSystemError`; the temp file never
    stays behind."""
    out = check_output(path, inputs=inputs, force=force)
    tmp_path: Path | None = None
    try:
        with clean_os_errors(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name[:200]}.", suffix=".tmp", dir=out.parent)
            tmp_path = Path(tmp)
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
            os.close(fd)
            write(tmp_path)
            os.replace(tmp_path, out)
    finally:
        if tmp_path is not None and tmp_path.exists():
            with contextlib.suppress(OSError):
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


# -- content keys and folder locks -------------------------------------------------------------------------

#: At most this many files are listed for a folder's content key (a data folder, not a file system).
MAX_KEY_FILES = 1_000_000


def folder_key(path: str | os.PathLike, *, suffixes: Iterable[str] | None = None) -> str:
    """A content key of a data folder that is cheap to compute: SHA-256 over the sorted relative names,
    sizes and modification times (ns) of its files (``suffixes``: only those, case-insensitive). A file
    added, removed, renamed, resized or rewritten changes it. Hidden files and folders are ignored."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}" if not root.exists() else f"not a folder: {root}")
    wanted = None if suffixes is None else {s.lower() for s in suffixes}
    entries = []
    with clean_os_errors(root):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.startswith(".") or (wanted is not None and Path(name).suffix.lower() not in wanted):
                    continue
                full = os.path.join(dirpath, name)
                st = os.stat(full)
                entries.append(f"{os.path.relpath(full, root)}\0{st.st_size}\0{st.st_mtime_ns}")
                if len(entries) > MAX_KEY_FILES:
                    raise DataError(f"{root}: more than {MAX_KEY_FILES:,} files; not a data folder")
    h = hashlib.sha256()
    for e in sorted(entries):
        h.update(e.encode("utf-8", "surrogateescape") + b"\n")
    return f"files:{len(entries)}:{h.hexdigest()}"


class FolderLockedError(InputError):
    """Another process holds the lock of an output folder (a second ``srcompress run`` into one folder)."""


LOCK_NAME = ".srcompress.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, wait: bool = False, what: str = "run folder") -> Iterator[Path]:
    """Hold an exclusive ``fcntl.flock`` on ``<folder>/.srcompress.lock`` for the duration.

    The lock file records who holds it (pid, host, start time, command). Without ``wait`` a held lock is a
    :class:`FolderLockedError` naming the holder; with ``wait`` the call blocks until it is free. The lock is
    released when the holder exits, even when it is killed (the kernel drops flock locks with the file)."""
    import datetime as _dt
    import fcntl
    import socket
    import sys

    root = Path(folder)
    with clean_os_errors(root):
        root.mkdir(parents=True, exist_ok=True)
        lock = root / LOCK_NAME
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_lock(fd)
            raise FolderLockedError(f"{what} {root} is in use by {holder}; wait for it to finish "
                                    "or use another folder") from None
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        info = f"pid {os.getpid()} on {socket.gethostname()} since {stamp} ({' '.join(sys.argv[:3])[:120]})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock


def _read_lock(fd: int) -> str:
    try:
        text = os.pread(fd, 400, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"
