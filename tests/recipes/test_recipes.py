"""Recipe parsing (typed, unknown keys reported) and the runner's per-stage caching."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from sr_compress.errors import ConfigError
from sr_compress.recipes import StageOutput, load_recipe, parse_recipe, register_stage, run_recipe

CALLS: list[str] = []


@dataclass
class EchoParams:
    text: str
    source: str | None = None


@register_stage("echo_test", EchoParams, inputs=("source",))
def _echo(p: EchoParams, ctx) -> StageOutput:
    CALLS.append(ctx.stage.id)
    src = ctx.resolve(p.source).read_text() if p.source else ""
    out = ctx.folder / "out.txt"
    out.write_text(src + p.text)
    return StageOutput(out, {"chars": len(src + p.text)})


def _recipe(tmp_path, text_a="a", text_b="b"):
    return parse_recipe({"name": "t", "out": str(tmp_path / "run"), "stage": [
        {"id": "one", "kind": "echo_test", "text": text_a},
        {"id": "two", "kind": "echo_test", "text": text_b, "source": "@one"},
    ]})


def test_runs_in_order_and_chains_artifacts(tmp_path):
    CALLS.clear()
    results = run_recipe(_recipe(tmp_path))
    assert [r.status for r in results] == ["ran", "ran"]
    assert (tmp_path / "run" / "two" / "out.txt").read_text() == "ab"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [s["summary"]["chars"] for s in summary["stages"]] == [1, 2]
    assert "| two | echo_test | ran |" in (tmp_path / "run" / "summary.md").read_text()


def test_unchanged_stages_are_cached_and_changes_propagate(tmp_path):
    CALLS.clear()
    run_recipe(_recipe(tmp_path))
    assert [r.status for r in run_recipe(_recipe(tmp_path))] == ["cached", "cached"]
    # changing the second stage re-runs only it; changing the first re-runs both (its key feeds the second's)
    assert [r.status for r in run_recipe(_recipe(tmp_path, text_b="c"))] == ["cached", "ran"]
    assert [r.status for r in run_recipe(_recipe(tmp_path, text_a="x", text_b="c"))] == ["ran", "ran"]
    assert (tmp_path / "run" / "two" / "out.txt").read_text() == "xc"
    assert CALLS == ["one", "two", "two", "one", "two"]


def test_file_inputs_are_hashed_by_content(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("1")
    r = parse_recipe({"out": str(tmp_path / "run"), "stage": [{"kind": "echo_test", "text": "!", "source": str(src)}]})
    assert run_recipe(r)[0].status == "ran"
    assert run_recipe(r)[0].status == "cached"
    src.write_text("2")
    assert run_recipe(r)[0].status == "ran"


@pytest.mark.parametrize("data, message", [
    ({"stage": [{"kind": "echo_test", "text": "a", "colour": 1}]}, "unknown key(s) colour"),
    ({"stage": [{"kind": "echo_test"}]}, "missing required key(s) text"),
    ({"stage": [{"kind": "echo_test", "text": 3}]}, "expected str"),
    ({"stage": [{"kind": "nope"}]}, "unknown kind 'nope'"),
    ({"stage": [{"text": "a"}]}, "needs a kind"),
    ({"stage": []}, "no stages"),
    ({"stages": []}, "unknown top-level key(s) stages"),
    ({"stage": [{"kind": "echo_test", "text": "a", "id": "x"}, {"kind": "echo_test", "text": "b", "id": "x"}]},
     "duplicate stage id"),
    ({"stage": [{"kind": "train", "arch": "edsr", "train": {"stepz": 3}}]}, "unknown key(s) stepz"),
    ({"stage": [{"kind": "train", "arch": "edsr", "train": {"steps": -1}}]}, "steps"),
])
def test_bad_recipes_are_reported(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_recipe(data)


def test_unknown_reference_and_bad_toml(tmp_path):
    r = parse_recipe({"out": str(tmp_path / "run"), "stage": [{"kind": "echo_test", "text": "a", "source": "@zz"}]})
    with pytest.raises(ConfigError, match="@zz does not name an earlier stage"):
        run_recipe(r)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(bad)


def test_shipped_recipes_parse():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[2] / "recipes").glob("*.toml")):
        recipe = load_recipe(path)
        assert recipe.stages, path


@dataclass
class FolderParams:
    data: str


@register_stage("folder_test", FolderParams, inputs=("data",))
def _folder(p: FolderParams, ctx) -> StageOutput:
    CALLS.append(ctx.stage.id)
    out = ctx.folder / "n.txt"
    out.write_text(str(len(list(ctx.resolve(p.data).iterdir()))))
    return StageOutput(out)


def _folder_recipe(tmp_path):
    return parse_recipe({"name": "f", "out": str(tmp_path / "run"), "stage": [
        {"id": "a", "kind": "folder_test", "data": str(tmp_path / "A")},
        {"id": "b", "kind": "folder_test", "data": str(tmp_path / "B")},
        {"id": "after_a", "kind": "echo_test", "text": "x", "source": "@a"},
    ]})


def test_editing_one_image_reruns_only_the_stages_that_read_it(tmp_path):
    import numpy as np
    from PIL import Image

    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(tmp_path / folder / f"{i}.png")
    CALLS.clear()
    assert [r.status for r in run_recipe(_folder_recipe(tmp_path))] == ["ran", "ran", "ran"]
    assert [r.status for r in run_recipe(_folder_recipe(tmp_path))] == ["cached"] * 3
    # same name, same size, other pixels: only the content tells
    Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(tmp_path / "A" / "1.png")
    assert [r.status for r in run_recipe(_folder_recipe(tmp_path))] == ["ran", "cached", "ran"]
    (tmp_path / "B" / "2.png").write_bytes((tmp_path / "B" / "0.png").read_bytes())  # a new image
    assert [r.status for r in run_recipe(_folder_recipe(tmp_path))] == ["cached", "ran", "cached"]
    assert [r.status for r in run_recipe(_folder_recipe(tmp_path), fresh=True)] == ["ran"] * 3
    assert CALLS == ["a", "b", "after_a", "a", "after_a", "b", "a", "b", "after_a"]


def test_stages_that_read_data_key_it_by_content():
    from sr_compress.recipes import _STAGES, stage_kinds

    stage_kinds()
    assert "data" in _STAGES.get("train").inputs and "data" in _STAGES.get("eval").inputs


def test_a_code_change_changes_every_key(tmp_path, monkeypatch):
    import sr_compress.recipes.engine as rec

    r = _recipe(tmp_path)
    from sr_compress.recipes import StageContext, stage_key

    ctx = StageContext(r, r.stages[0], tmp_path, {})
    k1 = stage_key(r.stages[0], ctx, {})
    monkeypatch.setattr(rec, "_CODE_DIGEST", "edited")
    assert stage_key(r.stages[0], ctx, {}) != k1


def test_one_duplicate_policy_for_every_registry():
    from sr_compress.models import register_model
    from sr_compress.train.strategies import register_strategy

    for register, name in ((register_model, "edsr"), (register_strategy, "l1"), (register_stage, "echo_test")):
        deco = register(name) if register is not register_stage else register(name, EchoParams)
        with pytest.raises(ValueError, match="registered twice"):
            deco(type("Dup", (), {}))


def test_data_folders_resolve_relative_to_the_recipe(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from sr_compress.checkpoint import save_checkpoint
    from sr_compress.models import build_model

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    save_checkpoint(build_model("edsr", scale=2, n_feats=4, n_blocks=1), tmp_path / "m.pt")
    (tmp_path / "r.toml").write_text('out = "run"\n[[stage]]\nkind = "eval"\nmodel = "m.pt"\ndata = "imgs"\n'
                                     'crops = false\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # run from another folder: the paths still mean the recipe's
    res = run_recipe(load_recipe(tmp_path / "r.toml"))
    assert res[0].status == "ran"
    assert json.loads(Path(res[0].artifact).read_text())[0]["images"][0]["name"] == "a"


def test_bench_stage_names_checkpoint_artifacts_by_stage_id(tmp_path):
    from sr_compress.checkpoint import save_checkpoint
    from sr_compress.models import build_model

    save_checkpoint(build_model("edsr", scale=2, n_feats=4, n_blocks=1), tmp_path / "t.pt")
    data = {"out": str(tmp_path / "run"), "stage": [
        {"id": "wide", "kind": "slim", "model": str(tmp_path / "t.pt"), "rho": 0.25},
        {"id": "thin", "kind": "slim", "model": str(tmp_path / "t.pt"), "rho": 0.5},
        {"id": "b", "kind": "bench", "models": ["@wide", "@thin"], "size": "32x24", "runs": 1, "warmup": 0,
         "memory": False}]}
    res = run_recipe(parse_recipe(data, source=tmp_path / "r.toml"))
    report = json.loads((Path(res[-1].artifact).parent / "report.json").read_text())
    assert [m["name"] for m in report["models"]] == ["wide", "thin"]  # both files are model.pt
