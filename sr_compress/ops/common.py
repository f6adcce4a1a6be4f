"""What several operations share: loading a model file (with overrides) and an input's identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import LoadedModel, load_checkpoint
from ..fileio import file_sha256, folder_key, require_file


def load_model(path: str | Path, *, overrides: dict[str, Any] | None = None) -> LoadedModel:
    """A checkpoint of any supported format; ``overrides`` entries that are None are ignored."""
    return load_checkpoint(path, overrides={k: v for k, v in (overrides or {}).items() if v is not None})


def data_inputs(data: str | Path | None) -> list[Path]:
    """A ``data`` argument as operation inputs: a folder (nothing may be written inside it) or an .npz file;
    none for the bundled photos (``None`` / "default")."""
    return [] if data is None or str(data) == "default" else [Path(data)]


def data_key(data: str | Path | None) -> str:
    """The content key of a ``data`` argument (what ``--resume`` compares): the bundled photos' name, a
    folder's :func:`~sr_compress.fileio.folder_key`, or a file's SHA-256."""
    if data is None or str(data) == "default":
        return "default"
    p = Path(data)
    return folder_key(p) if p.is_dir() else f"sha256:{file_sha256(require_file(p, 'data'))}"


def file_identity(path: str | Path) -> dict[str, str]:
    """``{"path", "sha256"}`` of an input file, as provenance records it."""
    return {"path": str(path), "sha256": file_sha256(require_file(path))}
