"""export/run.py: the torch-free runner, in a subprocess (no torch, no sr_compress imported), in-process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_compress.deploy.onnx import export_onnx
from sr_compress.infer import super_resolve
from sr_compress.models import build_model, tiny_hparams

RUNNER = Path(__file__).resolve().parents[2] / "export" / "run.py"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Exports of a plain RGB ×2 model and a VDSR (Y, pre-upsampled) ×3 model, and test images."""
    d = tmp_path_factory.mktemp("runner")
    models = {}
    for arch, scale in (("plain", 2), ("vdsr", 3)):
        torch.manual_seed(0)
        models[arch] = build_model(arch, **tiny_hparams(arch, scale)).eval()
        export_onnx(models[arch], d / f"{arch}.onnx")
    from skimage import data

    Image.fromarray(data.astronaut()[100:140, 150:197]).save(d / "in.png")  # 40×47, odd width
    Image.fromarray(data.camera()[:20, :20]).save(d / "gray.png")
    (d / "text.png").write_text("not an image")
    return d, models


def _run(*args, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, str(RUNNER), *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def _library_png(model, path: Path) -> np.ndarray:
    lr = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return super_resolve(model, lr)[0].mul(255).round().permute(1, 2, 0).numpy().astype(int)


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=int)


def test_runner_round_trip_without_torch(files, tmp_path):
    d, models = files
    proc = _run(d / "plain.onnx", d / "in.png", "-o", tmp_path / "out.png", importtime=True)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported and "numpy" in imported and "PIL" in imported  # the parse works
    assert not imported & {"torch", "sr_compress", "onnx", "skimage"}
    out = _png(tmp_path / "out.png")
    assert out.shape == (80, 94, 3)
    assert np.abs(out - _library_png(models["plain"], d / "in.png")).max() <= 1


def test_runner_y_model_with_pre_upsampling(files, tmp_path):
    d, models = files
    proc = _run(d / "vdsr.onnx", d / "in.png", "-o", tmp_path / "out.png")
    assert proc.returncode == 0, proc.stderr
    out, ref = _png(tmp_path / "out.png"), _library_png(models["vdsr"], d / "in.png")
    assert out.shape == ref.shape == (120, 141, 3)
    # Pillow's bicubic (runner) vs MATLAB's imresize (library), for the VDSR input and for CbCr
    diff = np.abs(out - ref)
    assert diff.max() <= 3 and diff.mean() < 0.05


@pytest.mark.parametrize("arch", ["plain", "vdsr"])
def test_runner_tiles_give_the_whole_image_result(files, tmp_path, arch):
    d, _ = files
    assert _run(d / f"{arch}.onnx", d / "in.png", "-o", tmp_path / "whole.png").returncode == 0
    proc = _run(d / f"{arch}.onnx", d / "in.png", "-o", tmp_path / "tiled.png", "--tile", "9",
                "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    proc = _run(d / f"{arch}.onnx", d / "in.png", "-o", tmp_path / "capped.png", "--max-memory-mb", "0.05")
    assert proc.returncode == 0, proc.stderr
    whole = _png(tmp_path / "whole.png")
    for name in ("tiled.png", "capped.png"):
        diff = np.abs(_png(tmp_path / name) - whole)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # ≤ 1e-5 before rounding to 8 bits


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("srcompress_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("args", "message"), [
    (["missing.onnx", "in.png"], "model not found"),
    (["plain.onnx", "missing.png"], "image not found"),
    (["plain.onnx", "text.png"], "not a readable image"),
    (["plain.onnx", "gray.png"], "not RGB"),
    (["in.png", "in.png"], "onnxruntime cannot load it"),
    (["plain.onnx", "in.png", "--max-memory-mb", "0.001"], "too small"),
])
def test_runner_errors_are_one_line_exit_2(files, runner, capsys, args, message, tmp_path):
    d, _ = files
    argv = [str(d / a) if a.endswith((".onnx", ".png")) else a for a in args]
    assert runner.main([*argv, "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_runner_output_rules(files, runner, capsys, tmp_path):
    d, _ = files
    out = tmp_path / "o.png"
    out.write_bytes(b"old")
    assert runner.main([str(d / "plain.onnx"), str(d / "in.png"), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert runner.main([str(d / "plain.onnx"), str(d / "in.png"), "-o", str(out), "--force"]) == 0
    assert _png(out).shape == (80, 94, 3)
    assert runner.main([str(d / "plain.onnx"), str(d / "in.png"), "-o", str(d / "in.png"), "--force"]) == 2
    assert "input image" in capsys.readouterr().err
