"""PSNR/SSIM in the evaluation convention (cross-checked with scikit-image) and MAC/parameter counting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sr_compress.errors import InputError
from sr_compress.metrics import count_flops, count_macs, count_params, prepare, psnr, ssim
from sr_compress.models import build_model, list_models, plain_layers, tiny_hparams


def _pair(h: int = 40, w: int = 44, noise: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth RGB image with texture and a noisy copy, float32 in [0,1] (with some values to clip)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(6 * xx + c) * torch.cos(4 * yy) for c in range(3)])
    hr = (base + 0.1 * torch.rand(3, h, w, generator=g)).clamp(0, 1)
    return hr + noise * torch.randn(3, h, w, generator=g), hr


def _np(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("y", [True, False])
@pytest.mark.parametrize("quantize", [True, False])
@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_and_ssim_agree_with_scikit_image(y, quantize, crop):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    sr, hr = _pair()
    a, b = prepare(sr, hr, crop=crop, y=y, quantize=quantize)
    assert a.dtype == torch.float64 and a.shape == (1 if y else 3, 40 - 2 * crop, 44 - 2 * crop)
    ref_psnr = peak_signal_noise_ratio(_np(b), _np(a), data_range=255)
    # skimage filters the whole image (reflect padding) and then averages only the pixels at least
    # (11-1)/2 = 5 px from the border: exactly the 'valid' filtering of MATLAB's ssim_index that we do.
    ref_ssim = structural_similarity(_np(b), _np(a), gaussian_weights=True, sigma=1.5, data_range=255,
                                     use_sample_covariance=False, channel_axis=2)
    assert psnr(sr, hr, crop=crop, y=y, quantize=quantize) == pytest.approx(ref_psnr, abs=1e-6)
    assert ssim(sr, hr, crop=crop, y=y, quantize=quantize) == pytest.approx(ref_ssim, abs=1e-6)


def test_y_psnr_matches_an_independent_bt601_computation():
    from skimage.metrics import peak_signal_noise_ratio

    sr, hr = _pair(seed=3)

    def y255(x):
        r, g, b = (x.double().clamp(0, 1).numpy() * 255)
        return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255

    ref = peak_signal_noise_ratio(y255(hr)[2:-2, 2:-2], y255(sr)[2:-2, 2:-2], data_range=255)
    assert psnr(sr, hr, crop=2, quantize=False) == pytest.approx(ref, abs=1e-6)


def test_known_values_and_the_8bit_rounding_of_y():
    hr = torch.zeros(3, 16, 16)
    sr = torch.full((3, 16, 16), 10 / 255)
    assert psnr(sr, hr, y=False) == pytest.approx(10 * math.log10(255**2 / 100))
    # Y difference = 10·(65.481+128.553+24.966)/255 = 8.588; MATLAB's uint8 rgb2ycbcr rounds Y: 25 − 16 = 9
    assert psnr(sr, hr) == pytest.approx(10 * math.log10(255**2 / 81))
    assert psnr(sr, hr, quantize=False) == pytest.approx(10 * math.log10(255**2 / (2190 / 255) ** 2))


def test_identical_images_quantisation_clipping_and_crop():
    _, hr = _pair()
    assert psnr(hr, hr) == math.inf and ssim(hr, hr) == pytest.approx(1.0, abs=1e-12)
    q = torch.round(hr * 255) / 255
    assert psnr(q + 0.3 / 255, q, y=False) == math.inf  # rounded to the same 8-bit values
    assert psnr(q + 0.3 / 255, q, y=False, quantize=False) == pytest.approx(10 * math.log10(255**2 / 0.09))
    assert psnr(hr, hr, quantize=False) == math.inf
    assert psnr(hr * 0 + 1.7, torch.ones_like(hr)) == math.inf  # both clipped to [0,1]
    bad = hr.clone()
    bad[:, :3] = 1 - bad[:, :3]  # damage only the top 3 rows
    assert psnr(bad, hr, crop=2) < 40 and psnr(bad, hr, crop=3) == math.inf


def test_accepts_batched_single_images_and_y_inputs():
    sr, hr = _pair()
    assert psnr(sr.unsqueeze(0), hr.unsqueeze(0), crop=2) == pytest.approx(psnr(sr, hr, crop=2))
    y_sr, y_hr = sr[:1], hr[:1]  # one channel = already Y: no conversion, whatever ``y`` says
    assert psnr(y_sr, y_hr, y=True) == pytest.approx(psnr(y_sr, y_hr, y=False))
    assert ssim(y_sr, y_hr) == pytest.approx(ssim(y_sr, y_hr, y=False))


def test_rgb_ssim_is_the_mean_over_channels():
    sr, hr = _pair(noise=0.1)
    per_channel = [ssim(sr[c:c + 1], hr[c:c + 1]) for c in range(3)]
    assert ssim(sr, hr, y=False) == pytest.approx(sum(per_channel) / 3, abs=1e-12)
    assert 0.0 < ssim(sr, hr, y=False) < 1.0


@pytest.mark.parametrize("sr,hr,match", [
    (torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16), "C = 1 or 3"),
    (torch.zeros(3, 16, 16), torch.zeros(3, 16, 18), "differ in shape"),
    (torch.zeros(4, 16, 16), torch.zeros(4, 16, 16), "C = 1 or 3"),
    (torch.zeros(3, 16, 16, dtype=torch.int64), torch.zeros(3, 16, 16), "float tensor"),
])
def test_bad_inputs(sr, hr, match):
    with pytest.raises(InputError, match=match):
        psnr(sr, hr)


def test_crop_too_large_and_ssim_too_small():
    with pytest.raises(InputError, match="cannot crop"):
        psnr(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16), crop=8)
    with pytest.raises(InputError, match="at least 11x11"):
        ssim(torch.zeros(3, 20, 20), torch.zeros(3, 20, 20), crop=5)


# -- cost ----------------------------------------------------------------------------------------------------
LR_FULL_HD_X4 = (1, 3, 270, 480)  # → 1920×1080 at ×4


def test_edsr_baseline_x4_is_514_gflop_at_full_hd():
    model = build_model("edsr", scale=4)  # r16f64
    # per LR pixel: head 3·64·9, 16 blocks × 2 + body conv = 33 × 64·64·9, upsampler 64·256·9 at 1× and at 4×
    # the pixels, last conv 64·3·9 at 16× the pixels
    per_px = 3 * 64 * 9 + 33 * 64 * 64 * 9 + 64 * 256 * 9 * (1 + 4) + 64 * 3 * 9 * 16
    assert count_macs(model, LR_FULL_HD_X4) == per_px * 270 * 480
    assert round(count_flops(model, LR_FULL_HD_X4) / 1e9) == 514
    assert count_params(model) == 1_517_571  # EDSR-PyTorch's count without the (fixed) mean-shift convs


def test_plain_35_layers_x4_is_323_gflop_at_full_hd():
    model = build_model("plain", scale=4, layers=plain_layers(34, 64, 4))
    per_px = 3 * 64 * 9 + 33 * 64 * 64 * 9 + 64 * 48 * 9
    assert count_macs(model, LR_FULL_HD_X4) == per_px * 270 * 480
    assert round(count_flops(model, LR_FULL_HD_X4) / 1e9) == 323


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.up(self.conv(x)).mean(dim=(2, 3)))


def test_conv_groups_transposed_conv_and_linear_conventions():
    model = _Mixed()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n, h, w = 2, 10, 12
    expected = n * 8 * h * w * (4 // 2) * 9 + n * 8 * h * w * 6 * 16 + n * 5 * 6
    assert count_macs(model, (n, 4, h, w)) == expected
    assert count_macs(model, (4, h, w)) == expected // n
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model itself is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert count_params(model) == (8 * 2 * 9 + 8) + (8 * 6 * 16 + 6) + (6 * 5 + 5)


@pytest.mark.parametrize("arch", list_models())
def test_every_registered_model_counts_and_scales_with_pixels(arch):
    model = build_model(arch, **tiny_hparams(arch, 2))
    c, k = model.channels, 1 if model.min_size <= 12 else 2
    small, big = count_macs(model, (1, c, 12 * k, 16 * k)), count_macs(model, (1, c, 24 * k, 32 * k))
    if model.global_context is None:
        assert small > 0 and big == 4 * small
    else:  # attention convs run on pooled maps (IMDN: 1×1; ESA: a strided, pooled grid whose size rounds down)
        assert small > 0 and 3.9 * small < big < 4.1 * small and big != 4 * small


def test_bad_input_shape():
    with pytest.raises(InputError, match="input_shape"):
        count_macs(nn.Conv2d(3, 3, 3), (3, 16))
