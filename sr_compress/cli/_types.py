"""Click parameter types that refuse what click's own let through (NaN, infinities)."""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloat(click.ParamType):
    """A finite float in ``[min, max]`` (``min_open``/``max_open``: exclusive bounds).

    ``click.FloatRange(min=0)`` accepts ``nan`` (every comparison with NaN is False); this type does not.
    """

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None, *, min_open: bool = False,
                 max_open: bool = False) -> None:
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number.", param, ctx)
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number.", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        if self.min is not None and (v < self.min or (self.min_open and v == self.min)):
            self.fail(f"{value!r} is not in the range {self._describe()}.", param, ctx)
        if self.max is not None and (v > self.max or (self.max_open and v == self.max)):
            self.fail(f"{value!r} is not in the range {self._describe()}.", param, ctx)
        return v

    def _describe(self) -> str:
        lo = "" if self.min is None else f"{self.min:g}{'<' if self.min_open else '<='}"
        hi = "" if self.max is None else f"{'<' if self.max_open else '<='}{self.max:g}"
        return f"{lo}x{hi}"

    def __repr__(self) -> str:
        return f"FiniteFloat({self._describe()})"


#: Any finite float; a positive one; a non-negative one.
FINITE = FiniteFloat()
POSITIVE = FiniteFloat(min=0, min_open=True)
NON_NEGATIVE = FiniteFloat(min=0)


class Size(click.ParamType):
    """``WxH`` (e.g. 1920x1080), checked at parse time: positive, at most 65536 px a side and 2^28 px in all
    (:func:`sr_compress.validate.parse_size`), so an absurd size fails before anything is allocated."""

    name = "WxH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        from ..errors import ConfigError
        from ..validate import parse_size

        if isinstance(value, tuple):
            return value
        try:
            return parse_size(value)
        except ConfigError as e:
            self.fail(str(e), param, ctx)


SIZE = Size()
