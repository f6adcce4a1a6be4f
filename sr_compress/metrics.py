"""Image quality (PSNR, SSIM) in the SR field's evaluation convention, and model cost (MACs, parameters).

Quality (docs/metrics.md): images are float (C,H,W) or (1,C,H,W) in [0,1], C = 3 (RGB) or 1
(already the Y channel). Both images are clipped to [0,1]; with ``y=True`` RGB is converted to BT.601 Y
(MATLAB ``rgb2ycbcr``); with ``quantize=True`` every image that is measured is rounded to 8 bits first — RGB
before the conversion and Y after it, exactly as MATLAB's uint8 pipeline does (``round_y=False`` keeps Y in
float after the 8-bit RGB: BasicSR's convention, the "float" Y of ``sr_compress.evaluate``); ``crop`` pixels are
removed at every border. Arithmetic is float64 on the 0–255 scale (peak 255).

Cost: MACs are the multiply-accumulates of Conv2d, ConvTranspose2d and Linear layers for one forward pass at
a given input shape, biases excluded; FLOPs = 2·MACs, the convention of the efficient-SR literature.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from .color import rgb_to_y
from .errors import InputError

__all__ = ["count_flops", "count_macs", "count_params", "prepare", "psnr", "ssim"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (every tensor of ``model.parameters()``)."""
    return sum(p.numel() for p in model.parameters())

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
PEAK = 255.0


def _as_chw(x: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputError(f"{what}: expected a float tensor, got {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise InputError(f"{what}: expected (C,H,W) or (1,C,H,W) with C = 1 or 3, got {tuple(x.shape)}")
    return x


def _to_255(x: torch.Tensor, y: bool, quantize: bool, round_y: bool | None = None) -> torch.Tensor:
    """(C,H,W) in [0,1] → float64 on 0–255: clipped, rounded if ``quantize``, Y if ``y`` and C=3 (rounded
    again if ``round_y``, which defaults to ``quantize``)."""
    x = x.detach().to(torch.float64).clamp(0.0, 1.0) * PEAK
    if quantize:
        x = x.round()
    if y and x.shape[0] == 3:
        x = rgb_to_y(x / PEAK) * PEAK
        if quantize if round_y is None else round_y:
            x = x.round()
    return x


def prepare(sr: torch.Tensor, hr: torch.Tensor, *, crop: int = 0, y: bool = True,
            quantize: bool = True, round_y: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two images exactly as PSNR/SSIM see them: float64 (C,H',W') on 0–255, borders cropped.
    ``round_y``: round Y after the conversion (MATLAB); None = as ``quantize``."""
    a, b = _as_chw(sr, "sr"), _as_chw(hr, "hr")
    if a.shape != b.shape:
        raise InputError(f"sr and hr differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    h, w = a.shape[-2:]
    if crop < 0 or 2 * crop >= min(h, w):
        raise InputError(f"cannot crop {crop} px from each border of a {w}x{h} image")
    a, b = _to_255(a, y, quantize, round_y), _to_255(b, y, quantize, round_y)
    return a[:, crop: h - crop, crop: w - crop], b[:, crop: h - crop, crop: w - crop]


def psnr(sr: torch.Tensor, hr: torch.Tensor, *, crop: int = 0, y: bool = True,
         quantize: bool = True, round_y: bool | None = None) -> float:
    """PSNR in dB (peak 255) of ``sr`` against ``hr``: (C,H,W) or (1,C,H,W) in [0,1], C = 3 RGB or 1 Y.

    ``y``: measure the BT.601 Y channel of RGB images (else all RGB channels together); ``quantize``: round to
    8 bits; ``round_y``: round Y too (MATLAB ``rgb2ycbcr`` on uint8; None = as ``quantize``); ``crop``: pixels
    removed at every border (the scale, by convention). Identical images → inf.
    """
    a, b = prepare(sr, hr, crop=crop, y=y, quantize=quantize, round_y=round_y)
    mse = torch.mean((a - b) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK * PEAK / mse)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x * x) / (2 * SSIM_SIGMA**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (C,H,W) without padding ('valid'): (C, H−10, W−10)."""
    c, k = x.shape[0], g.numel()
    x = nn.functional.conv2d(x.unsqueeze(0), g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return nn.functional.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)[0]


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM map (C, H−10, W−10) of two (C,H,W) images on 0–255 (11×11 Gaussian σ=1.5, K1=0.01, K2=0.03)."""
    if min(a.shape[-2:]) < SSIM_WINDOW:
        n = SSIM_WINDOW
        raise InputError(f"SSIM needs images of at least {n}x{n} px, got {tuple(a.shape)}")
    g = _gaussian_window(a.dtype, a.device)
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(sr: torch.Tensor, hr: torch.Tensor, *, crop: int = 0, y: bool = True,
         quantize: bool = True, round_y: bool | None = None) -> float:
    """SSIM (Wang et al. 2004, MATLAB ``ssim_index``) of ``sr`` against ``hr``; same inputs as :func:`psnr`.

    11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, float64. RGB
    (``y=False``): the mean over the three channels' SSIM.
    """
    a, b = prepare(sr, hr, crop=crop, y=y, quantize=quantize, round_y=round_y)
    return ssim_map(a, b).mean(dim=(1, 2)).mean().item()


# -- cost ----------------------------------------------------------------------------------------------------
def _layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.ConvTranspose2d):  # every input value is scattered to C_out/groups·kh·kw outputs
        kh, kw = module.kernel_size
        return inp.numel() * (module.out_channels // module.groups) * kh * kw
    return out.numel() * module.in_features  # nn.Linear


def _run_counting(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    per: dict[str, int] = {}

    def hook(name: str):
        def count(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
            per[name] = per.get(name, 0) + _layer_macs(mod, args[0], out)

        return count

    counted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, counted)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return per


def macs_by_module(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Multiply-accumulates per counted submodule (name → MACs) of one forward pass; see :func:`count_macs`."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or min(shape) < 1:
        raise InputError(f"input_shape must be (N,C,H,W) or (C,H,W), got {tuple(input_shape)}")
    meta = copy.deepcopy(model).to("meta").eval()
    try:
        return _run_counting(meta, torch.empty(shape, device="meta"))
    except (NotImplementedError, RuntimeError):
        cpu = copy.deepcopy(model).to("cpu").eval()
        return _run_counting(cpu, torch.zeros(shape))


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on an input of ``input_shape`` ((N,)C,H,W).

    Counts Conv2d (output elements × C_in/groups × kh × kw), ConvTranspose2d (input elements × C_out/groups ×
    kh × kw) and Linear (output elements × in_features); biases, activations, adds and pixel shuffles are
    free. Runs a copy of the model on the meta device (no memory, no compute), so ``model`` is not touched and
    large sizes cost nothing; a model that cannot run on meta is run on CPU zeros instead.
    """
    return sum(macs_by_module(model, input_shape).values())


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs = 2 × :func:`count_macs` (one multiply and one add per MAC)."""
    return 2 * count_macs(model, input_shape)
