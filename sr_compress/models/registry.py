"""The one model registry: ``build_model(arch, **hparams)`` rebuilds any model from plain data.

Hyper-parameters often come from files written by strangers, so nothing is allocated before they pass
:func:`check_hparams` (plain JSON data, ints and floats in range) and :func:`plan_model` (the module built on
``torch.device("meta")``, which allocates nothing, to learn the parameter count, the shape of every stored
tensor and the activation size the hparams imply). Loaders compare the plan with the tensors a file actually
stores (:func:`check_state_fits`) before they build anything real.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ConfigError
from ..registry import Registry
from ..validate import check_json_data

_MODELS: Registry[type] = Registry("arch")
T = TypeVar("T", bound=type)
log = logging.getLogger(__name__)

#: Bounds on what hyper-parameters may imply. 2^28 parameters is 1 GiB of float32 (EDSR-large has 43 M);
#: the activation bound is per LR pixel of the widest layer's output (EDSR-large ×4: 4096 values).
MAX_PARAMS = 1 << 28
MAX_ACTIVATION_PER_PX = 1 << 18
MAX_INT_HPARAM = 1 << 16
MAX_LIST_HPARAM = 4096
MAX_ABS_FLOAT_HPARAM = 1e6
#: Hyper-parameters that must be > 0 in every family that has them (widths, counts, value ranges).
POSITIVE_HPARAMS = frozenset({"n_feats", "channels", "img_range", "d", "s", "up_feats", "groups", "n_tail",
                              "block_feats", "tail_feats", "widths", "n_colors", "embed_dim", "num_heads",
                              "window_size", "n_resgroups", "reduction", "mlp_ratio", "out", "k", "shuffle"})
#: Hyper-parameters that may be negative (none of the shipped families has one; a family lists its own in
#: ``SRModel.hparam_limits``).
_PLAN_LR = (48, 48)  # LR size of the meta forward that measures activations (divisible by 8 and 16)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: register an ``SRModel`` subclass under ``name`` (its ``arch``)."""

    def deco(cls: T) -> T:
        _MODELS.add(name, cls)
        cls.arch = name
        return cls

    return deco


def list_models() -> list[str]:
    return _MODELS.names()


def model_class(arch: str) -> type:
    if not isinstance(arch, str):
        raise ConfigError(f"arch must be a name, got {type(arch).__name__}")
    return _MODELS.get(arch)


def check_hparams(arch: str, hparams: Any) -> dict[str, Any]:
    """Types and ranges of ``hparams`` for family ``arch``, before anything is built.

    Generic for every family: a str-keyed mapping of JSON data (≤ 4 levels), known names only, every int in
    [0, 2^16] (> 0 for the widths and counts in :data:`POSITIVE_HPARAMS`), every float finite with
    |x| ≤ 1e6, lists ≤ 4096 entries. A family adds ``hparam_limits = {name: (lo, hi)}`` for its own ranges.
    """
    cls = model_class(arch)
    if not isinstance(hparams, Mapping):
        raise ConfigError(f"{arch}: hparams must be a mapping of names to values, got {type(hparams).__name__}")
    check_json_data(hparams, f"{arch} hparams", max_depth=4, max_items=MAX_LIST_HPARAM * 8)
    valid = cls.hparam_names()
    unknown = sorted(str(k) for k in set(hparams) - set(valid))
    if unknown:
        raise ConfigError(f"{arch}: unknown hyper-parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    limits: dict[str, tuple[float | None, float | None]] = dict(getattr(cls, "hparam_limits", {}) or {})
    for name, value in hparams.items():
        _check_value(arch, name, value, limits.get(name), name in POSITIVE_HPARAMS)
    return dict(hparams)


def _check_value(arch: str, name: str, value: Any, limit: tuple | None, positive: bool) -> None:
    stack: list[tuple[Any, str, bool]] = [(value, name, positive)]
    while stack:
        v, where, pos = stack.pop()
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, (list, tuple)):
            if len(v) > MAX_LIST_HPARAM:
                raise ConfigError(f"{arch}: {where} has {len(v)} entries (at most {MAX_LIST_HPARAM})")
            stack.extend((x, f"{where}[{i}]", pos) for i, x in enumerate(v))
            continue
        if isinstance(v, Mapping):
            stack.extend((x, f"{where}.{k}", k in POSITIVE_HPARAMS) for k, x in v.items())
            continue
        v = float(v) if isinstance(v, float) or not isinstance(v, int) and not float(v).is_integer() else int(v)
        if limit is not None:
            lo, hi = limit
        elif isinstance(v, int):
            lo, hi = (1 if pos else 0), MAX_INT_HPARAM
        else:
            lo, hi = -MAX_ABS_FLOAT_HPARAM, MAX_ABS_FLOAT_HPARAM
            if pos and not v > 0:
                raise ConfigError(f"{arch}: {where} must be > 0, got {v!r}")
        if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ConfigError(f"{arch}: {where} = {v!r} is out of range [{lo}, {hi}]")


