"""Inference on RGB images with any model: Y models and pre-upsampling models handled here, once."""

from __future__ import annotations

import torch

from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .imresize import imresize
from .models import SRModel

REAL_CROPS = ((180, 200, 36, 44), (120, 150, 27, 33))  # (top, left, height, width) of skimage's astronaut


def model_input(model: SRModel, lr: torch.Tensor) -> torch.Tensor:
    """What ``model`` takes for an LR batch in the model's colour space (Y or RGB): bicubic-upscaled for VDSR."""
    if model.pre_upsample:
        return imresize(lr, model.scale)
    return lr


def to_model_space(model: SRModel, rgb: torch.Tensor) -> torch.Tensor:
    """RGB [0,1] NCHW → the model's colour space (Y for 1-channel models)."""
    return rgb_to_ycbcr(rgb)[:, :1] if model.channels == 1 else rgb


@torch.no_grad()
def super_resolve(model: SRModel, lr_rgb: torch.Tensor) -> torch.Tensor:
    """Upscale an RGB batch (NCHW, [0,1]) → RGB batch (scale× larger, clipped to [0,1]).

    Y models super-resolve the Y channel; Cb and Cr are bicubic-upscaled (the usual convention).
    """
    model.eval()
    if model.channels == 1:
        ycc = rgb_to_ycbcr(lr_rgb)
        y = model(model_input(model, ycc[:, :1]))
        cbcr = imresize(ycc[:, 1:], model.scale)
        return ycbcr_to_rgb(torch.cat([y, cbcr], 1)).clamp(0, 1)
    return model(model_input(model, lr_rgb)).clamp(0, 1)


def default_real_images() -> list[torch.Tensor]:
    """Two crops (36×44 and 27×33, RGB NCHW in [0, 1]) of scikit-image's astronaut photo."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return [photo[..., t:t + h, left:left + w].contiguous() for t, left, h, w in REAL_CROPS]


def model_space_input(model: SRModel, lr_rgb: torch.Tensor) -> torch.Tensor:
    """What the network takes for an LR RGB batch: Y for 1-channel models, bicubic-upscaled for VDSR."""
    return model_input(model, to_model_space(model, lr_rgb)).float()
