"""benchmarks/ail_reproduction.py runs end to end on a smoke budget and writes its Markdown + JSON report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ail_reproduction.py"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "weights").is_dir(), reason=f"reference weights not under {SHARED_DATA}")
def test_ail_reproduction_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("ail_reproduction", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--quick", "--out", str(tmp_path / "ail.md")])
    data = json.loads((tmp_path / "ail.json").read_text())
    assert data["budget"]["steps"] == 3 and res["seconds"] > 0
    rows = {r["student"]: r for r in data["ail"]["rows"]}
    assert {"(a) plain", "(b) AIL", "(c) KD", "(d) PSPL", "teacher (authors', 64 ch)"} <= set(rows)
    assert rows["teacher (authors', 64 ch)"]["psnr_y"] > rows["authors' f13 plain"]["psnr_y"] > 30
    assert all(r["params"] == 27_612 for k, r in rows.items() if not k.startswith("teacher"))  # 13 channels
    curves = data["pspl"]["curves"]
    assert set(curves) == {"l1", "pspl", "pspl beta=1"} and all(len(c["curve"]) == 2 for c in curves.values())
    md = (tmp_path / "ail.md").read_text()
    assert "| (b) AIL |" in md and "steps to " in md and "mean of last 4" in md
