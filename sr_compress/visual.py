"""Before/after crops: for each image a row of the same zoomed window — bicubic, each model, ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .fileio import atomic_write


def busiest_window(hr: torch.Tensor, box: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``box``×``box`` window of (3,H,W) ``hr`` with the most detail (gradient energy)."""
    y = hr.mean(0)
    energy = (y[1:, :-1] - y[:-1, :-1]).abs() + (y[:-1, 1:] - y[:-1, :-1]).abs()
    box = min(box, energy.shape[0], energy.shape[1])
    sums = torch.nn.functional.avg_pool2d(energy[None, None], box, stride=max(box // 4, 1))[0, 0]
    i = int(sums.argmax())
    stride = max(box // 4, 1)
    return (i // sums.shape[1]) * stride, (i % sums.shape[1]) * stride


def comparison_image(rows: Sequence[tuple[str, Sequence[tuple[str, torch.Tensor]]]], *, box: int = 96,
                     zoom: int = 2):
    """A PIL image: one row per (image name, [(label, (3,H,W) RGB in [0,1]), …]); the last column is the HR
    image whose busiest window is shown for every column, enlarged ``zoom``× with nearest neighbour."""
    from PIL import Image, ImageDraw

    label_h, pad = 16, 4
    n_cols = max(len(cols) for _, cols in rows)
    cell = box * zoom
    canvas = Image.new("RGB", (n_cols * (cell + pad) + pad, len(rows) * (cell + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, cols) in enumerate(rows):
        y0, x0 = busiest_window(cols[-1][1], box)
        top = pad + r * (cell + label_h + pad)
        for c, (label, img) in enumerate(cols):
            crop = img[:, y0:y0 + box, x0:x0 + box].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
            tile = Image.fromarray(crop, "RGB").resize((crop.shape[1] * zoom, crop.shape[0] * zoom), Image.NEAREST)
            left = pad + c * (cell + pad)
            draw.text((left, top), f"{name}: {label}" if c == 0 else label, fill="black")
            canvas.paste(tile, (left, top + label_h))
    return canvas


def save_comparison(path: str | Path, rows, *, force: bool = False, **kw) -> Path:
    """Write :func:`comparison_image` as a PNG, atomically."""
    image = comparison_image(rows, **kw)
    return atomic_write(path, lambda p: image.save(p, format="PNG"), force=force)
