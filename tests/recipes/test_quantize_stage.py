"""The ``quantize`` recipe stage: an int8 graph named after the stage, its scores in the run summary."""

from __future__ import annotations

import logging

from sr_compress.recipes import parse_recipe, run_recipe
from tests.helpers.models import tiny_checkpoint


def test_quantize_stage_writes_the_stage_named_graph(tmp_path):
    logging.disable(logging.WARNING)
    try:
        ckpt = tiny_checkpoint(tmp_path / "m.pt", arch="plain")
        data = {"out": "run", "stage": [{"id": "q", "kind": "quantize", "model": str(ckpt), "max_drop": 10.0,
                                         "patches": 2, "patch_size": 16}]}
        res = run_recipe(parse_recipe(data, source=tmp_path / "r.toml"))
    finally:
        logging.disable(logging.NOTSET)
    (r,) = res
    assert r.kind == "quantize" and r.status == "ran" and r.artifact.endswith("q.onnx")
    assert r.summary["precision"] == "int8" and abs(r.summary["drop_db"]) < 10
