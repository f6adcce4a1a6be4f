"""Benchmark reports (Markdown, JSON, PNG) and the budget gate, library and CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers.bench import _model, _result
from helpers.cli import one_error_line
from PIL import Image

from sr_compress.deploy.bench import BenchResult
from sr_compress.deploy.report import (
    check_budgets,
    load_budgets,
    markdown_table,
    replace_between_markers,
    write_report,
)
from sr_compress.errors import ConfigError, OutputExistsError

REPO = Path(__file__).resolve().parents[2]


def _budgets(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "budgets.toml"
    p.write_text(text)
    return p


# -- reports -------------------------------------------------------------------------------------------------
def test_write_report_writes_markdown_json_and_a_png(tmp_path):
    result = _result(_model(), _model("edsr_tiny", 300e6, 310e6, 0.75, 200e6))
    files = write_report(result, tmp_path / "rep")
    md = files.markdown.read_text()
    for text in ("Test CPU (2 cores)", "ORT_ENABLE_ALL", "output 320×180", "float32", "2 threads"):
        assert text in md
    assert "| plain_tiny | ORT lowmem | 160×90 | 12.5 | 123,456 | 40.0 | 45.0 (1.12×) | 52.1 (1.30×) | 1 | 57.1 |" in md
    assert "srcompress bench x.onnx" in md
    back = BenchResult.from_dict(json.loads(files.json.read_text()))
    assert back == result
    with Image.open(files.png) as im:
        assert im.format == "PNG" and im.width > 600 and im.height > 300


def test_psnr_adds_a_column_and_a_scatter_panel(tmp_path):
    result = _result(_model(), _model("edsr_tiny", 300e6, 310e6, 0.75, 200e6))
    plain = write_report(result, tmp_path / "a")
    with_psnr = write_report(result, tmp_path / "b", {"plain_tiny": 30.5, "edsr_tiny": 31.25})
    assert "| PSNR dB |" in with_psnr.markdown.read_text() and "31.25" in with_psnr.markdown.read_text()
    assert json.loads(with_psnr.json.read_text())["psnr"] == {"plain_tiny": 30.5, "edsr_tiny": 31.25}
    with Image.open(plain.png) as a, Image.open(with_psnr.png) as b:
        assert b.width > a.width * 1.3  # three panels instead of two


def test_report_refuses_to_overwrite_without_force(tmp_path):
    write_report(_result(), tmp_path)
    with pytest.raises(OutputExistsError, match="--force"):
        write_report(_result(), tmp_path)
    write_report(_result(), tmp_path, force=True)


def test_missing_measurements_show_as_dashes():
    m = replace(_model(), memory=None, first_ratio=None, steady_ratio=None, pct_peak=None)
    row = markdown_table(_result(m)).splitlines()[2]
    assert row.count("–") == 5  # first, steady, retained, total, % peak


def test_replace_between_markers():
    text = "intro\n<!-- bench:begin -->\nold\n<!-- bench:end -->\noutro\n"
    assert replace_between_markers(text, "new table") == (
        "intro\n<!-- bench:begin -->\nnew table\n<!-- bench:end -->\noutro\n")
    with pytest.raises(ConfigError, match="markers"):
        replace_between_markers("no markers", "x")


# -- budgets -------------------------------------------------------------------------------------------------
def test_budget_violations_name_model_measure_and_budget(tmp_path):
    p = _budgets(tmp_path, "[models.plain_tiny]\npeak_mb = 40\nlatency_ms = 200\nbound_ratio = 1.2\n")
    v = check_budgets(_result(), p)
    assert [x.message for x in v] == [
        "plain_tiny: peak memory 52.1 MB > budget 40 MB (steady state)",
        "plain_tiny: peak memory 1.30× the bound > budget 1.2× (steady state)",
        "plain_tiny: latency 250.0 ms > budget 200 ms (median of 3 runs)",
    ]
    first_worse = _model(first=60e6, steady=50e6)
    assert "(first run)" in check_budgets(_result(first_worse), p)[0].message


def test_within_budget_and_unbudgeted_models_pass(tmp_path):
    p = _budgets(tmp_path, "[models.plain_tiny]\npeak_mb = 60\nlatency_ms = 300\n")
    assert check_budgets(_result(_model(), _model("other")), p) == []
    # an entry named "stem [preset]" is matched by its file stem
    assert len(check_budgets(_result(_model("plain_tiny [arena]", steady=70e6)), p)) == 1


@pytest.mark.parametrize("text, match", [
    ("[models.plain_tiny]\npeak_gb = 1\n", "unknown key.*peak_gb"),
    ("[defaults]\nsize = \"1x1\"\nspeed = 3\n", "unknown key.*speed"),
    ("[limits]\nx = 1\n", "unknown table.*limits"),
    ("[models.plain_tiny]\npeak_mb = \"big\"\n", "peak_mb"),
    ("[models]\nplain_tiny = 3\n", "one table per model"),
    ("[models.plain_tiny\n", "not valid TOML"),
])
def test_bad_budget_files_are_config_errors(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_budgets(_budgets(tmp_path, text))


def test_memory_budget_without_a_memory_measurement_is_an_error(tmp_path):
    p = _budgets(tmp_path, "[models.plain_tiny]\npeak_mb = 60\n")
    with pytest.raises(ConfigError, match="not measured"):
        check_budgets(_result(replace(_model(), memory=None)), p)


def test_the_shipped_budgets_file_is_valid():
    b = load_budgets(REPO / "export" / "budgets.toml")
    assert b.defaults.size and b.models
    assert all(m.peak_mb or m.latency_ms or m.bound_ratio for m in b.models.values())


# -- CLI gate ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.models import build_model, plain_layers

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gate") / "plain_tiny.onnx"
    export_onnx(build_model("plain", scale=2, layers=plain_layers(2, 8, 2)), path, validate=False)
    return path


def test_cli_gate_fails_then_passes_and_writes_the_report(invoke, tmp_path, tiny_onnx):
    defaults = "[defaults]\nsize = \"48x32\"\nruns = 1\nwarmup = 0\nthreads = 1\n"
    tight = _budgets(tmp_path, defaults + "[models.plain_tiny]\npeak_mb = 0.001\n")
    code, out, err = invoke("bench", tiny_onnx, "--budget", tight, "--report", tmp_path / "rep")
    assert code == 1
    assert "over budget: plain_tiny: peak memory" in err and "> budget 0.001 MB" in err
    assert "1 budget violation(s)" in err
    assert "plain_tiny" in out and "48×32" in out  # the table is printed before the verdict
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"report.md", "report.json", "report.png"}
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["settings"]["size"] == [48, 32]

    loose = _budgets(tmp_path, defaults + "[models.plain_tiny]\npeak_mb = 5000\nlatency_ms = 60000\n")
    code, _, err = invoke("bench", tiny_onnx, "--budget", loose, "--report", tmp_path / "rep")
    assert code == 2 and "exists; use --force" in err  # checked before anything is written
    code, _, err = invoke("bench", tiny_onnx, "--budget", loose, "--report", tmp_path / "rep", "--force")
    assert code == 0, err
    assert "within budget" in err


def test_cli_bad_budget_file_is_one_line_exit_2(invoke, tmp_path, tiny_onnx):
    p = _budgets(tmp_path, "[models.plain_tiny]\npeak = 3\n")
    code, _, err = invoke("bench", tiny_onnx, "--budget", p)
    assert code == 2 and "unknown key(s) peak" in one_error_line(err)


# -- baseline comparison -------------------------------------------------------------------------------------
def test_baseline_deltas_and_regressions():
    from sr_compress.deploy.report import baseline_markdown, compare_to_baseline

    old = _result(_model("a"), _model("gone"))
    now = _result(_model("a", steady=60e6, median=0.26), _model("fresh"))
    cmp = compare_to_baseline(now, old)
    by = {d.metric: d for d in cmp.deltas if d.model == "a"}
    assert by["peak_mb"].change_pct == pytest.approx((60 - 52.1) / 52.1 * 100)
    assert by["peak_mb"].regressed and not by["latency_ms"].regressed  # +15 % > 10 %; +4 % ≤ 25 %
    assert by["params"].change_pct == 0 and not by["params"].regressed
    assert cmp.new == ["fresh"] and cmp.missing == ["gone"] and len(cmp.regressions) == 1
    assert not compare_to_baseline(now, old, {"peak_mb": 20}).regressions
    md = baseline_markdown(cmp)
    assert "1 regression(s)" in md and "| a | peak memory (MB) | 52.1 | 60.0 | +15.2% | +10% | **regressed** |" in md
    assert "New (no baseline): fresh" in md and "not measured now: gone" in md
    faster = compare_to_baseline(_result(_model("a", steady=30e6, median=0.1)), old)
    assert not faster.regressions  # getting better is never a regression
    with pytest.raises(ConfigError, match="unknown regression metric"):
        compare_to_baseline(now, old, {"memory": 5})


def test_cli_baseline_gate(invoke, tmp_path, tiny_onnx):
    args = ["bench", tiny_onnx, "--size", "48x32", "--runs", "1", "--warmup", "0", "--threads", "1"]
    code, _, err = invoke(*args, "--report", tmp_path / "base")
    assert code == 0, err
    base = tmp_path / "base" / "report.json"
    data = json.loads(base.read_text())
    data["models"][0]["params"] -= 10  # the baseline was smaller: any growth in params fails by default
    base.write_text(json.dumps(data))
    code, out, err = invoke(*args, "--no-memory", "--baseline", base, "--max-regression", "latency_ms=100000",
                            "--report", tmp_path / "new")
    assert code == 1 and "regression(s) against" in err and "params" in err, err
    assert "regressed" in out
    assert "Against the baseline" in (tmp_path / "new" / "report.md").read_text()
    code, _, err = invoke(*args, "--no-memory", "--baseline", base, "--max-regression", "params=1",
                          "--max-regression", "latency_ms=100000")
    assert code == 0, err
    code, _, err = invoke(*args, "--baseline", tmp_path / "nope.json")
    assert code == 2 and "not found" in err
    (tmp_path / "bad.json").write_text("{}")
    code, _, err = invoke(*args, "--baseline", tmp_path / "bad.json")
    assert code == 2 and "not a bench report.json" in err
    code, _, err = invoke(*args, "--baseline", base, "--max-regression", "latency")
    assert code == 2 and "METRIC=PCT" in err


def test_cli_baseline_json_is_one_document_and_options_are_checked_first(invoke, tmp_path, tiny_onnx):
    args = ["bench", tiny_onnx, "--size", "48x32", "--runs", "1", "--warmup", "0", "--threads", "1", "--no-memory"]
    code, out, err = invoke(*args, "--json")
    assert code == 0, err
    base = tmp_path / "base.json"
    base.write_text(out)
    code, out, err = invoke(*args, "--json", "--baseline", base, "--max-regression", "latency_ms=100000")
    assert code == 0, err
    data = json.loads(out)  # one document
    assert data["models"] and data["baseline"]["regressions"] == 0
    code, out, err = invoke(*args, "--max-regression", "latency_ms=5")
    assert code == 2 and "give --baseline" in err and out == ""  # refused before measuring
    code, out, err = invoke(*args, "--baseline", base, "--max-regression", "memory=5")
    assert code == 2 and "unknown metric(s) memory" in err and out == ""
