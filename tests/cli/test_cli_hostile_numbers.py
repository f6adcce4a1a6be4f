"""Issue 17's NaN/infinity cases at the command line: each is one error line and exit 2, before any work."""

from __future__ import annotations

import pytest
from helpers.cli import one_error_line
from helpers.models import tiny_checkpoint
from PIL import Image


@pytest.fixture
def m(tmp_path):
    return tiny_checkpoint(tmp_path / "m.pt")


@pytest.mark.parametrize("args", [
    ["export", "{m}", "-o", "{t}/x.onnx", "--tolerance", "nan"],
    ["plainify", "{m}", "--exact-only", "--scheme", "shift", "--shift-c", "nan", "-o", "{t}/p.pt"],
    ["plainify", "{m}", "--shift-coef", "nan", "-o", "{t}/p.pt"],
    ["plainify", "{m}", "--shift-coef", "1e309", "-o", "{t}/p.pt"],
    ["plainify", "{m}", "--eps", "nan", "-o", "{t}/p.pt"],
    ["eval", "{m}", "--res-scale", "nan"],
    ["eval", "{m}", "--img-range", "0"],
    ["eval", "{m}", "--img-range", "-1"],
    ["slim", "{m}", "--rho", "nan", "-o", "{t}/s.pt"],
    ["upscale", "{m}", "{t}/i.png", "-o", "{t}/u.png", "--max-memory-mb", "inf"],
    ["upscale", "{m}", "{t}/i.png", "-o", "{t}/u.png", "--max-memory-mb", "nan"],
    ["train", "--arch", "edsr", "--lr", "nan", "-o", "{t}/t.pt"],
    ["train", "--arch", "edsr", "--grad-clip", "inf", "-o", "{t}/t.pt"],
    ["bench", "{m}", "--psnr", "m=nan", "--no-memory"],
    ["bench", "{m}", "--baseline", "{t}/r.json", "--max-regression", "latency_ms=nan", "--no-memory"],
    ["bench", "{m}", "--size", "100000x100000", "--no-memory"],
    ["info", "{m}", "--size", "0x0"],
])
def test_non_finite_and_absurd_numbers_are_one_line_exit_2(tmp_path, m, invoke, args):
    Image.new("RGB", (8, 8)).save(tmp_path / "i.png")
    (tmp_path / "r.json").write_text("{}")
    argv = [a.format(m=m, t=tmp_path) for a in args]
    code, _, err = invoke(*argv)
    assert code == 2, err
    line = one_error_line(err)
    assert line.startswith("error: ") and "internal error" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.png", "m.pt", "r.json"]  # nothing written
