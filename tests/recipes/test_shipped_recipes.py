"""Every recipe in recipes/ runs end to end on tiny settings (same stages, minutes → seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_compress.compat import tomllib
from sr_compress.recipes import parse_recipe, run_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))


def shrink(stage: dict) -> dict:
    """The same stage with a budget of seconds: 2 steps (per round), tiny patches, a small bench."""
    s = dict(stage)
    kind = s["kind"]
    if kind in ("train", "finetune"):
        train = dict(s.get("train", {}))
        rounds = train.get("rounds", 1)
        train.update(steps=2 * rounds, batch_size=2, patch_size=32, ckpt_every=0, epoch_length=1)
        s["train"] = train
    elif kind == "plainify":
        s.update(patches=2, patch_size=24)
    elif kind == "bench":
        s.update(size="64x48", runs=1, warmup=0, memory=False)
    return s


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_end_to_end_on_tiny_settings(path, tmp_path):
    text = path.read_text()
    assert text.lstrip().startswith("#") and "minutes" in text.split("name =")[0], "say what it shows and its runtime"
    data = tomllib.loads(text)
    if "shared/data" in text and not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("needs ../shared/data (the released VDSR weights), absent here")
    data["out"] = str(tmp_path / "run")
    data["stage"] = [shrink(s) for s in data["stage"]]
    results = run_recipe(parse_recipe(data, source=path))
    assert [r.status for r in results] == ["ran"] * len(results)
    assert all(Path(r.artifact).is_file() for r in results)
    if any(s["kind"] == "report" for s in data["stage"]):
        folder = tmp_path / "run" / "report"
        assert {"report.md", "report.json", "crops.png"} <= {p.name for p in folder.iterdir()}
