"""The pipeline report: teacher and students side by side (quality joined with bench numbers), files written."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.bench import _model, _result
from PIL import Image

from sr_compress.deploy.summary import pipeline_report
from sr_compress.errors import OutputExistsError
from sr_compress.models import build_model, tiny_hparams


def _models():
    torch.manual_seed(0)
    return {"teacher": build_model("edsr", **tiny_hparams("edsr", 2)).eval(),
            "student": build_model("plain", **tiny_hparams("plain", 2)).eval()}


def test_report_joins_quality_with_bench_numbers(tmp_path):
    bench = _result(_model("teacher", steady=80e6, median=0.5), _model("student", steady=20e6, median=0.1))
    rep = pipeline_report(_models(), tmp_path, bench=bench)
    by = {r.label: r for r in rep.rows}
    assert by["student"].latency_ms == pytest.approx(100) and by["teacher"].peak_mb == pytest.approx(80)
    assert by["student"].bound_mb == pytest.approx(40) and by["teacher"].params > by["student"].params
    assert all(-1 <= r.ssim_y <= 1 and 0 < r.psnr_y < 100 for r in rep.rows)  # untrained: any value, finite
    md = (tmp_path / "report.md").read_text()
    assert "| student | plain |" in md and "| teacher | edsr |" in md
    # relative to the first row (the teacher); peak = the larger of first run (45 MB) and steady state
    assert "- student: params ×" in md and "latency ×0.20" in md and "peak memory ×0.562" in md
    assert json.loads((tmp_path / "report.json").read_text())["rows"][0]["label"] == "teacher"
    crops = Image.open(tmp_path / "crops.png")
    assert crops.width > 4 * 96  # bicubic | student | teacher | HR
    assert Image.open(tmp_path / "report.png").width > 0
    with pytest.raises(OutputExistsError):
        pipeline_report(_models(), tmp_path)


def test_report_without_bench_has_quality_only(tmp_path):
    rep = pipeline_report(_models(), tmp_path)
    assert rep.bench_settings is None and rep.rows[0].latency_ms is None
    assert not (tmp_path / "report.png").exists() and "| – |" in (tmp_path / "report.md").read_text()
