"""Fuzz: hostile recipes (deep nesting, huge stage counts, non-finite values, unknown kinds and keys, escaping
ids, hostile or missing model files). ``srcompress run`` exits 2 with one stderr line, runs nothing heavy and
changes no input."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from _fuzz_budget import budget, fuzz_settings
from _fuzz_workspace import make_workspace, snapshot
from hypothesis import given
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def ws():
    d = Path(tempfile.mkdtemp(prefix="srfuzz_recipes_"))
    yield make_workspace(d)
    shutil.rmtree(d, ignore_errors=True)


def _stage(model: str, extra: str = "") -> str:
    return f'[[stage]]\nid = "e"\nkind = "eval"\nmodel = "{model}"\ndata = "data"\ncrops = false\n{extra}'


@st.composite
def hostile_recipes(draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(["deep_array", "deep_table", "many_stages", "nonfinite", "unknown_kind",
                                 "unknown_key", "bad_ref", "bad_id", "hostile_model", "missing_model", "bad_toml",
                                 "empty", "bad_seed"]))
    if kind == "deep_array":
        n = draw(st.integers(17, 4000))
        return kind, "x = " + "[" * n + "]" * n + "\n" + _stage("m.pt")
    if kind == "deep_table":
        n = draw(st.integers(17, 400))
        return kind, "x = " + "{a = " * n + "1" + "}" * n + "\n" + _stage("m.pt")
    if kind == "many_stages":
        n = draw(st.integers(1001, 40_000))
        return f"{kind} {n}", "".join(f'[[stage]]\nkind = "eval"\nmodel = "m.pt"\nid = "s{i}"\n' for i in range(n))
    if kind == "nonfinite":
        v = draw(st.sampled_from(["nan", "inf", "-inf", "+nan"]))
        where = draw(st.sampled_from(["slim", "train"]))
        if where == "slim":
            return f"{kind} rho={v}", f'[[stage]]\nkind = "slim"\nmodel = "m.pt"\nrho = {v}\n'
        return f"{kind} lr={v}", f'[[stage]]\nkind = "train"\narch = "edsr"\ntrain = {{ steps = 1, lr = {v} }}\n'
    if kind == "unknown_kind":
        return kind, f'[[stage]]\nkind = "{draw(st.text("abcxyz_", min_size=1, max_size=8))}_nope"\n'
    if kind == "unknown_key":
        return kind, _stage("m.pt", f"{draw(st.sampled_from(['bogus', 'rho', 'stage', 'kind2']))} = 1\n")
    if kind == "bad_ref":
        return kind, _stage("@" + draw(st.sampled_from(["nope", "e", "", "../e", "x/../../y"])))
    if kind == "bad_id":
        sid = draw(st.sampled_from(["../x", "a/b", "", ".", "..", "a b", "/abs", "a\\u0000"]))
        return f"{kind} {sid!r}", _stage("m.pt").replace('id = "e"', f'id = "{sid}"')
    if kind == "hostile_model":
        return kind, _stage(draw(st.sampled_from(["hostile.pt", "garbage.pt", "empty.pt", "folder.pt"])))
    if kind == "missing_model":
        return kind, _stage("missing.pt")
    if kind == "bad_seed":
        seed = draw(st.sampled_from(["nan", "1.5", '"x"', "inf"]))
        return f"{kind} {seed}", f"seed = {seed}\n" + _stage("m.pt")
    if kind == "empty":
        return kind, ""
    return kind, draw(st.sampled_from(["[[stage]\n", "= 1\n", "stage = 3\n", "[stage]\nkind = 1\n", "\x00"]))


@fuzz_settings(max_examples=100)
@given(case=hostile_recipes())
def test_fuzz_hostile_recipes_are_refused(case, ws, invoke):
    label, text = case
    root = ws["model"].parent
    recipe = root / "r.toml"
    recipe.write_text(text)
    before = snapshot(root, ws["out"])
    out = ws["out"] / "run"
    with budget("recipes", label):
        code, _, err = invoke("run", recipe, "--out", out)
    assert code == 2, f"{label}: exit {code}: {err[-500:]}"
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if "error" in ln.lower()]  # progress lines of a started stage may precede it
    assert len(errors) == 1 and lines[-1] == errors[0] and lines[-1].startswith("error: "), f"{label}: {err[-500:]}"
    assert "Traceback" not in err, label
    assert snapshot(root, ws["out"]) == before, label
    shutil.rmtree(out, ignore_errors=True)
