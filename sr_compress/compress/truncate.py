"""Elastic depth (ASRN): keep the head, the first K body blocks and the tail — no retraining (docs/asrn.md).

``truncate(model, blocks=K)`` builds a standalone model from ``(arch, model.truncated_hparams(K))`` with the
weights of the kept modules, and proves that its output equals the full model's depth-K output (the same
network with body blocks K+1..N skipped; ``model(x, depth=K)`` for multi-depth models such as ASRN). It works
for any modular model with a ``body`` ModuleList: EDSR keeps its post-body conv and global skip, VDSR its global
residual, plain chains their tail. The quality of a truncated model depends on training: only a model trained
with deep supervision (``dsl_psd`` with DSL or PSD) has intermediate depths worth using, and the report warns
when the model's provenance does not show that.

``evaluate_depths(model, pairs)`` is the elastic table behind ``srcompress eval --all-depths``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, first_line
from ..evaluate import evaluate_model
from ..metrics import count_macs
from ..models import SRModel, build_model, count_params
from .base import StageReport, record_stage

#: The largest |difference| to the full model's depth-K output that truncate accepts (float32).
TOLERANCE = 1e-6
#: Training stages whose records say which strategy trained the model.
TRAINING_STAGES = ("train", "finetune")


@dataclass
class TruncateReport(StageReport):
    """What ``truncate`` did: blocks and parameters before/after, the exactness check, warnings."""

    arch: str = ""
    blocks_before: int = 0
    blocks_after: int = 0
    params_before: int = 0
    params_after: int = 0
    max_abs_diff: float = 0.0  # vs the full model's depth-K output, on a random input
    deep_supervision: bool = False  # the provenance shows dsl_psd with DSL or PSD
    warnings: list[str] = field(default_factory=list)


def body_blocks(model: nn.Module) -> nn.ModuleList:
    body = getattr(model, "body", None)
    if not isinstance(body, nn.ModuleList) or len(body) == 0:
        raise ConfigError(f"{getattr(model, 'arch', type(model).__name__)}: has no body blocks (nn.ModuleList) "
                          "to truncate")
    return body


def depth_output(model: SRModel, x: torch.Tensor, blocks: int) -> torch.Tensor:
    """The full model's output after its first ``blocks`` body blocks (later blocks skipped), no gradient."""
    with torch.no_grad():
        if getattr(model, "multi_depth", False):
            return model(x, depth=blocks)
        skipped = copy.deepcopy(model)
        skipped.body = nn.ModuleList(list(skipped.body)[:blocks])
        return skipped(x)


def trained_with_deep_supervision(provenance: Sequence[dict[str, Any]]) -> bool:
    """True when the last training record in ``provenance`` used ``dsl_psd`` with DSL or PSD switched on."""
    for rec in reversed(list(provenance)):
        if rec.get("stage") in TRAINING_STAGES and "strategy" in rec.get("params", {}):
            p = rec["params"]
            opts = p.get("strategy_options") or {}
            return p["strategy"] == "dsl_psd" and bool(opts.get("dsl", True) or opts.get("psd", True))
    return False


def check_input(model: SRModel, size: int = 12, seed: int = 0) -> torch.Tensor:
    """A seeded random input batch of ``model`` (LR, or bicubic-sized for pre-upsampling models)."""
    side = size * model.scale if model.pre_upsample else size
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, model.channels, side, side, generator=g)


def truncate(model: SRModel, *, blocks: int, seed: int = 0) -> tuple[SRModel, TruncateReport]:
    """A standalone model keeping ``model``'s first ``blocks`` body blocks (see the module docstring).

    Raises :class:`ConfigError` for a block count outside 1..N or a model without body blocks, and
    :class:`~sr_compress.errors.SrCompressError` (``ConfigError``) if the output check fails.
    """
    n = len(body_blocks(model))
    if not (isinstance(blocks, int) and 1 <= blocks <= n):
        raise ConfigError(f"blocks must be an integer in 1..{n} for this {model.arch}, got {blocks!r}")
    new = build_model(model.arch, **model.truncated_hparams(blocks))
    keep = {f"body.{i}." for i in range(blocks)}
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith("body.") or any(k.startswith(p) for p in keep)}
    try:
        new.load_state_dict(state, strict=True)
    except RuntimeError as e:  # a slimmed model whose block-K output width differs from what the tail takes
        raise ConfigError(f"truncate: the first {blocks} blocks of this {model.arch} do not fit its tail "
                          f"({first_line(e)})") from None
    new.eval()
    record_stage(new, model, "truncate", blocks=blocks, blocks_before=n)
    x = check_input(model, seed=seed)
    was_training = model.training
    model.eval()
    try:
        ref = depth_output(model, x, blocks)
    finally:
        model.train(was_training)
    with torch.no_grad():
        diff = float((new(x) - ref).abs().max())
    if not diff <= TOLERANCE:
        raise ConfigError(f"truncate: the truncated {model.arch} differs from the depth-{blocks} output by {diff:.3g}")
    deep = trained_with_deep_supervision(model.provenance)
    warnings = [] if deep or blocks == n else [_not_deep(model.arch, f"after {blocks} of {n} blocks")]
    report = TruncateReport("truncate", {"blocks": blocks}, model.arch, n, blocks, count_params(model),
                            count_params(new), diff, deep, warnings)
    return new, report


def _not_deep(arch: str, where: str) -> str:
    return (f"{arch} was not trained with deep supervision (strategy dsl_psd with DSL or PSD; its provenance "
            f"shows none): its output {where} was never trained and will be poor")


@dataclass
class DepthRow:
    """One row of the elastic table: scores and cost of the model truncated to ``depth`` blocks."""

    depth: int
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    params: int
    gflops: float  # at the LR size given to evaluate_depths


@dataclass
class ElasticTable:
    arch: str
    scale: int
    blocks: int
    size: tuple[int, int]  # LR W×H the FLOPs are counted at
    deep_supervision: bool
    rows: list[DepthRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": f"{self.size[0]}x{self.size[1]}"}


def evaluate_depths(model: SRModel, pairs: list, *, size: tuple[int, int] = (320, 180),
                    depths: Sequence[int] | None = None) -> ElasticTable:
    """Y-PSNR/SSIM (our eval protocol) on ``pairs``, params and FLOPs (LR ``size`` W×H) per depth, N..1."""

    n = len(body_blocks(model))
    deep = trained_with_deep_supervision(model.provenance)
    table = ElasticTable(model.arch, model.scale, n, tuple(size), deep,
                         warnings=[] if deep else [_not_deep(model.arch, f"after fewer than {n} blocks")])
    for k in depths or range(n, 0, -1):
        sub, _ = truncate(model, blocks=k)
        mean = evaluate_model(sub, pairs).mean
        table.rows.append(DepthRow(k, mean.psnr_y, mean.ssim_y, mean.psnr_rgb, count_params(sub),
                                   2 * count_macs(sub, sub.input_shape(size)) / 1e9))
    return table
