"""Typed configuration from plain data: dataclasses built from dicts with unknown keys reported."""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check_type(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected nothing, got {value!r}")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 1e308:
            raise ConfigError(f"{where}: {value!r} is out of range for a number")
        return float(value)
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")  # TOML and JSON allow nan/inf
    base = origin or tp
    if base in (list, tuple) and isinstance(value, (list, tuple)):
        return base(value)
    if isinstance(base, type) and isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: expected {_name(tp)}, got {value!r}")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types are a ConfigError naming ``where``."""
    names = field_names(cls)
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def parse_size(text: str) -> tuple[int, int]:
    """"1920x1080" → (1920, 1080); positive, at most 65536 px a side and 2^28 px in all, checked before
    anything is allocated (:func:`sr_compress.validate.parse_size`)."""
    from .validate import parse_size as checked

    return checked(text)


def format_size(size: tuple[int, int]) -> str:
    """(1920, 1080) → "1920x1080" (what :func:`parse_size` reads)."""
    return f"{size[0]}x{size[1]}"


def defaults_of(fn: Any) -> dict[str, Any]:
    """The keyword defaults of ``fn``'s signature: the one place a stage's defaults are written, read by the
    operation, its CLI command and its recipe stage alike."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}
