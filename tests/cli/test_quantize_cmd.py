"""``srcompress quantize`` and ``srcompress eval`` on quantised graphs: one line per bad input, exit 2."""

from __future__ import annotations

import json
import logging

import pytest

from tests.helpers.cli import one_error_line
from tests.helpers.models import tiny_checkpoint


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)  # onnxruntime's quantiser warns about pre-processing on the root logger
    yield
    logging.disable(logging.NOTSET)


def test_quantize_command_writes_an_int8_graph_that_eval_and_info_read(invoke, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", arch="plain")
    out = tmp_path / "m_int8.onnx"
    code, stdout, err = invoke("quantize", ckpt, "-o", out, "--patches", "2", "--patch-size", "16",
                               "--max-drop", "5", "--json")
    assert code == 0, err
    rep = json.loads(stdout)
    assert rep["precision"] == "int8" and out.exists() and rep["images"]
    code, stdout, err = invoke("eval", out, "--json")
    assert code == 0, err
    ev = json.loads(stdout)["reports"][0]
    assert "(int8)" in ev["method"] and abs(ev["mean"]["psnr_y"] - rep["quant_psnr_y"]) < 5  # whole photos vs crops
    code, stdout, err = invoke("info", out, "--json")
    assert code == 0 and json.loads(stdout)["params"] > 0


def test_quantize_bad_inputs_are_one_line(invoke, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", arch="plain")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = invoke("quantize", ckpt, "-o", tmp_path / "a.onnx", "--calib", empty)
    assert code == 2 and "no images" in one_error_line(err)
    code, _, err = invoke("quantize", ckpt, "-o", tmp_path / "a.onnx", "--precision", "bf16", "--max-drop", "9")
    if code == 0:
        pytest.skip("this onnxruntime runs bfloat16 Conv on the CPU; the missing-kernel error cannot occur")
    assert code == 2 and "bf16" in one_error_line(err)
    code, _, err = invoke("quantize", ckpt, "-o", ckpt)
    assert code == 2 and one_error_line(err)


def test_bench_command_runs_a_checkpoint_in_bf16(invoke, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", arch="plain")
    code, stdout, err = invoke("bench", ckpt, "--size", "32x32", "--runs", "1", "--warmup", "0", "--no-memory",
                               "--precision", "bf16", "--json")
    assert code == 0, err
    out = json.loads(stdout)
    assert out["models"][0]["precision"] == "bf16" and "--precision bf16" in out["command"]
