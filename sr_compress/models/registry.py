"""The one model registry: ``build_model(arch, **hparams)`` rebuilds any model from plain data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConfigError
from ..registry import Registry

_MODELS: Registry[type] = Registry("arch")
T = TypeVar("T", bound=type)


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
    return _MODELS.get(arch)


def build_model(arch: str, **hparams: Any):
    """Build a registered model; unknown hyper-parameters are an error that lists the valid ones."""
    cls = model_class(arch)
    valid = cls.hparam_names()
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ConfigError(f"{arch}: unknown hyper-parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    try:
        return cls(**hparams)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{arch}: {e}") from None


def tiny_hparams(arch: str, scale: int = 2) -> dict[str, Any]:
    """Hyper-parameters of a tiny registered test variant (4-16 channels) for ``arch``."""
    return model_class(arch).tiny(scale)
