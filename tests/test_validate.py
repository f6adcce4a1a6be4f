"""Finite and in range: the numeric helpers every check uses, and the click type that refuses NaN."""

from __future__ import annotations

import math

import click
import pytest

from sr_compress.errors import ConfigError
from sr_compress.validate import check_int, check_json_data, check_size, finite_float, parse_size, within, worst_of


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1", None, True, 1e309])
def test_finite_float_refuses_non_finite_and_non_numbers(bad):
    with pytest.raises(ConfigError):
        finite_float(bad, "x")


def test_finite_float_ranges():
    assert finite_float(0, "x", min=0) == 0.0
    with pytest.raises(ConfigError, match="> 0"):
        finite_float(0, "x", min=0, min_open=True)
    with pytest.raises(ConfigError, match="<= 1"):
        finite_float(1.5, "x", max=1)
    assert finite_float(2, "x", min=1, max=3) == 2.0


def test_check_int():
    assert check_int(3.0, "n", min=1) == 3
    for bad in (True, 2.5, math.nan, "3"):
        with pytest.raises(ConfigError):
            check_int(bad, "n")
    with pytest.raises(ConfigError, match="<= 10"):
        check_int(11, "n", max=10)


def test_nan_is_never_the_best_value():
    assert max(0.0, math.nan) == 0.0  # the trap these helpers exist for
    assert math.isnan(worst_of([0.1, math.nan, None]))
    assert math.isnan(worst_of([math.nan, 0.1]))
    assert worst_of([None, 0.1, 0.3]) == 0.3
    assert worst_of([]) == 0.0
    assert not within(math.nan, 1.0)
    assert not within(0.5, math.nan)
    assert not within(math.inf, math.inf)
    assert not within(None, 1.0)
    assert within(1.0, 1.0) and not within(1.0, 1.0, strict=True)


def test_json_data_bounded_depth_and_size_without_recursion():
    deep: list = []
    cur = deep
    for _ in range(100_000):  # far deeper than the recursion limit: checked iteratively
        cur.append([])
        cur = cur[0]
    with pytest.raises(ConfigError, match="nested too deeply"):
        check_json_data(deep, "p")
    with pytest.raises(ConfigError, match="too large"):
        check_json_data(list(range(200_000)), "p")
    with pytest.raises(ConfigError, match="plain data"):
        check_json_data({"a": object()}, "p")
    with pytest.raises(ConfigError, match="finite"):
        check_json_data({"a": [1.0, math.nan]}, "p")
    with pytest.raises(ConfigError, match="non-string key"):
        check_json_data({1: 2}, "p")
    assert check_json_data({"a": [1, 2.5, "x", None, {"b": True}]}, "p")


def test_sizes_are_checked_before_allocation():
    assert parse_size("1920x1080") == (1920, 1080)
    for bad in ("100000x100000", "0x5", "-3x4", "axb", "3", "70000x1"):
        with pytest.raises(ConfigError):
            parse_size(bad)
    with pytest.raises(ConfigError, match="too large"):
        check_size((20000, 20000))


def test_finite_float_param_type_refuses_nan_that_floatrange_accepts():
    from sr_compress.cli._types import POSITIVE, FiniteFloat

    assert math.isnan(click.FloatRange(min=0).convert("nan", None, None))  # click's own lets it through
    for bad in ("nan", "inf", "-inf", "1e309", "x"):
        with pytest.raises(click.BadParameter):
            FiniteFloat(min=0).convert(bad, None, None)
    with pytest.raises(click.BadParameter, match="range"):
        POSITIVE.convert("0", None, None)
    with pytest.raises(click.BadParameter, match="range"):
        FiniteFloat(0, 1).convert("1.5", None, None)
    assert FiniteFloat(0, 1).convert("0.25", None, None) == 0.25


def test_size_param_type():
    from sr_compress.cli._types import SIZE

    assert SIZE.convert("320x180", None, None) == (320, 180)
    for bad in ("100000x100000", "20000x20000", "0x1", "axb"):
        with pytest.raises(click.BadParameter):
            SIZE.convert(bad, None, None)
