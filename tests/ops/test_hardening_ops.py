"""Issue 17 in the ops layer: inputs are sacred for every operation, --resume refuses changed data, options that
contradict a checkpoint are refused, upscale plans its names first, recipe runs are locked and copy-safe."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.cli import one_error_line
from helpers.models import tiny_checkpoint
from PIL import Image

from sr_compress.errors import ConfigError, DataError, OutputExistsError
from sr_compress.fileio import FolderLockedError, folder_lock
from sr_compress.recipes import StageOutput, parse_recipe, register_stage, run_recipe


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.new("RGB", (24, 24), (60 * i, 100, 30)).save(data / f"img{i}.png")
    return {"model": tiny_checkpoint(tmp_path / "m.pt"), "data": data, "root": tmp_path}


TRAIN = ["--steps", "2", "--batch-size", "1", "--patch-size", "8"]


def test_eval_crops_never_replace_the_model(files, invoke):
    m = files["model"]
    before = _sha(m)
    code, _, err = invoke("eval", m, "--data", files["data"], "--crops", m, "--force")
    assert code == 2 and "it is an input" in one_error_line(err)
    assert _sha(m) == before
    code, _, err = invoke("eval", m, "--data", files["data"], "--crops", files["data"] / "img0.png", "--force")
    assert code == 2 and "inside the input folder" in one_error_line(err)


@pytest.mark.parametrize("cmd", ["train", "finetune", "plainify"])
def test_no_command_writes_into_its_data_folder(files, invoke, cmd):
    d, m = files["data"], files["model"]
    target = d / "img0.png"
    before = _sha(target)
    argv = {"train": ["train", "--arch", "edsr", "--hparam", "n_feats=4", "--hparam", "n_blocks=1", *TRAIN],
            "finetune": ["finetune", m, "--strategy", "l1", *TRAIN],
            "plainify": ["plainify", m, "--width", "4", "--patches", "2"]}[cmd]
    code, _, err = invoke(*argv, "--data", d, "-o", target, "--force")
    assert code == 2 and "inside the input folder" in one_error_line(err), err
    assert _sha(target) == before


def test_bench_report_never_replaces_its_baseline(files, tmp_path):
    from helpers.bench import _result

    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.models import build_model, plain_layers
    from sr_compress.ops.bench import bench

    rep = tmp_path / "R"
    rep.mkdir()
    baseline = rep / "report.json"
    baseline.write_text(json.dumps(_result().to_dict()))
    onnx = tmp_path / "p.onnx"
    export_onnx(build_model("plain", scale=2, layers=plain_layers(2, 8, 2)), onnx, validate=False)
    before = _sha(baseline)
    with pytest.raises(OutputExistsError, match="it is an input"):
        bench([onnx], baseline=baseline, report_dir=rep, force=True, memory=False)
    assert _sha(baseline) == before


def test_upscale_collisions_and_single_png_refused_before_any_image(files, invoke, tmp_path):
    a, b = tmp_path / "A" / "same.png", tmp_path / "B" / "same.png"
    for p in (a, b):
        p.parent.mkdir()
        Image.new("RGB", (8, 8)).save(p)
    out = tmp_path / "out"
    code, _, err = invoke("upscale", files["model"], a, b, "-o", out, "--force")
    assert code == 2 and "would both be written" in one_error_line(err)
    assert not out.exists() or list(out.iterdir()) == []
    code, _, err = invoke("upscale", files["model"], a, b, "-o", tmp_path / "u.png")
    assert code == 2 and "names one file, but 2 images" in one_error_line(err)
    code, _, err = invoke("upscale", files["model"], a, "-o", files["model"], "--force")
    assert code == 2 and "input" in one_error_line(err)
    code, _, err = invoke("upscale", files["model"], a, "-o", tmp_path / "one.png")
    assert code == 0, err
    assert Image.open(tmp_path / "one.png").size == (16, 16)


def test_train_init_with_a_contradicting_scale_is_refused(files, invoke, tmp_path):
    code, _, err = invoke("train", "--init", files["model"], "--scale", "3", *TRAIN, "--data", files["data"],
                          "-o", tmp_path / "t.pt")
    assert code == 2 and "scale = 2; --scale 3 contradicts it" in one_error_line(err)
    assert not (tmp_path / "t.pt").exists()


def test_train_init_without_scale_keeps_the_checkpoint_scale(files, tmp_path):
    from sr_compress.ops.train import train, train_config

    x3 = tiny_checkpoint(tmp_path / "x3.pt", scale=3)
    config = train_config(settings={"steps": 1, "batch_size": 1, "patch_size": 12})
    out = train(out=tmp_path / "t.pt", config=config, init=x3, data=files["data"])
    assert out.model.scale == 3
    with pytest.raises(ConfigError, match="contradicts"):
        train(out=tmp_path / "t2.pt", config=config, init=x3, scale=2, data=files["data"])


def test_resume_refuses_a_changed_data_source(files, tmp_path):
    from sr_compress.ops.train import train, train_config, work_dir_for

    out = tmp_path / "t.pt"
    kw = {"arch": "edsr", "hparams": {"n_feats": 4, "n_blocks": 1}}
    config = train_config(settings={"steps": 2, "batch_size": 1, "patch_size": 8, "ckpt_every": 1})
    first = train(out=out, config=config, data=files["data"], **kw)
    record = json.loads((work_dir_for(out) / "data.json").read_text())
    assert record["key"].startswith("files:2:")
    assert first.model.provenance[-1]["params"]["data_key"] == record["key"]
    other = tmp_path / "other"
    shutil.copytree(files["data"], other)
    Image.new("RGB", (24, 24), (1, 2, 3)).save(other / "img0.png")  # one image rewritten
    with pytest.raises(DataError, match="--resume: the training data changed"):
        train(out=out, config=config, data=other, resume=True, **kw)
    (files["data"] / "img2.png").write_bytes((files["data"] / "img1.png").read_bytes())  # an image added
    with pytest.raises(DataError, match="changed"):
        train(out=out, config=config, data=files["data"], resume=True, **kw)
    (files["data"] / "img2.png").unlink()
    assert train(out=out, config=config, data=files["data"], resume=True, **kw).steps == 2


# -- recipes -------------------------------------------------------------------------------------------------


@dataclass
class _CopyParams:
    text: str = "x"


@register_stage("_harden_copy", _CopyParams)
def _copy_stage(p: _CopyParams, ctx) -> StageOutput:
    out = ctx.folder / "out.txt"
    out.write_text(p.text)
    return StageOutput(out, {"chars": len(p.text)})


def test_recipe_artifacts_are_relative_and_a_copied_run_folder_is_self_contained(tmp_path):
    run = tmp_path / "run"
    recipe = parse_recipe({"out": str(run), "stage": [{"id": "a", "kind": "_harden_copy", "text": "hi"}]})
    run_recipe(recipe)
    meta = json.loads((run / "a" / "stage.json").read_text())
    assert meta["artifact"] == "a/out.txt"
    assert json.loads((run / "summary.json").read_text())["stages"][0]["artifact"] == "a/out.txt"
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    shutil.rmtree(run)  # the original is gone: the copy must not point into it
    moved = parse_recipe({"out": str(copy), "stage": [{"id": "a", "kind": "_harden_copy", "text": "hi"}]})
    res = run_recipe(moved)
    assert res[0].status == "cached" and Path(res[0].artifact) == copy / "a" / "out.txt"
    # an old absolute record pointing outside the run folder is not trusted: the stage runs again
    meta["artifact"] = str(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("hi")
    (copy / "a" / "stage.json").write_text(json.dumps(meta))
    assert run_recipe(moved)[0].status == "ran"


def test_a_second_run_into_a_locked_folder_says_who_holds_it(tmp_path, invoke):
    run = tmp_path / "run"
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'out = "{run}"\n[[stage]]\nid = "a"\nkind = "_harden_copy"\n')
    with folder_lock(run):
        with pytest.raises(FolderLockedError, match="in use by pid"):
            run_recipe(parse_recipe({"out": str(run), "stage": [{"id": "a", "kind": "_harden_copy"}]}))
        code, _, err = invoke("run", recipe)
        assert code == 2 and "is in use by pid" in one_error_line(err)
    assert run_recipe(parse_recipe({"out": str(run), "stage": [{"id": "a", "kind": "_harden_copy"}]}))


def test_a_recipe_stage_never_overwrites_its_own_input(files, tmp_path):
    run = tmp_path / "run"
    own = run / "t" / "model.pt"
    own.parent.mkdir(parents=True)
    shutil.copy(files["model"], own)
    before = _sha(own)
    recipe = parse_recipe({"out": str(run), "stage": [
        {"id": "t", "kind": "train", "init": str(own), "train": {"steps": 1, "batch_size": 1, "patch_size": 8}}]})
    with pytest.raises(OutputExistsError, match="it is an input"):
        run_recipe(recipe)
    assert _sha(own) == before


def test_verbose_flag_is_documented(invoke):
    code, out, _ = invoke("--help")
    assert code == 0 and "--verbose" in out
