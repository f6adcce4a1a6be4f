"""The commands as a user meets them: happy paths end to end, and every bad input → one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.cli import one_error_line
from PIL import Image

from sr_compress.checkpoint import load_checkpoint


def _png(path, size=(20, 16), mode="RGB"):
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode).save(path)
    return path


def test_train_eval_upscale_info_end_to_end(tmp_path, invoke):
    out = tmp_path / "t.pt"
    code, stdout, err = invoke("train", "--arch", "edsr", "--scale", "2", "--hparam", "n_feats=8",
                               "--hparam", "n_blocks=1", "--steps", "3", "--batch-size", "2", "--patch-size", "32",
                               "--ckpt-every", "2", "-o", out)
    assert code == 0, err
    assert "trained edsr ×2 for 3 steps" in stdout
    loaded = load_checkpoint(out)
    assert loaded.model.hparams["n_feats"] == 8
    assert loaded.provenance[-1]["stage"] == "train" and loaded.provenance[-1]["params"]["steps"] == 3
    assert (tmp_path / "t.train" / "last.pt").is_file()

    code, stdout, err = invoke("eval", out, "--json", "--crops", tmp_path / "crops.png")
    assert code == 0, err
    with Image.open(tmp_path / "crops.png") as im:  # 2 images × (bicubic | model | HR), 96 px windows zoomed 2×
        assert im.size == (4 + 3 * (192 + 4), 4 + 2 * (192 + 16 + 4))
    reports = json.loads(stdout)["reports"]
    assert [r["method"] for r in reports] == ["t.pt", "bicubic"]
    assert {i["name"] for i in reports[1]["images"]} == {"chelsea", "coffee"}
    assert 25 < reports[1]["mean"]["psnr_y"] < 45  # bicubic ×2 on natural photos

    img = _png(tmp_path / "in.png")
    code, stdout, err = invoke("upscale", out, img, "-o", tmp_path / "up.png", "--tile", "8")
    assert code == 0, err
    with Image.open(tmp_path / "up.png") as im:
        assert im.size == (40, 32) and im.mode == "RGB"

    code, stdout, _ = invoke("info", out, "--json", "--size", "10x10")
    info = json.loads(stdout)
    assert code == 0 and info["arch"] == "edsr" and info["params"] == sum(
        p.numel() for p in loaded.model.parameters())
    assert info["macs"] > 0 and [p["stage"] for p in info["provenance"]] == ["train"]


def test_resume_continues_an_interrupted_run(tmp_path, invoke):
    args = ["train", "--arch", "plain", "--scale", "2", "--steps", "4", "--batch-size", "2", "--patch-size", "16",
            "--ckpt-every", "2", "-o", tmp_path / "p.pt"]
    assert invoke(*args)[0] == 0
    code, _, err = invoke(*args)
    assert code == 2 and "exists; use --force" in one_error_line(err)
    code, stdout, err = invoke(*args, "--resume")
    assert code == 0, err


def test_outputs_never_overwrite_inputs_and_need_force(tmp_path, tiny_ckpt, invoke):
    img = _png(tmp_path / "in.png")
    code, _, err = invoke("upscale", tiny_ckpt, img, "-o", img, "--force")
    assert code == 2 and "it is an input" in one_error_line(err)
    before = img.read_bytes()
    (tmp_path / "up.png").write_bytes(b"keep")
    code, _, err = invoke("upscale", tiny_ckpt, img, "-o", tmp_path / "up.png")
    assert code == 2 and "--force" in one_error_line(err)
    assert (tmp_path / "up.png").read_bytes() == b"keep" and img.read_bytes() == before
    assert invoke("upscale", tiny_ckpt, img, "-o", tmp_path / "up.png", "--force")[0] == 0


@pytest.mark.parametrize("case", ["missing", "corrupt", "directory", "text"])
def test_bad_checkpoints(tmp_path, invoke, case):
    path = tmp_path / "m.pt"
    if case == "corrupt":
        path.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    elif case == "directory":
        path.mkdir()
    elif case == "text":
        path.write_text("hello")
    for cmd in (("eval", path), ("info", path), ("export", path)):
        code, _, err = invoke(*cmd)
        line = one_error_line(err)
        assert code == 2 and line.startswith("error:") and str(path.name) in line, (cmd, line)


@pytest.mark.parametrize("args, message", [
    (["--arch", "resnet9000"], "unknown arch 'resnet9000'"),
    (["--arch", "edsr", "--scale", "5"], "5 is not in the range 2<=x<=4"),
    (["--arch", "edsr", "--hparam", "colour=1"], "unknown hyper-parameter(s) colour"),
    (["--arch", "edsr", "--hparam", "n_feats"], "key=value"),
    (["--arch", "edsr", "--strategy", "magic"], "unknown strategy 'magic'"),
    (["--arch", "edsr", "--set", "lr_decay=3"], "unknown key(s) lr_decay"),
    (["--arch", "edsr", "--lr", "-1"], "lr"),
    ([], "exactly one of --arch"),
    (["--arch", "edsr", "--patch-size", "600"], "smaller than"),
])
def test_bad_training_input(tmp_path, invoke, args, message):
    code, _, err = invoke("train", *args, "--steps", "1", "--batch-size", "1", "-o", tmp_path / "x.pt")
    line = one_error_line(err)
    assert code == 2 and message in line, line
    assert not (tmp_path / "x.pt").exists()


def test_bad_image_folders(tmp_path, invoke, tiny_ckpt):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = invoke("eval", tiny_ckpt, "--data", empty)
    assert code == 2 and "no images" in one_error_line(err)
    code, _, err = invoke("eval", tiny_ckpt, "--data", tmp_path / "absent")
    assert code == 2 and "not found" in one_error_line(err)
    folder = tmp_path / "RGBA"  # random alpha: transparent pixels are refused (docs/data.md)
    folder.mkdir()
    _png(folder / "a.png", mode="RGBA")
    code, _, err = invoke("eval", tiny_ckpt, "--data", folder)
    line = one_error_line(err)
    assert code == 2 and "a.png" in line and "RGBA" in line and "transparent" in line
    code, _, err = invoke("upscale", tiny_ckpt, folder / "a.png", "-o", tmp_path / "RGBA.png")
    assert code == 2 and "transparent" in one_error_line(err)
    grey = tmp_path / "L"  # greyscale is read as three equal channels, as the field reads Set14's bridge
    grey.mkdir()
    _png(grey / "a.png", size=(24, 24), mode="L")
    code, out, err = invoke("eval", tiny_ckpt, "--data", grey, "--json")
    assert code == 0, err
    code, _, err = invoke("upscale", tiny_ckpt, tmp_path / "nope.png", "-o", tmp_path / "o.png")
    assert code == 2 and "nope.png" in one_error_line(err)


def test_wrong_scale_override_is_reported(tiny_ckpt, invoke):
    code, _, err = invoke("eval", tiny_ckpt, "--res-scale", "0.1", "--json")
    assert code == 0, err  # our EDSR takes res_scale; a foreign-only override on VDSR would not:
    code, _, err = invoke("info", tiny_ckpt, "--size", "ten")
    assert code == 2 and "1920x1080" in one_error_line(err)


def test_run_recipe_end_to_end_with_cache(tmp_path, invoke):
    recipe = tmp_path / "r.toml"
    recipe.write_text("""
out = "run"
[[stage]]
id = "m"
kind = "train"
arch = "plain"
scale = 2
hparams = { layers = [8, 8, { out = 12, act = "identity", shuffle = 2 }] }
train = { steps = 2, batch_size = 2, patch_size = 16 }
[[stage]]
kind = "eval"
model = "@m"
[[stage]]
id = "onnx"
kind = "export"
model = "@m"
[[stage]]
kind = "bench"
models = ["@onnx"]
size = "64x48"
runs = 1
warmup = 0
""")
    code, stdout, err = invoke("run", recipe, "--json")
    assert code == 0, err
    stages = json.loads(stdout)["stages"]
    assert [s["status"] for s in stages] == ["ran"] * 4
    assert stages[2]["summary"]["plain"] is True and stages[2]["summary"]["max_err"] < 1e-4
    assert (tmp_path / "run" / "eval1" / "crops.png").is_file()
    assert (tmp_path / "run" / "bench3" / "report.png").is_file()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["recipe"] == "r"
    code, stdout, err = invoke("run", recipe, "--json")
    assert [s["status"] for s in json.loads(stdout)["stages"]] == ["cached"] * 4


def test_bad_recipe_is_one_line(tmp_path, invoke):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[stage]]\nkind = "train"\narch = "edsr"\ntrain = { stepz = 1 }\n')
    code, _, err = invoke("run", recipe)
    assert code == 2 and "unknown key(s) stepz" in one_error_line(err)
    code, _, err = invoke("run", tmp_path / "missing.toml")
    assert code == 2 and "recipe not found" in one_error_line(err)
