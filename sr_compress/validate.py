"""Finite and in range, always: the checks every number from a user, a recipe or a file passes through.

``max(0.0, nan)`` is ``0.0`` and ``nan > tol`` is False, so a check written with plain comparisons lets NaN
through as if it were perfect. Every numeric gate in srcompress uses these helpers instead:

- :func:`finite_float` / :func:`check_int` — a value given by a user, a recipe or a checkpoint;
- :func:`worst_of` — the worst of several errors, NaN-propagating (``max`` is not);
- :func:`within` — ``value <= limit`` that is False for a NaN or infinite value or limit;
- :func:`check_json_data` — plain JSON data (hparams, provenance) with bounded depth and size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError, InputError

#: JSON data read from files (hparams, provenance, metadata) is at most this deep and this big.
MAX_JSON_DEPTH = 32
MAX_JSON_ITEMS = 100_000


def finite_float(value: Any, name: str, *, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False, error: type[InputError] = ConfigError) -> float:
    """``value`` as a finite float within ``[min, max]`` (``min_open``/``max_open``: exclusive), else ``error``.

    Booleans and strings are refused (``True`` is not 1.0 for a hyper-parameter)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_numpy_number(value):
        raise error(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (OverflowError, ValueError):
        raise error(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise error(f"{name} must be a finite number, got {value!r}")
    if min is not None and (v < min or (min_open and v == min)):
        raise error(f"{name} must be {'>' if min_open else '>='} {min:g}, got {value!r}")
    if max is not None and (v > max or (max_open and v == max)):
        raise error(f"{name} must be {'<' if max_open else '<='} {max:g}, got {value!r}")
    return v


def check_int(value: Any, name: str, *, min: int | None = None, max: int | None = None,
              error: type[InputError] = ConfigError) -> int:
    """``value`` as an int within ``[min, max]``; a float with an integral value is accepted, bool is not."""
    if isinstance(value, bool):
        raise error(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) or _is_numpy_number(value):
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise error(f"{name} must be an integer, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise error(f"{name} must be an integer, got {value!r}")
    if min is not None and value < min:
        raise error(f"{name} must be >= {min}, got {value}")
    if max is not None and value > max:
        raise error(f"{name} must be <= {max}, got {value}")
    return value


def _is_numpy_number(value: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, (np.integer, np.floating))


def is_finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def worst_of(values: Iterable[float | None], default: float = 0.0) -> float:
    """The largest of ``values`` (None skipped); NaN if any is NaN — unlike ``max``, which may return 0.0."""
    worst: float | None = None
    for v in values:
        if v is None:
            continue
        v = float(v)
        if math.isnan(v):
            return math.nan
        worst = v if worst is None or v > worst else worst
    return default if worst is None else worst


def within(value: float | None, limit: float, *, strict: bool = False) -> bool:
    """``value <= limit`` (``<`` with ``strict``) where a missing, NaN or infinite value or limit is never within."""
    if value is None or not is_finite(value) or not is_finite(limit):
        return False
    return float(value) < float(limit) if strict else float(value) <= float(limit)


def check_json_data(obj: Any, name: str, *, max_depth: int = MAX_JSON_DEPTH, max_items: int = MAX_JSON_ITEMS,
                    error: type[InputError] = ConfigError, allow_nonfinite: bool = False) -> Any:
    """Check that ``obj`` is plain JSON data (str/int/float/bool/None, lists/tuples, str-keyed mappings),
    at most ``max_depth`` deep and ``max_items`` values in all, iteratively (no recursion to exhaust).
    Floats must be finite unless ``allow_nonfinite``. Returns ``obj``."""
    count = 0
    stack: list[tuple[Any, int, str]] = [(obj, 0, name)]
    while stack:
        v, depth, where = stack.pop()
        count += 1
        if count > max_items:
            raise error(f"{name} is too large (more than {max_items} values)")
        if depth > max_depth:
            raise error(f"{name} is nested too deeply (more than {max_depth} levels)")
        if v is None or isinstance(v, (bool, int, str)):
            continue
        if isinstance(v, float) or _is_numpy_number(v):
            v = float(v)
            if not allow_nonfinite and not math.isfinite(v):
                raise error(f"{where} must be a finite number, got {v!r}")
            continue
        if isinstance(v, Mapping):
            if len(v) > max_items:
                raise error(f"{name} is too large (more than {max_items} values)")
            for k, item in v.items():
                if not isinstance(k, str):
                    raise error(f"{where} has a non-string key {k!r}")
                stack.append((item, depth + 1, f"{where}.{k}"))
            continue
        if isinstance(v, (list, tuple)):
            if len(v) > max_items:
                raise error(f"{name} is too large (more than {max_items} values)")
            stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(v))
            continue
        raise error(f"{where} must be plain data (number, string, list, mapping), got {type(v).__name__}")
    return obj


def parse_size(text: str, *, max_side: int = 1 << 16, max_pixels: int = 1 << 28,
               what: str = "size") -> tuple[int, int]:
    """"1920x1080" → (1920, 1080): positive, each side at most ``max_side``, W×H at most ``max_pixels``."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"{what} must look like 1920x1080, got {text!r}") from None
    return check_size((w, h), what=what, max_side=max_side, max_pixels=max_pixels, text=text)


def check_size(size: tuple[int, int], *, what: str = "size", max_side: int = 1 << 16,
               max_pixels: int = 1 << 28, text: Any = None) -> tuple[int, int]:
    """Positive W×H, each side ≤ ``max_side`` and the area ≤ ``max_pixels`` (before anything is allocated)."""
    w, h = size
    shown = text if text is not None else f"{w}x{h}"
    if w <= 0 or h <= 0:
        raise ConfigError(f"{what} must be positive, got {shown!r}")
    if w > max_side or h > max_side or w * h > max_pixels:
        raise ConfigError(f"{what} {shown} is too large (at most {max_side} px a side and "
                          f"{max_pixels / 1e6:.0f} Mpx)")
    return int(w), int(h)
