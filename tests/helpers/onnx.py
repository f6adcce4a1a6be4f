"""ONNX graphs as other code bases ship them (torch.onnx.export, no srcompress metadata) and tiny image folders."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

DYNAMIC = {"x": {0: "n", 2: "h", 3: "w"}}


def export_raw(module: nn.Module, path: Path, inputs=None, dynamic=DYNAMIC, names=("x",), channels: int = 3) -> Path:
    """A foreign export: ``torch.onnx.export`` (opset 17) without our metadata."""
    args = inputs if inputs is not None else (torch.rand(1, channels, 16, 16),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, input_names=list(names),
                          output_names=["y"], dynamic_axes=dynamic, opset_version=17)
    return path


class Range255(nn.Module):
    """A net that takes and returns [0, 255] (divides its input by 255 first)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 255.0) * 255.0


def png_folder(folder: Path, n: int = 2, size: tuple[int, int] = (24, 28)) -> Path:
    """``n`` random 8-bit RGB PNGs of ``size`` (H, W) in a new ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(g.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder
