"""Checkpoints from other SR code bases, imported into our canonical models.

:func:`import_foreign` detects EDSR-PyTorch, BasicSR (EDSR, MSRResNet), MMagic (EDSR) and pytorch-vdsr weights
from their keys (after :mod:`.unpickle` has read files that ``weights_only`` refuses), infers hyper-parameters
from shapes, reports every guess, and builds a model that computes what the source network computes, expressed
in our convention (float32 NCHW in [0, 1]; EDSR-PyTorch's 0..rgb_range input becomes ``img_range = rgb_range``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..models import SCALES, SRModel, build_model
from ..models.base import DEFAULT_RGB_MEAN
from .format import LoadedModel

log = logging.getLogger(__name__)

KNOWN_FORMATS = ("srcompress", "EDSR-PyTorch (EDSR)", "BasicSR (EDSR, MSRResNet)", "MMagic (EDSR)",
                 "pytorch-vdsr (VDSR, also pickled whole modules)", "IMDN (Zheng222/IMDN)", "RFDN (njulj/RFDN)",
                 "RLFN (bytedance/RLFN, also RLFN_Prune)", "Real-ESRGAN SRVGGNetCompact",
                 "FSRCNN (yjn870/FSRCNN-pytorch)")
OVERRIDABLE = ("scale", "res_scale", "img_range", "rgb_mean", "rgb_std", "act")
#: how a user sets each override from the command line (sr_compress.cli._common.model_options)
OVERRIDE_HINTS = {"scale": "--model-scale", "res_scale": "--res-scale", "img_range": "--img-range",
                  "rgb_mean": "overrides={'rgb_mean': ...}", "rgb_std": "overrides={'rgb_std': ...}",
                  "act": "overrides={'act': ...}"}


# ================================================================ format detection and import


def guess_res_scale(n_feats: int, n_blocks: int) -> float:
    """EDSR convention (not stored in weights): 0.1 for the large model (F=256, B=32), else 1."""
    return 0.1 if (n_feats, n_blocks) == (256, 32) else 1.0


def _coerce(name: str, value: Any) -> Any:
    try:
        if name == "scale" and int(value) in SCALES and int(value) == value:
            return int(value)
        if name in ("res_scale", "img_range") and float(value) > 0:
            return float(value)
        if name in ("rgb_mean", "rgb_std") and len(value) == 3 and (name == "rgb_mean" or min(value) > 0):
            return [float(v) for v in value]
        if name == "act" and value in ("relu", "lrelu", "prelu"):
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"invalid {name} {value!r}: scale is one of {SCALES}; res_scale, img_range > 0; "
                      "rgb_mean, rgb_std three numbers (std > 0); act relu, lrelu or prelu")


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Options:
    """User overrides, consumed as the detected format asks for values; records every guess."""

    def __init__(self, overrides: dict[str, Any], where: str) -> None:
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - set(OVERRIDABLE))
        if unknown:
            raise ConfigError(f"unknown override(s) {', '.join(unknown)}; valid: {', '.join(OVERRIDABLE)}")
        self.left = {k: _coerce(k, v) for k, v in given.items()}
        self.where = where
        self.notes: list[str] = []

    def pick(self, name: str, guess: Any, why: str) -> Any:
        """The override if given, else ``guess`` (reported with ``why``)."""
        if name in self.left:
            value = self.left.pop(name)
            self.notes.append(f"{name} = {_fmt(value)} (set by override)")
            return value
        self.notes.append(f"{name} = {_fmt(guess)} ({why}; override with {OVERRIDE_HINTS[name]})")
        return guess

    def fixed(self, name: str, value: Any) -> Any:
        """A value the weights determine; an override must agree."""
        if name in self.left and self.left.pop(name) != value:
            raise CheckpointError(f"{self.where}: the weights are for {name} = {value}; "
                                  f"they cannot be used with a different {name}")
        return value

    def res_scale(self, n_feats: int, n_blocks: int) -> float:
        return self.pick("res_scale", guess_res_scale(n_feats, n_blocks),
                         f"not stored; EDSR convention for F={n_feats}, B={n_blocks}")

    def finish(self, source: str, arch: str) -> None:
        if self.left:
            raise ConfigError(f"{self.where}: {', '.join(sorted(self.left))} does not apply to "
                              f"{source} ({arch}) weights")


@dataclass
class _Plan:
    """A detected format: the model to build and the source convs that feed our convs, in order."""

    source: str
    arch: str
    hparams: dict[str, Any]
    convs: list[str]
    in_scale: torch.Tensor | None = None  # per-input-channel factor folded into the first conv
    out_scale: torch.Tensor | None = None  # per-output-channel factor folded into the last conv
    out_shift: torch.Tensor | None = None  # added to the last conv's bias (after out_scale)
    extra_keys: tuple[str, ...] = field(default_factory=tuple)  # source keys used outside the convs
    #: our state-dict key → the source key, for families imported by renaming (every tensor, not only convs)
    keymap: Callable[[str], str] | None = None


def _conv_weight(sd: dict[str, Any], key: str, where: str) -> torch.Tensor:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        raise CheckpointError(f"{where}: {key} is missing or not a conv weight")
    return t


def _count(sd: dict[str, Any], pattern: str, where: str) -> int:
    """How many numbered blocks match ``pattern`` (one group: the index); they must be 0..n-1."""
    idx = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(pattern, k))})
    if idx != list(range(len(idx))):
        raise CheckpointError(f"{where}: blocks numbered {idx[:6]} are not 0..{len(idx) - 1}")
    return len(idx)


def _upscale(stages: list[torch.Tensor], n_feats: int, where: str) -> int:
    """Scale from the pixel-shuffle convs: two stages of 4F outputs = ×4, one of r²F outputs = ×r."""
    outs = [int(w.shape[0]) for w in stages]
    if outs == [4 * n_feats] * 2:
        return 4
    if len(outs) == 1 and outs[0] in (4 * n_feats, 9 * n_feats):
        return 2 if outs[0] == 4 * n_feats else 3
    raise CheckpointError(f"{where}: upsampler convs with {outs} outputs for F={n_feats} match no scale "
                          f"in {SCALES}")


def _nice(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` decimals when it only differs by float32 noise."""
    r = round(value, digits)
    return r if abs(value - r) <= 1e-6 * max(1.0, abs(value)) else value


