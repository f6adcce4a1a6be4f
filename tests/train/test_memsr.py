"""The memsr strategy: bridged feature distillation with trainable bridges from the plainify checkpoint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _torchrun import run_torchrun

from sr_compress.errors import ConfigError
from sr_compress.train.strategies import build_strategy
from sr_compress.train.trainer import Trainer

HELPERS = Path(__file__).resolve().parents[1]  # tests/: the torchrun helper scripts


def _helper():
    spec = importlib.util.spec_from_file_location("_ddp_memsr", HELPERS / "_ddp_memsr.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _helper()


class Crash(Exception):
    pass


def test_needs_bridges_and_valid_options():
    s = build_strategy("memsr")
    with pytest.raises(ConfigError, match="srcompress plainify"):
        s.use_checkpoint_extra({})
    with pytest.raises(ConfigError, match="bridges must be one of"):
        build_strategy("memsr", bridges="zeros")
    teacher, student, strat = H.setup()
    with pytest.raises(ConfigError, match="srcompress plainify"):
        Trainer(student, build_strategy("memsr"), H.ToySource(), H.config(), teacher=teacher).fit()


def test_loss_schedule_and_bridges_train(tmp_path):
    res, strat = H.run(str(tmp_path))
    hist = res.history
    assert [round(h["c_e"] / 0.3, 12) for h in hist[::2]] == [1.0, round(1e-5 ** (1 / 3), 12),
                                                              round(1e-5 ** (2 / 3), 12)]
    assert all(h["loss"] == pytest.approx(h["pixel"] + h["c_e"] * h["feature_mse"], rel=1e-5) for h in hist)
    teacher, student, fresh = H.setup()
    fresh_w = fresh._spec[0]["weight"]
    assert len(strat.extra_params()) == 2 * 5  # weight and bias of each of the 5 bridges
    assert not torch.equal(strat.extra_params()[0].detach(), fresh_w)  # bridges were optimised


def test_winning_bridges_start_closer_than_random(tmp_path):
    starts = {}
    for bridges in ("winning", "random"):
        teacher, student, strat = H.setup(bridges)
        res = Trainer(student, strat, H.ToySource(), H.config(steps=1), teacher=teacher, out_dir=tmp_path / bridges,
                      force=True).fit()
        starts[bridges] = res.history[0]["feature_mse"]
    assert starts["winning"] < 0.2 * starts["random"]


def test_resume_restores_bridges_exactly(tmp_path):
    full, full_strat = H.run(str(tmp_path / "a"))

    def crash(record):
        if record["step"] == 4:
            raise Crash

    teacher, student, strat = H.setup()
    with pytest.raises(Crash):
        Trainer(student, strat, H.ToySource(), H.config(ckpt_every=3), teacher=teacher, out_dir=tmp_path / "b",
                progress=crash).fit()
    teacher, student, strat = H.setup()
    resumed = Trainer(student, strat, H.ToySource(), H.config(ckpt_every=3), teacher=teacher,
                      out_dir=tmp_path / "b").fit(resume=tmp_path / "b" / "last.pt")
    assert resumed.resumed_from == 3
    for a, b in zip(full_strat.extra_params(), strat.extra_params(), strict=True):
        assert torch.equal(a, b)
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_train_model_passes_checkpoint_extra(tmp_path):
    from sr_compress.checkpoint import load_checkpoint, save_checkpoint
    from sr_compress.ops.plainify import plainify_file
    from sr_compress.ops.train import train_model

    teacher, _, _ = H.setup()
    src = save_checkpoint(teacher, tmp_path / "t.pt")
    plainify_file(src, tmp_path / "s.pt", eps=0.1, patches=2, patch_size=16)
    loaded = load_checkpoint(tmp_path / "s.pt")
    out = train_model(loaded.model, out=tmp_path / "f.pt", config=H.config(steps=2, patch_size=32),
                      strategy="memsr", teacher=teacher, student_extra=loaded.extra)
    assert out.steps == 2 and "feature_mse" in out.history[-1]
    assert load_checkpoint(out.path).model.arch == "plain"


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_ddp_with_bridges_equals_single_process(tmp_path):
    run_torchrun(HELPERS / "_ddp_memsr.py", tmp_path / "ddp")
    ddp = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    single, strat = H.run(str(tmp_path / "single"))
    assert ddp["train_state"]["world_size"] == 2
    saved = ddp["train_state"]["extra_params"]
    assert len(saved) == len(strat.extra_params()) == 10
    for a, b in zip(saved, strat.extra_params(), strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=0)
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][name], value, atol=1e-5, rtol=0, msg=name)
