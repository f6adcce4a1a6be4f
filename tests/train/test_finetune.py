"""`srcompress finetune`, `train --teacher`, ops.train.finetune and the `finetune` recipe stage (tiny models)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from helpers.cli import one_error_line
from helpers.models import tiny_checkpoint

from sr_compress.checkpoint import load_checkpoint, save_checkpoint
from sr_compress.errors import ConfigError, OutputExistsError
from sr_compress.models import tiny_hparams
from sr_compress.ops.train import finetune
from sr_compress.recipes import parse_recipe, run_recipe
from sr_compress.train.strategies import Strategy, register_strategy
from sr_compress.train.trainer import TrainConfig

TINY_RUN = ["--steps", "2", "--batch-size", "2", "--patch-size", "16", "--ckpt-every", "0"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@register_strategy("_test_extras")
class SeesExtras(Strategy):
    seen: list = []

    def use_checkpoint_extra(self, extra):
        SeesExtras.seen.append(dict(extra))

    def loss(self, ctx, batch):
        return (ctx.forward(batch.x) - batch.y).abs().mean()


def test_finetune_library_records_strategy_options_and_teacher(tmp_path):
    student, teacher = tiny_checkpoint(tmp_path / "s.pt"), tiny_checkpoint(tmp_path / "t.pt", seed=1, n_feats=12)
    config = TrainConfig(steps=2, batch_size=2, patch_size=16, ckpt_every=0, device="cpu")
    out = finetune(student, out=tmp_path / "ft.pt", config=config, strategy="kd",
                   strategy_options={"beta": 0.2}, teacher=teacher)
    assert out.steps == 2 and out.path.is_file()
    entry = load_checkpoint(out.path).provenance[-1]
    assert entry["stage"] == "finetune"
    p = entry["params"]
    assert p["strategy"] == "kd" and p["strategy_options"] == {"beta": 0.2, "criterion": "mse"}
    assert p["teacher"] == {"path": str(teacher), "sha256": _sha(teacher)}
    assert p["student"] == {"path": str(student), "sha256": _sha(student)}
    with pytest.raises(OutputExistsError, match="it is an input"):
        finetune(student, out=student, config=config, strategy="l1", force=True)


def test_finetune_hands_the_checkpoint_extras_to_the_strategy(tmp_path):
    bridges = [torch.eye(4)]
    student = tiny_checkpoint(tmp_path / "s.pt", extra={"bridges": bridges})
    SeesExtras.seen.clear()
    config = TrainConfig(steps=1, batch_size=2, patch_size=16, ckpt_every=0, device="cpu")
    finetune(student, out=tmp_path / "ft.pt", config=config, strategy="_test_extras")
    assert len(SeesExtras.seen) == 1 and torch.equal(SeesExtras.seen[0]["bridges"][0], bridges[0])


def test_finetune_cli_end_to_end_and_preset(tmp_path, invoke):
    student, teacher = tiny_checkpoint(tmp_path / "s.pt"), tiny_checkpoint(tmp_path / "t.pt", seed=1)
    code, out, err = invoke("finetune", student, "--teacher", teacher, "--strategy", "ail", "--opt", "sigma=5",
                            *TINY_RUN, "--set", "rounds=2", "-o", tmp_path / "ail.pt")
    assert code == 0, err
    assert "fine-tuned edsr ×2 with ail for 2 steps" in out
    p = load_checkpoint(tmp_path / "ail.pt").provenance[-1]["params"]
    assert p["strategy_options"]["sigma"] == 5 and p["teacher"]["sha256"] == _sha(teacher)

    # the preset gives the official AIL schedule; an option given explicitly (--lr) wins over it
    code, _, err = invoke("finetune", student, "--teacher", teacher, "--strategy", "ail", "--preset", "ail-official",
                          "--lr", "0.001", *TINY_RUN, "--set", "rounds=2", "-o", tmp_path / "off.pt")
    assert code == 0, err
    state = torch.load(tmp_path / "off.train" / "last.pt", weights_only=True)["train_state"]["config"]
    assert (state["optimizer"], state["lr"], state["momentum"], state["weight_decay"], state["grad_clip"],
            state["reduction"], state["scheduler"], state["gamma"]) == ("sgd", 0.001, 0.9, 1e-4, 0.4, "sum",
                                                                       "step", 0.1)
    assert state["batch_size"] == 2 and state["rounds"] == 2


@pytest.mark.parametrize("args, message", [
    (["--strategy", "kd"], "strategy 'kd' needs a teacher model"),
    (["--strategy", "l1", "--teacher", "{t}"], "strategy 'l1' uses no teacher; drop --teacher"),
    (["--strategy", "ail", "--opt", "init=zeros", "--teacher", "{t}"], "uses no teacher"),
    (["--strategy", "kd", "--teacher", "{t3}"], "teacher is ×3 but the student is ×2"),
    (["--strategy", "kd", "--teacher", "{ty}"], "must share a colour space"),
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--strategy", "pspl", "--opt", "ssim_range=255"], "ssim_range must be one of proper, faithful"),
    (["--strategy", "ail", "--teacher", "{t}", "--preset", "ail-official"],
     "steps (2) must be a multiple of rounds (11)"),
    (["--strategy", "kd", "--teacher", "{t}", "--preset", "fast"], "unknown preset 'fast'; choose one of"),
    ([], "Missing option '--strategy'"),
])
def test_finetune_cli_errors(tmp_path, invoke, args, message):
    student = tiny_checkpoint(tmp_path / "s.pt")
    files = {"t": tiny_checkpoint(tmp_path / "t.pt", seed=1), "t3": tiny_checkpoint(tmp_path / "t3.pt", scale=3),
             "ty": tiny_checkpoint(tmp_path / "ty.pt", arch="fsrcnn", channels=1)}
    args = [a.format(**files) for a in args]
    code, _, err = invoke("finetune", student, *args, *TINY_RUN, "-o", tmp_path / "o.pt")
    assert code == 2 and message in one_error_line(err) or pytest.fail(err)
    assert not (tmp_path / "o.pt").exists()


def test_teacher_scale_override(tmp_path, invoke):
    """One VDSR file serves every scale (its weights do not depend on it): --teacher-scale says which."""
    student = tiny_checkpoint(tmp_path / "s3.pt", arch="vdsr", scale=3)
    teacher = tiny_checkpoint(tmp_path / "t.pt", arch="vdsr", seed=1, scale=2)
    code, _, err = invoke("finetune", student, "--strategy", "kd", "--teacher", teacher, *TINY_RUN,
                          "-o", tmp_path / "o.pt")
    assert code == 2 and "teacher is ×2 but the student is ×3" in one_error_line(err)
    code, _, err = invoke("finetune", student, "--strategy", "kd", "--teacher", teacher, "--teacher-scale", "3",
                          *TINY_RUN, "--patch-size", "18", "-o", tmp_path / "o.pt")
    assert code == 0, err


def test_train_with_teacher(tmp_path, invoke):
    teacher = tiny_checkpoint(tmp_path / "t.pt", arch="vdsr", seed=1)
    code, out, err = invoke("train", "--arch", "vdsr", "--hparam", "n_feats=4", "--hparam", "n_layers=2",
                            "--strategy", "kd", "--opt", "criterion=l1", "--teacher", teacher, *TINY_RUN,
                            "-o", tmp_path / "kd.pt")
    assert code == 0, err
    p = load_checkpoint(tmp_path / "kd.pt").provenance[-1]["params"]
    assert p["strategy"] == "kd" and p["strategy_options"] == {"beta": 0.1, "criterion": "l1"}
    code, _, err = invoke("train", "--arch", "vdsr", "--teacher", teacher, *TINY_RUN, "-o", tmp_path / "x.pt")
    assert code == 2 and "uses no teacher" in one_error_line(err)


# -- the recipe stage --------------------------------------------------------------------------------------------
def _recipe(tmp_path, beta=0.1, teacher="t.pt"):
    return parse_recipe({"name": "ft", "out": str(tmp_path / "run"), "stage": [
        {"id": "ft", "kind": "finetune", "model": str(tmp_path / "s.pt"), "teacher": str(tmp_path / teacher),
         "strategy": "kd", "strategy_options": {"beta": beta},
         "train": {"steps": 1, "batch_size": 2, "patch_size": 16, "ckpt_every": 0, "device": "cpu"}},
    ]})


def test_finetune_stage_cache_key_covers_options_and_teacher(tmp_path):
    tiny_checkpoint(tmp_path / "s.pt"), tiny_checkpoint(tmp_path / "t.pt", seed=1)
    assert [r.status for r in run_recipe(_recipe(tmp_path))] == ["ran"]
    assert [r.status for r in run_recipe(_recipe(tmp_path))] == ["cached"]
    assert [r.status for r in run_recipe(_recipe(tmp_path, beta=0.3))] == ["ran"]  # an option changed
    assert [r.status for r in run_recipe(_recipe(tmp_path, beta=0.3))] == ["cached"]
    (tmp_path / "t.pt").unlink()
    tiny_checkpoint(tmp_path / "t.pt", seed=2)  # same path, other weights
    assert [r.status for r in run_recipe(_recipe(tmp_path, beta=0.3))] == ["ran"]
    entry = load_checkpoint(tmp_path / "run" / "ft" / "model.pt").provenance[-1]
    assert entry["stage"] == "finetune" and entry["params"]["teacher"]["sha256"] == _sha(tmp_path / "t.pt")


def test_finetune_stage_is_checked_when_read(tmp_path):
    with pytest.raises(ConfigError, match="strategy kd: beta must be a finite number"):
        _recipe(tmp_path, beta="big")
    with pytest.raises(ConfigError, match="unknown preset"):
        parse_recipe({"stage": [{"kind": "finetune", "model": "s.pt", "strategy": "ail", "preset": "x"}]})


def test_val_every_validates_during_training(invoke, tmp_path):
    from sr_compress.ops.train import new_model, train_model
    from sr_compress.train.trainer import TrainConfig

    config = TrainConfig(steps=4, batch_size=2, patch_size=24, val_every=2, ckpt_every=0)
    out = train_model(new_model("edsr", scale=2, hparams={"n_feats": 4, "n_blocks": 1}), out=tmp_path / "m.pt",
                      config=config)
    vals = [h for h in out.history if "val_psnr" in h]
    assert [h["step"] for h in vals] == [2, 4] and all(10 < h["val_psnr"] < 60 for h in vals)
    code, _, err = invoke("train", "--arch", "edsr", "--hparam", "n_feats=4", "--hparam", "n_blocks=1",
                          "--steps", "2", "--batch-size", "2", "--patch-size", "24", "--val-every", "1",
                          "--ckpt-every", "0", "-o", tmp_path / "c.pt")
    assert code == 0, err
    from sr_compress.checkpoint import read_raw

    history = read_raw(tmp_path / "c.train" / "last.pt")["train_state"]["history"]
    assert "val_psnr" in history[-1]


def test_train_never_writes_over_its_own_input(invoke, tmp_path):
    from sr_compress.ops.train import new_model

    m = save_checkpoint(new_model("edsr", scale=2, hparams={"n_feats": 4, "n_blocks": 1}), tmp_path / "m.pt")
    before = m.read_bytes()
    code, _, err = invoke("train", "--init", m, "--steps", "1", "--batch-size", "2", "--patch-size", "24",
                          "-o", m, "--force")
    assert code == 2 and "input" in err and m.read_bytes() == before


@pytest.mark.parametrize("arch", ["vdsr", "fsrcnn", "asrn"])
def test_val_every_works_for_y_and_multi_depth_models(arch, tmp_path):
    from sr_compress.ops.train import new_model, train_model
    from sr_compress.train.trainer import TrainConfig

    hp = {k: v for k, v in tiny_hparams(arch, 2).items() if k != "scale"}
    out = train_model(new_model(arch, scale=2, hparams=hp), out=tmp_path / "m.pt",
                      config=TrainConfig(steps=2, batch_size=2, patch_size=24, val_every=1, ckpt_every=0))
    assert len([h for h in out.history if "val_psnr" in h]) == 2