def _shift_diag(sd: dict[str, Any], prefix: str, where: str) -> torch.Tensor:
    w = sd.get(f"{prefix}.weight")
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != (3, 3, 1, 1) or f"{prefix}.bias" not in sd:
        raise CheckpointError(f"{where}: {prefix} is not a 3-channel 1x1 mean shift")
    m = w.double().reshape(3, 3)
    if torch.count_nonzero(m - torch.diag(torch.diagonal(m))):
        raise CheckpointError(f"{where}: {prefix} mixes colour channels; not an EDSR mean shift")
    return torch.diagonal(m)


def _edsr_pytorch_shifts(sd: dict[str, Any], opts: _Options) -> tuple:
    """EDSR-PyTorch MeanShift convs → (img_range, rgb_mean, in_scale, out_scale, out_shift), exactly.

    ``sub(X) = S·X + d = S·(X − R·m)`` with ``m = −d / (S·R)``: with ``X = R·x`` that is our
    ``(x − m)·R`` followed by a head whose input channels are scaled by S. ``add(Y) = A·Y + c``
    divided by R is our ``Y'/R + m`` once the last conv is scaled by A and its bias shifted by c − R·m.
    """
    if "sub_mean.weight" not in sd:
        r = opts.pick("img_range", 255.0, "no mean-shift weights stored; EDSR-PyTorch default rgb_range")
        return r, opts.pick("rgb_mean", list(DEFAULT_RGB_MEAN), "not stored; DIV2K mean"), None, None, None
    s, a = _shift_diag(sd, "sub_mean", opts.where), _shift_diag(sd, "add_mean", opts.where)
    d, c = sd["sub_mean.bias"].double(), sd["add_mean.bias"].double()
    found = _nice(float(-d[0] / s[0] / DEFAULT_RGB_MEAN[0]), 0)
    r = opts.pick("img_range", found, "EDSR-PyTorch rgb_range, recovered from sub_mean.bias assuming the "
                  f"DIV2K red mean {DEFAULT_RGB_MEAN[0]}")
    mean = [_nice(float(v), 4) for v in -d / s / r]
    return r, mean, s, a, c - r * torch.tensor(mean, dtype=torch.float64)


def _plan_edsr_pytorch(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels = _conv_weight(sd, "head.0.weight", opts.where).shape[:2]
    n_blocks = _count(sd, r"body\.(\d+)\.body\.0\.weight", opts.where)
    ups = ["tail.0.0", "tail.0.2"] if "tail.0.2.weight" in sd else ["tail.0.0"]
    scale = opts.fixed("scale", _upscale([_conv_weight(sd, f"{u}.weight", opts.where) for u in ups],
                                         n_feats, opts.where))
    img_range, mean, s, a, shift = _edsr_pytorch_shifts(sd, opts)
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks,
          "res_scale": opts.res_scale(n_feats, n_blocks), "channels": channels, "img_range": img_range,
          "rgb_mean": mean}
    convs = ["head.0", *[f"body.{i}.body.{j}" for i in range(n_blocks) for j in (0, 2)], f"body.{n_blocks}",
             *ups, "tail.1"]
    shifts = tuple(f"{m}.{p}" for m in ("sub_mean", "add_mean") for p in ("weight", "bias") if s is not None)
    return _Plan("edsr-pytorch", "edsr", hp, convs, s, a, shift, shifts)


def _edsr_common(sd: dict[str, Any], opts: _Options, ups: list[str]) -> tuple[dict[str, Any], list[str]]:
    """BasicSR / MMagic EDSR: hparams without the range convention, and the conv order."""
    n_feats, channels = _conv_weight(sd, "conv_first.weight", opts.where).shape[:2]
    n_blocks = _count(sd, r"body\.(\d+)\.conv1\.weight", opts.where)
    scale = opts.fixed("scale", _upscale([_conv_weight(sd, f"{u}.weight", opts.where) for u in ups],
                                         n_feats, opts.where))
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks,
          "res_scale": opts.res_scale(n_feats, n_blocks), "channels": channels}
    convs = ["conv_first", *[f"body.{i}.conv{j}" for i in range(n_blocks) for j in (1, 2)], "conv_after_body",
             *ups, "conv_last"]
    return hp, convs


def _plan_basicsr_edsr(sd: dict[str, Any], opts: _Options) -> _Plan:
    ups = ["upsample.0", "upsample.2"] if "upsample.2.weight" in sd else ["upsample.0"]
    hp, convs = _edsr_common(sd, opts, ups)
    hp["img_range"] = opts.pick("img_range", 255.0, "not stored; BasicSR EDSR default")
    hp["rgb_mean"] = opts.pick("rgb_mean", list(DEFAULT_RGB_MEAN), "not stored; DIV2K mean, BasicSR default")
    return _Plan("basicsr", "edsr", hp, convs)


def _plan_mmagic_edsr(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_up = _count(sd, r"upsample\.(\d+)\.upsample_conv\.weight", opts.where)
    hp, convs = _edsr_common(sd, opts, [f"upsample.{k}.upsample_conv" for k in range(n_up)])
    hp["img_range"] = 1.0  # MMagic EDSRNet: (x − mean) / std on [0, 1] input
    hp["rgb_mean"] = opts.pick("rgb_mean", list(DEFAULT_RGB_MEAN), "not stored; DIV2K mean, MMagic default")
    std = torch.tensor(opts.pick("rgb_std", [1.0, 1.0, 1.0], "not stored; MMagic EDSR configs use (1, 1, 1)"),
                       dtype=torch.float64)
    return _Plan("mmagic", "edsr", hp, convs, 1.0 / std, std)


def _plan_basicsr_msrresnet(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels = _conv_weight(sd, "conv_first.weight", opts.where).shape[:2]
    n_blocks = _count(sd, r"body\.(\d+)\.conv1\.weight", opts.where)
    ups = ["upconv1", "upconv2"] if "upconv2.weight" in sd else ["upconv1"]
    scale = opts.fixed("scale", _upscale([_conv_weight(sd, f"{u}.weight", opts.where) for u in ups],
                                         n_feats, opts.where))
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks, "channels": channels}
    convs = ["conv_first", *[f"body.{i}.conv{j}" for i in range(n_blocks) for j in (1, 2)], *ups,
             "conv_hr", "conv_last"]
    return _Plan("basicsr", "msrresnet", hp, convs)


def _plan_vdsr(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels = _conv_weight(sd, "input.weight", opts.where).shape[:2]
    n_layers = _count(sd, r"residual_layer\.(\d+)\.conv\.weight", opts.where)
    scale = opts.pick("scale", 2, "not stored; pytorch-vdsr weights serve x2, x3 and x4 alike, "
                      "give the scale you evaluate at")
    hp = {"scale": scale, "n_feats": n_feats, "n_layers": n_layers, "bias": "input.bias" in sd,
          "channels": channels}
    convs = ["input", *[f"residual_layer.{i}.conv" for i in range(n_layers)], "output"]
    return _Plan("pytorch-vdsr", "vdsr", hp, convs)


# ---------------------------------------------------------------- the lightweight families (renamed keys)


def _renamer(rules: list[tuple[str, str]]) -> Callable[[str], str]:
    """Our key → source key by the first matching ``(regex on our key, replacement)``; unmatched keys stay."""
    compiled = [(re.compile(p), r) for p, r in rules]

    def rename(key: str) -> str:
        for pat, rep in compiled:
            m = pat.fullmatch(key)
            if m:
                return m.expand(rep)
        return key

    return rename


def _block_index(rename: Callable[[str], str]) -> Callable[[str], str]:
    """Upstream numbers blocks from 1 (``IMDB1``, ``B1``, ``block_1``); ours from 0: shift the index."""
    def shifted(key: str) -> str:
        m = re.fullmatch(r"body\.(\d+)\.(.*)", key)
        return rename(f"body.{int(m.group(1)) + 1}.{m.group(2)}" if m else key)

    return shifted


def _count_from_1(sd: dict[str, Any], pattern: str, where: str) -> int:
    idx = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(pattern, k))})
    if idx != list(range(1, len(idx) + 1)):
        raise CheckpointError(f"{where}: blocks numbered {idx[:6]} are not 1..{len(idx)}")
    return len(idx)


def _pixel_shuffle_scale(w: torch.Tensor, channels: int, key: str, where: str) -> int:
    out = int(w.shape[0])
    for s in SCALES:
        if out == channels * s * s:
            return s
    raise CheckpointError(f"{where}: {key} has {out} outputs for {channels} channels; no scale in {SCALES} fits")


def _lightweight_common(sd: dict[str, Any], opts: _Options, head: str, up: str) -> tuple[int, int, int]:
    n_feats, channels = _conv_weight(sd, f"{head}.weight", opts.where).shape[:2]
    scale = opts.fixed("scale", _pixel_shuffle_scale(_conv_weight(sd, f"{up}.weight", opts.where), channels,
                                                     up, opts.where))
    return int(n_feats), int(channels), scale


def _plan_imdn(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels, scale = _lightweight_common(sd, opts, "fea_conv", "upsampler.0")
    n_blocks = _count_from_1(sd, r"IMDB(\d+)\.c1\.weight", opts.where)
    d = int(_conv_weight(sd, "IMDB1.c4.weight", opts.where).shape[0])
    cca = int(_conv_weight(sd, "IMDB1.cca.conv_du.0.weight", opts.where).shape[0])
    opts.fixed("img_range", 1.0)  # IMDN computes on [0, 1] (test_IMDN.py: im / 255)
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks, "channels": channels, "distilled": d,
          "cca_feats": cca}
    rules = [(r"head\.(.*)", r"fea_conv.\1"), (r"body\.(\d+)\.(.*)", r"IMDB\1.\2"), (r"fuse\.(.*)", r"c.0.\1"),
             (r"body_conv\.(.*)", r"LR_conv.\1"), (r"tail\.0\.(.*)", r"upsampler.0.\1")]
    return _Plan("imdn", "imdn", hp, [], keymap=_block_index(_renamer(rules)))


def _img_range_255(opts: _Options, upstream: str) -> float:
    return opts.pick("img_range", 255.0, f"not stored; {upstream} feeds RGB in 0..255 and returns 0..255")


def _plan_rfdn(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels, scale = _lightweight_common(sd, opts, "fea_conv", "upsampler.0")
    n_blocks = _count_from_1(sd, r"B(\d+)\.c1_r\.weight", opts.where)
    d = int(_conv_weight(sd, "B1.c1_d.weight", opts.where).shape[0])
    f = int(_conv_weight(sd, "B1.esa.conv1.weight", opts.where).shape[0])
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks, "channels": channels, "distilled": d,
          "esa_feats": f, "img_range": _img_range_255(opts, "RFDN's test.py (uint2tensor4 divides by 1)")}
    rules = [(r"head\.(.*)", r"fea_conv.\1"), (r"body\.(\d+)\.(.*)", r"B\1.\2"), (r"fuse\.(.*)", r"c.0.\1"),
             (r"body_conv\.(.*)", r"LR_conv.\1"), (r"tail\.0\.(.*)", r"upsampler.0.\1")]
    return _Plan("rfdn", "rfdn", hp, [], keymap=_block_index(_renamer(rules)))


def _plan_rlfn(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels, scale = _lightweight_common(sd, opts, "conv_1", "upsampler.0")
    n_blocks = _count_from_1(sd, r"block_(\d+)\.c1_r\.weight", opts.where)
    mid = int(_conv_weight(sd, "block_1.c1_r.weight", opts.where).shape[0])
    esa = int(_conv_weight(sd, "block_1.esa.conv1.weight", opts.where).shape[0])
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks, "channels": channels, "mid_feats": mid,
          "esa_feats": esa, "img_range": _img_range_255(opts, "RLFN's test_demo.py (x 255)")}
    rules = [(r"head\.(.*)", r"conv_1.\1"), (r"body\.(\d+)\.(.*)", r"block_\1.\2"),
             (r"body_conv\.(.*)", r"conv_2.\1"), (r"tail\.0\.(.*)", r"upsampler.0.\1")]
    return _Plan("rlfn", "rlfn", hp, [], keymap=_block_index(_renamer(rules)))


def _plan_srvgg(sd: dict[str, Any], opts: _Options) -> _Plan:
    convs = sorted(int(m.group(1)) for k, v in sd.items()
                   if (m := re.fullmatch(r"body\.(\d+)\.weight", k)) and isinstance(v, torch.Tensor) and v.dim() == 4)
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs), 2)):
        raise CheckpointError(f"{opts.where}: SRVGGNetCompact convs at body.{convs[:6]} are not body.0, 2, 4, …")
    last = f"body.{convs[-1]}"
    n_feats, channels = _conv_weight(sd, "body.0.weight", opts.where).shape[:2]
    scale = opts.fixed("scale", _pixel_shuffle_scale(sd[f"{last}.weight"], int(channels), last, opts.where))
    if "body.1.weight" in sd:
        act = opts.fixed("act", "prelu")
    else:
        act = opts.pick("act", "relu", "no PReLU slopes stored, so ReLU or LeakyReLU(0.1); not recorded")
    opts.fixed("img_range", 1.0)  # RealESRGANer feeds img / 255
    hp = {"scale": scale, "n_feats": int(n_feats), "n_conv": len(convs) - 2, "act": act, "channels": int(channels)}
    n = len(convs) - 2

    def keymap(key: str) -> str:
        m = re.fullmatch(r"(head|body\.(\d+)|tail)\.(\d+)\.(.*)", key)
        if not m:
            return key
        part, i, j, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        pos = j if part == "head" else (2 * n + 2 if part == "tail" else 2 + 2 * int(i) + j)
        return f"body.{pos}.{rest}"

    return _Plan("real-esrgan", "srvgg", hp, [], keymap=keymap)


def _plan_fsrcnn(sd: dict[str, Any], opts: _Options) -> _Plan:
    d, channels = _conv_weight(sd, "first_part.0.weight", opts.where).shape[:2]
    s = int(_conv_weight(sd, "mid_part.0.weight", opts.where).shape[0])
    conv_idx = sorted(int(m.group(1)) for k, v in sd.items()
                      if (m := re.fullmatch(r"mid_part\.(\d+)\.weight", k)) and v.dim() == 4)
    if len(conv_idx) < 2 or conv_idx != list(range(0, 2 * len(conv_idx), 2)):
        raise CheckpointError(f"{opts.where}: FSRCNN mid_part convs at {conv_idx[:6]} are not 0, 2, 4, …")
    m = len(conv_idx) - 2
    scale = opts.pick("scale", 2, "not stored (the deconv's stride is not in the weights); give the scale the "
                      "weights were trained for")
    hp = {"scale": scale, "d": int(d), "s": s, "m": m, "channels": int(channels)}

    def keymap(key: str) -> str:
        mm = re.fullmatch(r"(head|body\.(\d+)|tail)\.(\d+)\.(.*)", key)
        if not mm:
            return key
        part, i, j, rest = mm.group(1), mm.group(2), int(mm.group(3)), mm.group(4)
        if part == "head":
            return f"first_part.{j}.{rest}" if j < 2 else f"mid_part.{j - 2}.{rest}"
        if part == "tail":
            return f"mid_part.{2 * m + 2 + j}.{rest}" if j < 2 else f"last_part.{rest}"
        return f"mid_part.{2 + 2 * int(i) + j}.{rest}"

    return _Plan("fsrcnn-pytorch", "fsrcnn", hp, [], keymap=keymap)


_DETECT: list[tuple[tuple[str, ...], Callable[[dict[str, Any], _Options], _Plan]]] = [
    (("input.weight", "residual_layer.0.conv.weight", "output.weight"), _plan_vdsr),
    (("head.0.weight", "tail.0.0.weight", "tail.1.weight"), _plan_edsr_pytorch),
    (("conv_first.weight", "conv_after_body.weight", "upsample.0.upsample_conv.weight"), _plan_mmagic_edsr),
    (("conv_first.weight", "conv_after_body.weight", "upsample.0.weight"), _plan_basicsr_edsr),
    (("conv_first.weight", "upconv1.weight", "conv_hr.weight"), _plan_basicsr_msrresnet),
    (("fea_conv.weight", "IMDB1.c1.weight", "c.0.weight", "LR_conv.weight", "upsampler.0.weight"), _plan_imdn),
    (("fea_conv.weight", "B1.c1_d.weight", "B1.esa.conv_max.weight", "c.0.weight", "LR_conv.weight",
      "upsampler.0.weight"), _plan_rfdn),
    (("conv_1.weight", "block_1.c1_r.weight", "block_1.esa.conv4.weight", "conv_2.weight", "upsampler.0.weight"),
     _plan_rlfn),
    (("first_part.0.weight", "mid_part.0.weight", "last_part.weight"), _plan_fsrcnn),
    (("body.0.weight", "body.2.weight"), _plan_srvgg),
]
_CONTAINERS = ("params_ema", "params", "state_dict", "model")
_PREFIXES = ("module.", "generator.", "model.")


