"""Foreign-layout state dicts with tiny random weights and independent functional forwards of their SOURCE
networks (EDSR-PyTorch, BasicSR, MMagic, MSRResNet, pytorch-vdsr), plus save/compare helpers."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MEAN = torch.tensor([0.4488, 0.4371, 0.4040])


FEATS, BLOCKS = 8, 2


SCALES = [2, 3, 4]


def _conv(x: torch.Tensor, sd: dict, key: str) -> torch.Tensor:
    w = sd[f"{key}.weight"]
    return F.conv2d(x, w, sd.get(f"{key}.bias"), padding=w.shape[-1] // 2)


def _rand(sd: dict, key: str, c_out: int, c_in: int, g: torch.Generator, bias: bool = True) -> None:
    sd[f"{key}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * (1.0 / (9 * c_in)) ** 0.5
    if bias:
        sd[f"{key}.bias"] = torch.randn(c_out, generator=g) * 0.1


def _stages(scale: int) -> list[int]:
    return [2, 2] if scale == 4 else [scale]


def edsr_pytorch_sd(scale: int, rgb_range: float = 255.0, std=(1.0, 1.0, 1.0), seed: int = 0) -> dict:
    """EDSR-PyTorch layout, MeanShift convs as its common.MeanShift builds them."""
    g, sd, s = torch.Generator().manual_seed(seed), {}, torch.tensor(std)
    sd["sub_mean.weight"] = (torch.eye(3) / s.view(3, 1)).view(3, 3, 1, 1)
    sd["sub_mean.bias"] = -rgb_range * MEAN / s
    _rand(sd, "head.0", FEATS, 3, g)
    for i in range(BLOCKS):
        _rand(sd, f"body.{i}.body.0", FEATS, FEATS, g)
        _rand(sd, f"body.{i}.body.2", FEATS, FEATS, g)
    _rand(sd, f"body.{BLOCKS}", FEATS, FEATS, g)
    for j, r in enumerate(_stages(scale)):
        _rand(sd, f"tail.0.{2 * j}", r * r * FEATS, FEATS, g)
    _rand(sd, "tail.1", 3, FEATS, g)
    sd["add_mean.weight"] = (torch.eye(3) / s.view(3, 1)).view(3, 3, 1, 1)
    sd["add_mean.bias"] = rgb_range * MEAN / s
    return sd


def edsr_pytorch_forward(sd: dict, x: torch.Tensor, scale: int, res_scale: float = 1.0) -> torch.Tensor:
    """EDSR-PyTorch's EDSR.forward; x in 0..rgb_range."""
    x = _conv(_conv(x, sd, "sub_mean"), sd, "head.0")
    res = x
    for i in range(BLOCKS):
        res = res + res_scale * _conv(F.relu(_conv(res, sd, f"body.{i}.body.0")), sd, f"body.{i}.body.2")
    res = _conv(res, sd, f"body.{BLOCKS}") + x
    for j, r in enumerate(_stages(scale)):
        res = F.pixel_shuffle(_conv(res, sd, f"tail.0.{2 * j}"), r)
    return _conv(_conv(res, sd, "tail.1"), sd, "add_mean")


def basicsr_edsr_sd(scale: int, seed: int = 0, up: str = "upsample.{k}") -> dict:
    """BasicSR EDSR layout (``up`` names the k-th pixel-shuffle conv; MMagic's differs)."""
    g, sd = torch.Generator().manual_seed(seed), {}
    _rand(sd, "conv_first", FEATS, 3, g)
    for i in range(BLOCKS):
        _rand(sd, f"body.{i}.conv1", FEATS, FEATS, g)
        _rand(sd, f"body.{i}.conv2", FEATS, FEATS, g)
    _rand(sd, "conv_after_body", FEATS, FEATS, g)
    for j, r in enumerate(_stages(scale)):
        _rand(sd, up.format(j=j, k=2 * j), r * r * FEATS, FEATS, g)
    _rand(sd, "conv_last", 3, FEATS, g)
    return sd


