"""Recipes are bounded: size, nesting and stage count are checked before anything runs."""

from __future__ import annotations

import time

import pytest

from sr_compress.errors import ConfigError
from sr_compress.recipes import load_recipe, parse_recipe
from sr_compress.recipes.engine import MAX_STAGES


def test_deeply_nested_recipe_is_a_config_error_not_a_recursion_error(tmp_path):
    p = tmp_path / "deep.toml"
    p.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_recipe(p)
    p.write_text("x = " + "[" * 40 + "]" * 40 + "\n[[stage]]\nkind = 'eval'\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_recipe(p)


def test_a_recipe_of_100000_stages_is_refused_at_once(tmp_path):
    p = tmp_path / "many.toml"
    p.write_text("[[stage]]\nkind = 'eval'\nmodel = 'm.pt'\n" * 100_000)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="too large|stages"):
        load_recipe(p)
    with pytest.raises(ConfigError, match=f"at most {MAX_STAGES}"):
        parse_recipe({"stage": [{"kind": "eval"}] * 100_000})
    assert time.perf_counter() - t0 < 10


def test_non_finite_recipe_values_are_refused():
    with pytest.raises(ConfigError, match="finite"):
        parse_recipe({"stage": [{"kind": "slim", "model": "m.pt", "rho": float("nan")}]})
    with pytest.raises(ConfigError, match="finite"):
        parse_recipe({"stage": [{"kind": "train", "train": {"lr": float("inf")}}]})
    with pytest.raises(ConfigError, match="table"):
        parse_recipe([1, 2])  # type: ignore[arg-type]
