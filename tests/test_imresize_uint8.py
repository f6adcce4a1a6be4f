"""MATLAB's uint8 ``imresize`` path (clamped borders, rounded + saturated first pass) reproduces the published
benchmark LR files bit for bit (../shared/data/benchmarks: SelfExSR's MATLAB-made LR PNGs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from PIL import Image

from sr_compress.errors import InputError
from sr_compress.imresize import imresize

BENCH = SHARED_DATA / "benchmarks"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason=f"needs the benchmark sets in {BENCH}")


def _u8(path) -> torch.Tensor:
    a = np.asarray(Image.open(path))
    return torch.from_numpy((a[..., None] if a.ndim == 2 else a).copy()).permute(2, 0, 1)


@needs_bench
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("setname,images", [("Set5", range(1, 6)), ("Set14", (3, 5, 13))])
def test_uint8_path_reproduces_the_selfexsr_lr_files(setname, images, scale):
    """Set5 (all five), Set14 bridge (greyscale, mode L), comic and ppt3 (saturation at black/white edges)."""
    for i in images:
        stem = BENCH / setname / f"image_SRF_{scale}" / f"img_{i:03d}_SRF_{scale}"
        hr, lr = _u8(f"{stem}_HR.png"), _u8(f"{stem}_LR.png")
        out = imresize(hr, 1 / scale, uint8=True)
        assert out.dtype == torch.uint8 and torch.equal(out, lr), f"{stem}: {(out != lr).sum()} values differ"


@needs_bench
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_uint8_path_reproduces_b100_from_the_jpeg_hr(scale):
    for name in ("101085", "3096"):
        hr, lr = _u8(BENCH / "B100" / "HR" / f"{name}.jpg"), _u8(BENCH / "B100" / "LR_bicubic" / f"X{scale}" /
                                                              f"{name}x{scale}.png")
        hr = hr[:, : lr.shape[1] * scale, : lr.shape[2] * scale]  # mod-crop, top-left kept
        assert torch.equal(imresize(hr, 1 / scale, uint8=True), lr)


def test_uint8_path_rounds_the_first_pass_and_clamps_borders():
    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (3, 24, 30), generator=g, dtype=torch.uint8)
    out = imresize(hr, 0.5, uint8=True)
    ref = imresize(hr.double(), 0.5)  # float path: mirrored borders, no intermediate rounding
    assert out.shape == (3, 12, 15)
    inner = (out.double() - ref)[:, 3:-3, 3:-3].abs()
    assert inner.max() <= 2 and (inner > 0.5).any()  # rounding after the row pass moves some values by 1-2
    flat = torch.full((1, 9, 9), 200, dtype=torch.uint8)
    assert torch.equal(imresize(flat, 1 / 3, uint8=True), torch.full((1, 3, 3), 200, dtype=torch.uint8))
    edge = torch.zeros(1, 8, 8, dtype=torch.uint8)
    edge[..., 4:] = 255  # overshoot of the cubic kernel saturates instead of wrapping
    out = imresize(edge, 0.5, uint8=True)
    assert out.min() == 0 and out.max() == 255


def test_uint8_path_wants_uint8():
    with pytest.raises(InputError, match="uint8 tensor"):
        imresize(torch.rand(3, 8, 8), 0.5, uint8=True)