def basicsr_edsr_forward(sd: dict, x: torch.Tensor, scale: int, img_range: float = 255.0,
                         res_scale: float = 1.0) -> torch.Tensor:
    """basicsr.archs.edsr_arch.EDSR.forward; x in [0, 1]."""
    mean = MEAN.view(1, 3, 1, 1)
    x = _conv((x - mean) * img_range, sd, "conv_first")
    res = x
    for i in range(BLOCKS):
        res = res + res_scale * _conv(F.relu(_conv(res, sd, f"body.{i}.conv1")), sd, f"body.{i}.conv2")
    res = _conv(res, sd, "conv_after_body") + x
    for j, r in enumerate(_stages(scale)):
        res = F.pixel_shuffle(_conv(res, sd, f"upsample.{2 * j}"), r)
    return _conv(res, sd, "conv_last") / img_range + mean


def mmagic_edsr_forward(sd: dict, x: torch.Tensor, scale: int, std=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """mmagic EDSRNet.forward: (x − mean) / std, PixelShufflePack upsampler, * std + mean; x in [0, 1]."""
    mean, s = MEAN.view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    x = _conv((x - mean) / s, sd, "conv_first")
    res = x
    for i in range(BLOCKS):
        res = res + _conv(F.relu(_conv(res, sd, f"body.{i}.conv1")), sd, f"body.{i}.conv2")
    res = _conv(res, sd, "conv_after_body") + x
    for j, r in enumerate(_stages(scale)):
        res = F.pixel_shuffle(_conv(res, sd, f"upsample.{j}.upsample_conv"), r)
    return _conv(res, sd, "conv_last") * s + mean


def msrresnet_sd(scale: int, seed: int = 0) -> dict:
    g, sd = torch.Generator().manual_seed(seed), {}
    _rand(sd, "conv_first", FEATS, 3, g)
    for i in range(BLOCKS):
        _rand(sd, f"body.{i}.conv1", FEATS, FEATS, g)
        _rand(sd, f"body.{i}.conv2", FEATS, FEATS, g)
    for j, r in enumerate(_stages(scale)):
        _rand(sd, f"upconv{j + 1}", r * r * FEATS, FEATS, g)
    _rand(sd, "conv_hr", FEATS, FEATS, g)
    _rand(sd, "conv_last", 3, FEATS, g)
    return sd


def msrresnet_forward(sd: dict, x: torch.Tensor, scale: int) -> torch.Tensor:
    """basicsr.archs.srresnet_arch.MSRResNet.forward; x in [0, 1]."""
    out = F.leaky_relu(_conv(x, sd, "conv_first"), 0.1)
    for i in range(BLOCKS):
        out = out + _conv(F.relu(_conv(out, sd, f"body.{i}.conv1")), sd, f"body.{i}.conv2")
    for j, r in enumerate(_stages(scale)):
        out = F.leaky_relu(F.pixel_shuffle(_conv(out, sd, f"upconv{j + 1}"), r), 0.1)
    out = _conv(F.leaky_relu(_conv(out, sd, "conv_hr"), 0.1), sd, "conv_last")
    return out + F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def vdsr_sd(n_layers: int = 3, seed: int = 0) -> dict:
    g, sd = torch.Generator().manual_seed(seed), {}
    _rand(sd, "input", FEATS, 1, g, bias=False)
    for i in range(n_layers):
        _rand(sd, f"residual_layer.{i}.conv", FEATS, FEATS, g, bias=False)
    _rand(sd, "output", 1, FEATS, g, bias=False)
    return sd


def vdsr_forward(sd: dict, x: torch.Tensor, n_layers: int = 3) -> torch.Tensor:
    """pytorch-vdsr Net.forward; x = bicubic-upscaled Y in [0, 1]."""
    out = F.relu(_conv(x, sd, "input"))
    for i in range(n_layers):
        out = F.relu(_conv(out, sd, f"residual_layer.{i}.conv"))
    return _conv(out, sd, "output") + x


class ConvReLUBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class Net(nn.Module):
    """pytorch-vdsr's vdsr.Net, tiny; the reader must never import this class."""

    def __init__(self, c: int = FEATS, n: int = 3) -> None:
        super().__init__()
        self.residual_layer = nn.Sequential(*[ConvReLUBlock(c) for _ in range(n)])
        self.input = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.output = nn.Conv2d(c, 1, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.register_buffer("scratch", torch.zeros(1), persistent=False)  # not part of the state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.residual_layer(self.relu(self.input(x)))) + x


def _save(obj, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _lr(scale: int, channels: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, channels, 12, 12, generator=torch.Generator().manual_seed(seed))


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())
