"""Tiny image files for data tests: random RGB arrays saved as PNG/JPEG (optionally converted, e.g. to grey)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def random_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A seeded random ``(h, w, 3)`` uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_image(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    """Write ``arr`` to ``path`` (parents created), converted to PIL ``mode`` first when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    (im.convert(mode) if mode else im).save(path)
    return path