@dataclass
class ModelPlan:
    """What (arch, hparams) imply, learnt without allocating: every state_dict entry's shape, the
    parameter count, and the largest activation per LR pixel (None if the meta forward is unsupported)."""

    arch: str
    hparams: dict[str, Any]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    params: int = 0
    activation_per_px: float | None = None

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())


def plan_model(arch: str, hparams: Mapping[str, Any]) -> ModelPlan:
    """Check ``hparams`` and build ``arch`` on the meta device (nothing allocated) to learn what it implies;
    ConfigError if it would hold more than :data:`MAX_PARAMS` parameters or its widest activation exceeds
    :data:`MAX_ACTIVATION_PER_PX` values per LR pixel."""
    import torch

    hp = check_hparams(arch, hparams)
    cls = model_class(arch)
    try:
        with torch.device("meta"):
            model = cls(**hp)
    except ConfigError as e:
        raise ConfigError(f"{arch}: {e}") from None
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, RuntimeError) as e:
        raise ConfigError(f"{arch}: {e}") from None
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_PARAMS:
        raise ConfigError(f"{arch}: these hyper-parameters imply {params:,} parameters (at most {MAX_PARAMS:,})")
    plan = ModelPlan(arch, hp, shapes, params, _activation_per_px(model))
    if plan.activation_per_px is not None and plan.activation_per_px > MAX_ACTIVATION_PER_PX:
        raise ConfigError(f"{arch}: these hyper-parameters imply {plan.activation_per_px:,.0f} activation values "
                          f"per input pixel (at most {MAX_ACTIVATION_PER_PX:,})")
    return plan


def _activation_per_px(model: Any) -> float | None:
    """The largest output (values) of any module in a meta forward at a 48×48 LR input, per LR pixel."""
    import torch

    biggest = [0]

    def hook(_m: Any, _i: Any, out: Any) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                biggest[0] = max(biggest[0], t.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        shape = model.input_shape(_PLAN_LR)
        with torch.no_grad():
            model.eval()(torch.empty(shape, device="meta"))
    except Exception as e:  # an op without a meta kernel: the parameter bound still holds
        log.debug("%s: meta forward unsupported (%s); activation size not bounded", model.arch, e)
        return None
    finally:
        for h in handles:
            h.remove()
    return biggest[0] / (_PLAN_LR[0] * _PLAN_LR[1])


def check_state_fits(plan: ModelPlan, state: Any, where: str, error: type[ConfigError] | None = None) -> None:
    """The tensors a file stores are exactly the ones ``plan`` implies (names and shapes), before building.

    A small file whose hparams claim a huge model fails here instead of allocating."""
    import torch

    from ..errors import CheckpointError

    err = error or CheckpointError
    if not isinstance(state, Mapping):
        raise err(f"{where}: state_dict must be a mapping of names to tensors, got {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise err(f"{where}: state_dict entry {str(bad[0])[:80]!r} is not a tensor")
    missing = [k for k in plan.shapes if k not in state]
    unexpected = [k for k in state if k not in plan.shapes]
    desc = f"{plan.arch} {_short(plan.hparams)}"
    if missing or unexpected:
        raise err(f"{where}: weights do not fit {desc} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, shape in plan.shapes.items():
        if tuple(state[k].shape) != shape:
            raise err(f"{where}: weights do not fit {desc} ({k} is {list(state[k].shape)}, the hparams imply "
                      f"{list(shape)})")


def _short(hp: Mapping[str, Any], limit: int = 160) -> str:
    text = str(dict(hp))
    return text if len(text) <= limit else text[:limit] + "…}"


def build_model(arch: str, **hparams: Any):
    """Build a registered model; unknown or out-of-range hyper-parameters are a ConfigError (see
    :func:`plan_model`), checked before anything is allocated."""
    plan = plan_model(arch, hparams)
    try:
        return model_class(arch)(**plan.hparams)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{arch}: {e}") from None


def tiny_hparams(arch: str, scale: int = 2) -> dict[str, Any]:
    """Hyper-parameters of a tiny registered test variant (4-16 channels) for ``arch``."""
    return model_class(arch).tiny(scale)
