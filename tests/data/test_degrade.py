"""MATLAB-compatible bicubic resize and the BI / BD / DN degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from sr_compress.data.degrade import (
    NOISE_LEVEL,
    degrade,
    gaussian_blur,
    gaussian_kernel_1d,
    mod_crop,
    nearest_downsample,
)
from sr_compress.errors import ConfigError, InputError
from sr_compress.imresize import imresize

SET5 = SHARED_DATA / "set5"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_matches_real_matlab_imresize(scale):
    """The npz holds MATLAB's imresize(imresize(gt, 1/s), s) of the (already mod-cropped) YCbCr image, all
    three channels, stored as float32 (inputs and outputs rounded): we must agree to about one float32 ulp."""
    path = SET5 / f"matlab_bicubic_x{scale}.npz"
    if not path.is_file():
        pytest.skip(f"reference MATLAB output not available: {path} (set SRCOMPRESS_SHARED_DATA)")
    data = np.load(path)
    worst = 0.0
    for name in ("bird", "butterfly", "head", "woman"):
        gt = torch.from_numpy(data[f"{name}_gt_ycbcr"].astype(np.float64)).permute(2, 0, 1)
        ref = torch.from_numpy(data[f"{name}_bicubic_ycbcr"].astype(np.float64)).permute(2, 0, 1)
        assert gt.shape[1] % scale == 0 and gt.shape[2] % scale == 0  # mod-cropped upstream
        out = imresize(imresize(gt, 1 / scale), scale)
        assert out.dtype == torch.float64 and out.shape == ref.shape
        worst = max(worst, (out - ref).abs().max().item())
    print(f"x{scale}: max |ours - MATLAB| = {worst:.2e}")
    assert worst < 1e-7


def test_matlab_protocol_from_the_png_is_top_left_mod_crop_then_ycbcr():
    """Where the npz comes from: HR PNG → top-left mod-crop → rgb2ycbcr (double) → down/up on all channels."""
    from PIL import Image

    from sr_compress.color import rgb_to_ycbcr

    path, png = SET5 / "matlab_bicubic_x3.npz", SET5 / "HR" / "butterfly.png"
    if not (path.is_file() and png.is_file()):
        pytest.skip(f"reference data not available under {SET5} (set SRCOMPRESS_SHARED_DATA)")
    rgb = torch.from_numpy(np.asarray(Image.open(png).convert("RGB")).copy()).permute(2, 0, 1).double() / 255
    ycc = rgb_to_ycbcr(mod_crop(rgb, 3))  # 256x256 → 255x255
    ref = torch.from_numpy(np.load(path)["butterfly_bicubic_ycbcr"].astype(np.float64)).permute(2, 0, 1)
    assert ycc.shape == ref.shape == (3, 255, 255)
    assert (imresize(imresize(ycc, 1 / 3), 3) - ref).abs().max().item() < 2e-7


@pytest.mark.parametrize("shape,scale,expected", [
    ((3, 17, 23), 0.5, (9, 12)), ((3, 30, 31), 1 / 3, (10, 11)), ((2, 1, 16, 20), 0.25, (4, 5)),
    ((1, 5, 7), 2, (10, 14)), ((3, 4, 6), 3, (12, 18)), ((3, 10, 10), 1.5, (15, 15)),
])
def test_output_size_is_ceil_of_input_times_scale(shape, scale, expected):
    out = imresize(torch.rand(shape), scale)
    assert out.shape == (*shape[:-2], *expected)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    x = torch.full((2, 3, 13, 18), 0.3721, dtype=torch.float64)
    assert (imresize(x, scale) - 0.3721).abs().max().item() < 1e-14


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_down_then_up_of_a_smooth_ramp_is_accurate(scale):
    h, w = 24 * scale, 36 * scale
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64),
                            torch.linspace(0, 1, w, dtype=torch.float64), indexing="ij")
    img = (0.2 + 0.3 * xx + 0.4 * yy).expand(3, h, w)
    back = imresize(imresize(img, 1 / scale), scale)
    # The cubic kernel reproduces linear functions exactly; only the mirrored borders (kernel reach: 2 LR px
    # down, 2 LR px up → 4·scale HR px) bend the ramp, and only slightly.
    m = 4 * scale
    assert (back - img)[:, m:-m, m:-m].abs().max().item() < 1e-12
    assert (back - img).abs().max().item() < 0.01


def test_downscale_is_antialiased():
    # A pixel-level checkerboard (Nyquist) must vanish when halved; without antialiasing it would alias.
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    lr = imresize(checker.double().unsqueeze(0), 0.5)
    assert (lr - 0.5)[:, 2:-2, 2:-2].abs().max().item() < 1e-12
    assert (lr - 0.5).abs().max().item() < 0.05  # the mirrored border leaves a trace in the outer pixels


def test_dtype_batch_and_channel_independence():
    x = torch.rand(2, 3, 20, 22, dtype=torch.float64)
    out = imresize(x, 0.5)
    assert out.dtype == torch.float64
    assert torch.allclose(out[1, 2], imresize(x[1, 2:3], 0.5)[0], atol=0, rtol=0)
    assert torch.allclose(imresize(x.float(), 0.5).double(), out, atol=1e-6)


def test_bad_inputs_raise_library_errors():
    with pytest.raises(InputError, match="float tensor"):
        imresize(torch.zeros(3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(InputError):
        imresize(torch.zeros(8, 8), 0.5)
    with pytest.raises(ConfigError, match="positive"):
        imresize(torch.zeros(3, 8, 8), 0)


def test_mod_crop_keeps_top_left():
    x = torch.arange(7 * 10).view(1, 7, 10)
    assert torch.equal(mod_crop(x, 3), x[:, :6, :9])
    assert mod_crop(torch.zeros(2, 3, 8, 12), 4).shape == (2, 3, 8, 12)


def test_bi_is_clipped_bicubic():
    hr = torch.rand(3, 24, 24)
    lr = degrade(hr, 2, "bi")
    assert lr.shape == (3, 12, 12)
    assert torch.allclose(lr, imresize(hr, 0.5).clamp(0, 1))
    assert lr.min() >= 0 and lr.max() <= 1


def test_bd_gaussian_blur_matches_scipy_replicate():
    from scipy.ndimage import gaussian_filter

    k = gaussian_kernel_1d(7, 1.6)
    assert k.sum().item() == pytest.approx(1.0) and k.argmax().item() == 3
    x = torch.rand(3, 19, 23, dtype=torch.float64)
    # scipy: radius = int(truncate·σ + 0.5) = 3 → 7 taps; mode "nearest" = replicate
    ref = np.stack([gaussian_filter(c, 1.6, mode="nearest", truncate=3 / 1.6) for c in x.numpy()])
    assert np.abs(gaussian_blur(x).numpy() - ref).max() < 1e-12


@pytest.mark.parametrize("scale,offset", [(2, 1), (3, 1), (4, 2)])
def test_bd_downsampling_is_matlab_nearest(scale, offset):
    x = torch.arange(12 * 12, dtype=torch.float64).view(1, 12, 12)
    out = nearest_downsample(x, scale)
    assert torch.equal(out, x[:, offset::scale, offset::scale])
    hr = torch.rand(3, 12, 12, dtype=torch.float64)
    assert torch.allclose(degrade(hr, scale, "bd"), gaussian_blur(hr)[:, offset::scale, offset::scale])


def test_nearest_downsample_mirrors_past_the_border():
    x = torch.arange(10, dtype=torch.float64).view(1, 1, 10)  # ceil(10/4) = 3 columns: 2, 6, then 10 → 9
    assert nearest_downsample(x, 4)[0, 0].tolist() == [2.0, 6.0, 9.0]


def test_dn_noise_is_seeded_level_30_and_clipped():
    hr = torch.full((3, 96, 96), 0.5)
    a = degrade(hr, 2, "dn", generator=torch.Generator().manual_seed(1))
    b = degrade(hr, 2, "dn", generator=torch.Generator().manual_seed(1))
    c = degrade(hr, 2, "dn", generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - 0.5).std().item() == pytest.approx(NOISE_LEVEL, rel=0.05)
    dark = degrade(torch.zeros(3, 32, 32), 2, "dn", generator=torch.Generator().manual_seed(0))
    assert dark.min().item() == 0.0 and (dark == 0).float().mean().item() > 0.4  # half the noise is clipped


def test_unknown_degradation_lists_choices():
    with pytest.raises(ConfigError, match="bi, bd, dn"):
        degrade(torch.rand(3, 8, 8), 2, "jpeg")
