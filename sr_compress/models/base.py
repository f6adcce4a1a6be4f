"""The base class every srcompress model derives from, and what it promises.

Public boundary: ``model(x)`` takes a float32 NCHW batch in [0, 1] with ``model.channels`` channels
(3 = RGB, 1 = the Y channel of BT.601 YCbCr) and returns the super-resolved batch, same layout and range
(not clipped). Models with ``pre_upsample = True`` (VDSR) take the bicubic-upscaled image instead of the LR
image, so their input already has the output size; :func:`sr_compress.infer.super_resolve` hides that.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
from torch import nn

from ..errors import ConfigError, InputError
from ..metrics import count_params

if TYPE_CHECKING:  # pragma: no cover
    from .groups import ChannelGroup

SCALES = (2, 3, 4)
DEFAULT_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean used by the EDSR family


class DepthOutputs(NamedTuple):
    """Every depth's result of one forward pass of a multi-depth model (``SRModel.multi_depth``).

    ``outputs[k-1]``: the super-resolved batch after the first k body blocks (same layout and range as
    ``model(x)``); ``features[k-1]``: the output of body block k (N, C, h, w). ``outputs[-1]`` equals ``model(x)``.
    A NamedTuple of lists, so DistributedDataParallel finds every tensor in it.
    """

    outputs: list[torch.Tensor]
    features: list[torch.Tensor]


def check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {SCALES}, got {scale!r}")
    return int(scale)


class SRModel(nn.Module):
    """A super-resolution network whose structure is fully described by ``(arch, hparams)``."""

    arch: ClassVar[str] = "?"
    pre_upsample: ClassVar[bool] = False
    #: True for models that are a chain of conv + activation (+ pixel shuffle), without skips.
    plain: ClassVar[bool] = False
    #: True for models whose forward accepts ``depth=k`` and ``all_depths=True`` (returning
    #: :class:`DepthOutputs`); the trainer's multi-output contract (``TrainContext.forward_depths``).
    multi_depth: ClassVar[bool] = False
    #: The hyper-parameter that counts the ``body`` blocks (what :meth:`truncated_hparams` changes).
    depth_hparam: ClassVar[str | None] = "n_blocks"
    #: List hyper-parameters with one entry per body block: name → (entries before the blocks, entries after).
    per_block_hparams: ClassVar[dict[str, tuple[int, int]]] = {"block_feats": (0, 0)}
    #: The smallest input height / width (network-input pixels) the forward pass accepts.
    min_size: ClassVar[int] = 1
    #: None for nets whose output at a pixel depends only on a bounded neighbourhood at a fixed offset (exact
    #: tiling applies); else why it does not (global pooling, a pooling grid tied to the image size…).
    global_context: ClassVar[str | None] = None
    #: Why this family cannot be plainified (``srcompress plainify``), or None when it may be: the stage then
    #: reads it as an EDSR-style chain (mean shift, head conv, residual conv-ReLU-conv blocks, body conv +
    #: global skip, pixel-shuffle tail) and names the first module that does not fit. Declared per family.
    plainify_refusal: ClassVar[str | None] = None

    def __init__(self, **hparams: Any) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = dict(hparams)
        #: list of provenance records (see :func:`sr_compress.checkpoint.provenance_entry`); not weights.
        self.provenance: list[dict[str, Any]] = []

    # -- description -------------------------------------------------------------------------------------------
    @classmethod
    def hparam_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    @classmethod
    def tiny(cls, scale: int = 2) -> dict[str, Any]:  # pragma: no cover - each family overrides
        raise NotImplementedError

    @property
    def scale(self) -> int:
        return int(self.hparams["scale"])

    @property
    def channels(self) -> int:
        return int(self.hparams.get("channels", 3))

    def check_input_size(self, x: torch.Tensor) -> None:
        """InputError when ``x`` is smaller than :attr:`min_size` (one clear line instead of a torch error)."""
        if min(x.shape[-2:]) < self.min_size:
            raise InputError(f"{self.arch} needs inputs of at least {self.min_size}x{self.min_size} pixels, "
                             f"got {x.shape[-1]}x{x.shape[-2]}")

    # -- slimming (sr_compress.compress.slim) ----------------------------------------------------------------------
    def channel_groups(self) -> list[ChannelGroup]:
        """The coupled channel groups of this model (see :mod:`sr_compress.models.groups`)."""
        raise ConfigError(f"{self.arch} declares no coupled channel groups, so it cannot be slimmed")

    def with_widths(self, widths: dict[str, int]) -> dict[str, Any]:
        """The hparams of this model with the groups' widths replaced by ``widths`` (group name → width)."""
        raise ConfigError(f"{self.arch} declares no coupled channel groups, so it cannot be slimmed")

    def truncated_hparams(self, blocks: int) -> dict[str, Any]:
        """Hyper-parameters of the same model keeping only its first ``blocks`` body blocks (truncate stage):
        the block count set to ``blocks`` and every per-block list (:attr:`per_block_hparams`) cut to match."""
        if self.depth_hparam is None or self.depth_hparam not in self.hparams:
            raise ConfigError(f"{self.arch}: has no block count to truncate")
        hp = {**self.hparams, self.depth_hparam: int(blocks)}
        for name, (lead, trail) in self.per_block_hparams.items():
            if hp.get(name) is not None:
                v = list(hp[name])
                hp[name] = [*v[:lead + blocks], *v[len(v) - trail:len(v)]] if trail else v[:lead + blocks]
        return hp

    def input_shape(self, lr_size: tuple[int, int], batch: int = 1) -> tuple[int, int, int, int]:
        """NCHW shape of the input for an LR image of ``lr_size`` = (W, H): the LR itself, or its
        bicubic-upscaled size for pre-upsampling models (VDSR)."""
        w, h = lr_size
        s = self.scale if self.pre_upsample else 1
        return (batch, self.channels, h * s, w * s)

    def describe(self) -> dict[str, Any]:
        """JSON-able description: arch, hparams, parameter count."""
        return {"arch": self.arch, "hparams": dict(self.hparams), "params": count_params(self)}

    def extra_repr(self) -> str:
        return f"arch={self.arch}, scale={self.hparams.get('scale')}"


class MeanShift(nn.Module):
    """``(x - mean) * img_range`` (sign=-1) or ``x / img_range + mean`` (sign=+1) with fixed buffers."""

    def __init__(self, rgb_mean: tuple[float, ...], img_range: float, sign: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.img_range = float(img_range)
        self.sign = sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sign < 0:
            return (x - self.mean) * self.img_range
        return x / self.img_range + self.mean
