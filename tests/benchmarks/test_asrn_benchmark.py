"""Smoke test of benchmarks/asrn_elastic.py on tiny settings (tiny ASRN, 4 steps, small bench): it runs end to
end and writes a table with every variant at every depth."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "asrn_elastic.py"
SET5 = Path(__file__).resolve().parents[3] / "shared" / "data" / "set5" / "HR"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SET5.is_dir(), reason="the shared Set5 images are not on this machine")]


def test_asrn_elastic_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("asrn_elastic", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--out", str(tmp_path), "--tiny", "--bench-size", "64x48"])
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["scores"]) == {"ss", "dsl", "dsl_psd", "dsl_psd_deepest"}
    for variant in res["scores"].values():
        assert [r["depth"] for r in variant["set5"]["rows"]] == [2, 1]
        assert len(variant["photos"]["rows"]) == 2
    assert [r["depth"] for r in res["bench"]] == [2, 1] and res["bench"][0]["gflops"] > res["bench"][1]["gflops"]
    md = (tmp_path / "results.md").read_text()
    assert "drop N→1" in md and md.count("\n") == 6
