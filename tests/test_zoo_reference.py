"""The released lightweight SR nets (../shared/data/weights/zoo) load through ``load_checkpoint`` and compute
what their upstream code computes: each is run on ``refs/<name>/lr.png`` and compared with ``sr.npy``, the
output of the net's own upstream code (data/README.md). Tolerances are the README's thread-to-thread spread
(4.5e-7 for [0,1] nets, 2.2e-4 for [0,255] nets) with a small margin, in the net's own range."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from sr_compress.checkpoint import load_checkpoint
from sr_compress.data.datasets import read_image

ZOO = SHARED_DATA / "weights" / "zoo"
pytestmark = pytest.mark.skipif(not ZOO.is_dir(), reason=f"reference weights not found at {ZOO}")

# file → (arch, scale override or None, [0,255] net)
CASES = {
    "IMDN_x2": ("imdn", None, False), "IMDN_x3": ("imdn", None, False), "IMDN_x4": ("imdn", None, False),
    "RFDN_AIM": ("rfdn", None, True), "rlfn_x4": ("rlfn", None, True), "rlfn_ntire_x4": ("rlfn", None, True),
    "fsrcnn_x2": ("fsrcnn", 2, False), "fsrcnn_x3": ("fsrcnn", 3, False), "fsrcnn_x4": ("fsrcnn", 4, False),
    "realesr-animevideov3": ("srvgg", None, False),
}
TOL_01, TOL_255 = 5e-7, 2.5e-4


def fsrcnn_upstream_y(rgb01: torch.Tensor) -> torch.Tensor:
    """Y exactly as yjn870/FSRCNN-pytorch's ``preprocess`` makes it (refs/fsrcnn_*/meta.json): float32 on
    0..255 with the typo'd 64.738 coefficient, then / 255."""
    img = (rgb01 * 255.0).round()  # the PNG's integers, float32
    r, g, b = img[0], img[1], img[2]
    y = 16.0 + (64.738 * r + 129.057 * g + 25.064 * b) / 256.0
    return (y / 255.0)[None, None]


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_the_upstream_output(name):
    arch, scale, is255 = CASES[name]
    ref_dir = ZOO / "refs" / name
    meta = json.loads((ref_dir / "meta.json").read_text())
    loaded = load_checkpoint(ZOO / f"{name}.pth", overrides={"scale": scale} if scale else None)
    m = loaded.model
    assert m.arch == arch and m.scale == meta["scale"]
    assert sum(p.numel() for p in m.parameters()) == meta["params"]
    lr = read_image(ref_dir / "lr.png")
    x = fsrcnn_upstream_y(lr) if m.channels == 1 else lr[None]
    with torch.no_grad():
        out = m(x).numpy()
    ref = np.load(ref_dir / "sr.npy")
    assert out.shape == ref.shape
    if is255:  # our boundary is [0,1]; compare in the net's own range
        err, tol = float(np.abs(out * 255.0 - ref).max()), TOL_255
        assert m.hparams["img_range"] == 255.0
    else:
        err, tol = float(np.abs(out - ref).max()), TOL_01
    assert err <= tol, f"{name}: max |ours - upstream| = {err:.3g} > {tol:.3g}"


def test_guesses_are_reported():
    g = load_checkpoint(ZOO / "rlfn_x4.pth").guesses
    assert any(s.startswith("img_range = 255") and "--img-range" in s for s in g), g
    g = load_checkpoint(ZOO / "fsrcnn_x3.pth").guesses
    assert any(s.startswith("scale = 2 (not stored") for s in g), g
    g = load_checkpoint(ZOO / "fsrcnn_x3.pth", overrides={"scale": 3}).guesses
    assert "scale = 3 (set by override)" in g
    assert load_checkpoint(ZOO / "IMDN_x2.pth").model.hparams["n_blocks"] == 6
    hp = load_checkpoint(ZOO / "rlfn_ntire_x4.pth").model.hparams
    assert (hp["n_feats"], hp["mid_feats"], hp["n_blocks"], hp["esa_feats"]) == (46, 48, 4, 16)


@pytest.mark.parametrize("name, scale", [("rlfn_ntire_x4", 4), ("IMDN_x4", 4), ("fsrcnn_x3", 3)])
def test_set5_bird_reproduces_the_measured_psnr(name, scale):
    """One Set5 image (bird, MATLAB LR) under data/README.md's protocol: RGB output rounded to 8 bits, Y in
    float, ``s`` px shaved; the per-image reference figure is rounded to 3 decimals."""
    from sr_compress.color import rgb_to_y
    from sr_compress.metrics import psnr

    folder = SHARED_DATA / "benchmarks" / "Set5" / f"image_SRF_{scale}"
    if not folder.is_dir():
        pytest.skip(f"Set5 not found at {folder}")
    lr = read_image(folder / f"img_002_SRF_{scale}_LR.png")
    hr = read_image(folder / f"img_002_SRF_{scale}_HR.png")
    m = load_checkpoint(ZOO / f"{name}.pth", overrides={"scale": scale}).model
    with torch.no_grad():
        if m.channels == 1:  # the weights' own (typo'd) Y input, as the reference was measured
            sr = (m(fsrcnn_upstream_y(lr))[0].clamp(0, 1) * 255).round() / 255
            got = psnr(sr, rgb_to_y(hr.double()), crop=scale, y=False, quantize=False)
        else:
            sr = (m(lr[None])[0].clamp(0, 1) * 255).round() / 255
            got = psnr(sr, hr, crop=scale, y=True, quantize=False)
    meta = json.loads((ZOO / "refs" / name / "meta.json").read_text())
    assert abs(got - meta["set5"]["measured"]["per_image_yfloat"][1]) < 0.0006, got