def _unknown(obj: Any, where: str) -> CheckpointError:
    known = "; known formats: " + ", ".join(KNOWN_FORMATS)
    if not isinstance(obj, dict) or not obj:
        return CheckpointError(f"{where}: not a dict of weights (a {type(obj).__name__}){known}")
    keys = [str(k) for k in list(obj)[:5]] + (["…"] if len(obj) > 5 else [])
    return CheckpointError(f"{where}: unrecognised checkpoint layout (keys: {', '.join(keys)}){known}")


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _unwrap(raw: Any, where: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Descend params_ema → params → state_dict → model until a flat dict of tensors."""
    obj, notes = raw, []
    for _ in range(len(_CONTAINERS) + 1):
        if _is_state_dict(obj):
            return dict(obj), notes
        key = next((k for k in _CONTAINERS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), None)
        if key is None:
            break
        if key == "params_ema" and isinstance(obj.get("params"), dict):
            notes.append("weights: params_ema (the EMA copy) used, params ignored")
        obj = obj[key]
    raise _unknown(obj, where)


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop ``module.`` / ``model.`` (when on every key) and MMagic's ``generator.`` (keeping only those)."""
    notes: list[str] = []
    while True:
        hits = {p: [k for k in sd if k.startswith(p)] for p in _PREFIXES}
        p = next((p for p in _PREFIXES if hits[p] and (len(hits[p]) == len(sd) or p == "generator.")), None)
        if p is None:
            return sd, notes
        if len(hits[p]) < len(sd):
            other = next(k for k in sd if not k.startswith(p))
            n_other = len(sd) - len(hits[p])
            notes.append(f"weights: the generator's only, {n_other} other entries ignored ({other}…)")
        sd = {k[len(p):]: sd[k] for k in hits[p]}


def _folded(sd: dict[str, torch.Tensor], plan: _Plan, where: str) -> dict[str, torch.Tensor]:
    """Fold per-channel input / output factors and an output shift into the first / last conv.

    Exact: scaling a conv's input channels commutes with zero padding, and the bias is added everywhere.
    """
    src = dict(sd)
    first, last = f"{plan.convs[0]}.weight", plan.convs[-1]
    if plan.in_scale is not None:
        src[first] = (src[first].double() * _per_channel(plan.in_scale, src[first], 1, where)).float()
    if plan.out_scale is not None:
        w = src[f"{last}.weight"].double()
        src[f"{last}.weight"] = (w * _per_channel(plan.out_scale, w, 0, where)).float()
        if isinstance(src.get(f"{last}.bias"), torch.Tensor):
            src[f"{last}.bias"] = (src[f"{last}.bias"].double() * plan.out_scale).float()
    if plan.out_shift is not None:
        if not isinstance(src.get(f"{last}.bias"), torch.Tensor):
            raise CheckpointError(f"{where}: {last} has no bias to take the output mean shift")
        src[f"{last}.bias"] = (src[f"{last}.bias"].double() + plan.out_shift).float()
    return src


def _per_channel(factor: torch.Tensor, w: torch.Tensor, dim: int, where: str) -> torch.Tensor:
    if w.shape[dim] != factor.numel():
        raise CheckpointError(f"{where}: a {w.shape[dim]}-channel conv next to a "
                              f"{factor.numel()}-channel mean shift")
    return factor.view([-1 if i == dim else 1 for i in range(4)])


def _assemble(plan: _Plan, sd: dict[str, torch.Tensor], where: str) -> SRModel:
    """Build ``plan.arch`` and copy the source convs into it, checking every name and shape."""
    from ..models.registry import plan_model

    try:
        implied = plan_model(plan.arch, plan.hparams)
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e}") from None
    stored = sum(t.numel() for t in sd.values() if isinstance(t, torch.Tensor))
    if implied.params > stored + 4096:  # every parameter of ours is copied from a stored conv
        raise CheckpointError(f"{where}: {plan.source} {plan.arch} {_fmt_hparams(plan.hparams)} implies "
                              f"{implied.params:,} parameters, the file stores {stored:,} values")
    try:
        model = build_model(plan.arch, **plan.hparams)
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e}") from None
    if plan.keymap is not None:
        return _assemble_mapped(model, plan, sd, where)
    ours = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(ours) != len(plan.convs):
        raise CheckpointError(f"{where}: {len(plan.convs)} convs in the file, {len(ours)} in {plan.arch}")
    src, state, used = _folded(sd, plan, where), model.state_dict(), set(plan.extra_keys)
    for mine, theirs in zip(ours, plan.convs, strict=True):
        for part in ("weight", "bias"):
            key = f"{mine}.{part}"
            if key in state:
                state[key] = _take(src, f"{theirs}.{part}", state[key].shape, plan, where)
                used.add(f"{theirs}.{part}")
    extra = sorted(set(sd) - used)
    if extra:
        raise CheckpointError(f"{where}: {plan.source} {plan.arch} weights with unexpected keys {extra[:4]}")
    model.load_state_dict(state)
    return model.eval()


