"""The released lightweight nets from the command line: info, eval (benchmark layout with a .jpg HR), slim,
and the one-line refusals (plainify, tiled upscale) — on the files in ../shared/data/weights/zoo."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SHARED_DATA
from helpers.cli import one_error_line

from sr_compress.checkpoint import load_checkpoint
from sr_compress.data.datasets import read_image
from sr_compress.metrics import psnr

ZOO = SHARED_DATA / "weights" / "zoo"
B100 = SHARED_DATA / "benchmarks" / "B100"
pytestmark = pytest.mark.skipif(not (ZOO.is_dir() and B100.is_dir()),
                                reason=f"zoo weights / B100 not found under {SHARED_DATA}")


def test_info_reports_the_guess_and_takes_the_scale(invoke):
    code, stdout, err = invoke("info", ZOO / "fsrcnn_x3.pth", "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert (info["format"], info["arch"], info["params"]) == ("fsrcnn-pytorch", "fsrcnn", 12_809)
    assert info["hparams"]["scale"] == 2 and info["guesses"][0].startswith("scale = 2 (not stored")
    code, stdout, err = invoke("info", ZOO / "fsrcnn_x3.pth", "--model-scale", "3", "--json")
    assert code == 0, err
    assert json.loads(stdout)["guesses"] == ["scale = 3 (set by override)"]


@pytest.mark.parametrize("name, scale", [("rlfn_ntire_x4", 4), ("fsrcnn_x4", 4)])
def test_eval_on_a_benchmark_folder_with_jpg_hr(name, scale, tmp_path, invoke):
    (tmp_path / "HR").mkdir()
    (tmp_path / "LR_bicubic" / f"X{scale}").mkdir(parents=True)
    (tmp_path / "HR" / "3096.jpg").symlink_to((B100 / "HR" / "3096.jpg").resolve())
    lr_path = B100 / "LR_bicubic" / f"X{scale}" / f"3096x{scale}.png"
    (tmp_path / "LR_bicubic" / f"X{scale}" / lr_path.name).symlink_to(lr_path.resolve())
    code, stdout, err = invoke("eval", ZOO / f"{name}.pth", "--data", tmp_path, "--model-scale", str(scale),
                               "--y", "matlab", "--json")  # Y rounded, as the check below measures
    assert code == 0, err
    got = json.loads(stdout)["reports"][0]["mean"]["psnr_y"]
    # independently: the HR jpg cropped to s × LR, the net on the LR file, 8-bit RGB, Y rounded, s px shaved
    lr = read_image(lr_path)
    hr = read_image(B100 / "HR" / "3096.jpg")[:, : lr.shape[1] * scale, : lr.shape[2] * scale]
    m = load_checkpoint(ZOO / f"{name}.pth", overrides={"scale": scale}).model
    with torch.no_grad():
        if m.channels == 1:
            from sr_compress.infer import super_resolve

            sr = super_resolve(m, lr[None])[0]
        else:
            sr = m(lr[None])[0].clamp(0, 1)
    assert abs(got - psnr(sr, hr, crop=scale, y=True, quantize=True)) < 1e-9


def test_slim_and_refusals(tmp_path, invoke):
    code, stdout, err = invoke("slim", ZOO / "rlfn_ntire_x4.pth", "--rho", "0.5", "-o", tmp_path / "s.pt")
    assert code == 0, err
    s = load_checkpoint(tmp_path / "s.pt").model
    assert s.arch == "rlfn" and s.hparams["n_feats"] == 23 and s.provenance[-1]["stage"] == "slim"
    code, _, err = invoke("slim", ZOO / "IMDN_x2.pth", "--rho", "0.5", "-o", tmp_path / "i.pt")
    assert code == 2 and "imdn declares no coupled channel groups" in one_error_line(err)
    code, _, err = invoke("plainify", ZOO / "rlfn_x4.pth", "-o", tmp_path / "p.pt")
    assert code == 2 and "cannot plainify rlfn: it is not a residual chain of convs" in one_error_line(err)
    lr = B100 / "LR_bicubic" / "X4" / "3096x4.png"
    code, _, err = invoke("upscale", ZOO / "rlfn_x4.pth", lr, "-o", tmp_path / "u.png", "--tile", "32")
    assert code == 2 and "rlfn cannot be tiled exactly" in one_error_line(err)
