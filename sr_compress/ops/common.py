"""What several operations share: loading a model file (with overrides) and an input's identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import LoadedModel, load_checkpoint
from ..fileio import file_sha256, require_file


def load_model(path: str | Path, *, overrides: dict[str, Any] | None = None) -> LoadedModel:
    """A checkpoint of any supported format; ``overrides`` entries that are None are ignored."""
    return load_checkpoint(path, overrides={k: v for k, v in (overrides or {}).items() if v is not None})


def file_identity(path: str | Path) -> dict[str, str]:
    """``{"path", "sha256"}`` of an input file, as provenance records it."""
    return {"path": str(path), "sha256": file_sha256(require_file(path))}