def _assemble_mapped(model: SRModel, plan: _Plan, sd: dict[str, torch.Tensor], where: str) -> SRModel:
    """Copy every tensor of ``model`` from its source key (``plan.keymap``); missing, misshapen or left-over
    source keys are one CheckpointError line."""
    assert plan.keymap is not None
    state, used = model.state_dict(), set()
    for mine in state:
        theirs = plan.keymap(mine)
        state[mine] = _take(sd, theirs, state[mine].shape, plan, where)
        used.add(theirs)
    extra = sorted(set(sd) - used)
    if extra:
        raise CheckpointError(f"{where}: {plan.source} {plan.arch} weights with unexpected keys {extra[:4]} "
                              f"(not in a {plan.arch} with {_fmt_hparams(plan.hparams)})")
    model.load_state_dict(state)
    return model.eval()


def _take(src: dict[str, torch.Tensor], key: str, shape: torch.Size, plan: _Plan, where: str) -> torch.Tensor:
    t = src.get(key)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(f"{where}: {key} is missing ({plan.source} {plan.arch} layout)")
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{where}: {key} has shape {list(t.shape)}, expected {list(shape)} for "
                              f"{plan.arch} {_fmt_hparams(plan.hparams)}")
    return t.detach().to(torch.float32)


def _fmt_hparams(hp: dict[str, Any]) -> str:
    shown = ("scale", "n_feats", "n_blocks", "n_layers", "n_conv", "mid_feats", "d", "s", "m", "act")
    return ", ".join(f"{k}={_fmt(v)}" for k, v in hp.items() if k in shown)


def _detect(sd: dict[str, torch.Tensor], where: str) -> Callable[[dict[str, Any], _Options], _Plan]:
    for keys, planner in _DETECT:
        if all(k in sd for k in keys):
            return planner
    if "trunk_net.0.conv1.weight" in sd:
        raise CheckpointError(f"{where}: MMagic MSRResNet weights are not supported (unlike BasicSR's, it "
                              "has no LeakyReLU after the upsampler, which our msrresnet has)")
    raise _unknown(sd, where)


def import_foreign(raw: Any, *, overrides: dict[str, Any], where: str) -> LoadedModel:
    """Detect a foreign checkpoint's format from its keys and rebuild it as one of our models.

    ``raw`` is what :func:`sr_compress.checkpoint.read_raw` returned. ``overrides`` (scale, res_scale,
    img_range, rgb_mean, rgb_std; None values ignored) replace guesses; an override that contradicts the
    weights is a CheckpointError, one that does not apply to the detected format a ConfigError. The model
    takes float32 NCHW input in [0, 1] (Y for VDSR) and computes the source network's function on it.
    """
    opts = _Options(overrides, where)
    sd, notes = _unwrap(raw, where)
    sd, more = _strip_prefixes(sd)
    plan = _detect(sd, where)(sd, opts)
    opts.finish(plan.source, plan.arch)
    model = _assemble(plan, sd, where)
    guesses = notes + more + opts.notes
    log.info("%s: %s weights imported as %s %s", where, plan.source, plan.arch, _fmt_hparams(plan.hparams))
    return LoadedModel(model=model, source=plan.source, guesses=guesses)
