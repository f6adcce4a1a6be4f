"""The one trainer: config, strategies, losses, hooks, checkpoints and exact resume (tiny models, CPU)."""

from __future__ import annotations

import types

import pytest
import torch
from helpers.training import BATCH, PATCH, Crash, ToySource, config, crash_at, tiny
from torch import nn

from sr_compress.checkpoint import load_checkpoint
from sr_compress.color import rgb_to_ycbcr
from sr_compress.errors import CheckpointError, ConfigError, DataError, OutputExistsError
from sr_compress.models.capture import capture_outputs
from sr_compress.train.losses import charbonnier_loss, l1_loss, mse_loss, pixel_loss, reduce_loss
from sr_compress.train.strategies import (
    Strategy,
    build_strategy,
    list_strategies,
    register_strategy,
)
from sr_compress.train.trainer import TrainConfig, Trainer


class Probe(Strategy):
    """L1 that records what it was given (batches, model mode) and which hooks ran when."""

    def __init__(self) -> None:
        super().__init__()
        self.batches, self.events, self.training = [], [], []

    def loss(self, ctx, batch):
        self.batches.append(batch)
        self.training.append(ctx.model.training)
        return l1_loss(ctx.forward(batch.x), batch.y)

    def on_train_start(self, ctx):
        self.events.append(("train_start", ctx.step))

    def on_round_start(self, ctx):
        self.events.append(("round_start", ctx.step, ctx.round, len(ctx.optimizer.state)))

    def on_epoch_end(self, ctx):
        self.events.append(("epoch_end", ctx.step, ctx.epoch))

    def on_step_end(self, ctx):
        self.events.append(("step_end", ctx.step))


class TeacherProbe(Probe):
    needs_teacher = True
    needs_teacher_features = True


@register_strategy("_test_stateful")
class Stateful(Strategy):
    """Uses every kind of state a resume must restore: an extra trainable gain, its own counter (``age``)
    and the global random generator."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))
        self.age = 0

    def extra_params(self):
        return [self.gain]

    def loss(self, ctx, batch):
        jitter = 1 + 0.1 * torch.rand(1)
        ctx.metrics["age"] = self.age
        return l1_loss(ctx.forward(batch.x) * self.gain, batch.y) * jitter * (1 + 0.05 * self.age)

    def on_step_end(self, ctx):
        self.age += 1

    def state_dict(self):
        return {"age": self.age}

    def load_state_dict(self, state):
        self.age = state["age"]


@register_strategy("_test_scaled")
class Scaled(Strategy):
    def __init__(self, factor: float = 2.0) -> None:
        super().__init__(factor=factor)
        self.factor = factor

    def loss(self, ctx, batch):
        return self.factor * l1_loss(ctx.forward(batch.x), batch.y)


# -- losses --------------------------------------------------------------------------------------------------
def test_losses_numbers():
    p, t = torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    assert l1_loss(p, t).item() == pytest.approx(7 / 4)
    assert mse_loss(p, t, reduction="sum").item() == pytest.approx(1 + 4 + 16)
    assert torch.equal(l1_loss(p, t, reduction="none"), (p - t).abs())
    w = torch.tensor([[0.5, 1.0], [0.0, 2.0]])
    # the weight multiplies prediction and target: effective weight w for L1, w² for MSE (AIL)
    assert mse_loss(p, t, weight=w, reduction="sum").item() == pytest.approx(0.25 * 1 + 0 + 0 + 4 * 16)
    assert l1_loss(p, t, weight=w).item() == pytest.approx((0.5 + 0 + 0 + 8) / 4)
    assert charbonnier_loss(t, t).item() == pytest.approx(1e-3)
    assert charbonnier_loss(p, t, reduction="sum").item() == pytest.approx(7 + 1e-3, abs=1e-5)  # eps at d = 0
    assert pixel_loss("mse") is mse_loss


def test_losses_reject_bad_input():
    with pytest.raises(ConfigError, match="mean, sum, none"):
        reduce_loss(torch.ones(2), "max")
    with pytest.raises(ConfigError, match="l1, mse, charbonnier"):
        pixel_loss("ssim")
    with pytest.raises(ValueError, match="differ in shape"):
        l1_loss(torch.ones(1, 3, 4, 4), torch.ones(1, 1, 4, 4))


def test_rgb_weight_map_broadcasts():
    p, t = torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5)
    w = torch.rand(2, 1, 5, 5)
    assert mse_loss(p, t, weight=w).item() == pytest.approx(((p - t) ** 2 * w**2).mean().item(), rel=1e-6)


# -- configuration -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, message", [
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"lr": "fast"}, "lr must be a positive number"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of adam, sgd"),
    ({"scheduler": "cosine"}, "scheduler must be one of none, step, onecycle"),
    ({"betas": (0.9, 1.5)}, "betas must be two numbers"),
    ({"momentum": 1.0}, "momentum must be in"),
    ({"grad_clip": -1.0}, "grad_clip must be >= 0"),
    ({"reduction": "none"}, "reduction must be one of mean, sum"),
    ({"pct_start": 1.0}, "pct_start"),
    ({"gamma": 0.0}, "gamma"),
    ({"steps": 10, "rounds": 3}, r"steps \(10\) must be a multiple of rounds \(3\)"),
    ({"device": "tpu"}, "device must be"),
    ({"ckpt_every": -1}, "ckpt_every must be an integer >= 0"),
])
def test_config_validation(bad, message):
    with pytest.raises(ConfigError, match=message):
        config(**bad)


def test_config_from_dict():
    c = TrainConfig.from_dict({"steps": 10, "betas": [0.8, 0.99], "scheduler": "onecycle"})
    assert c.betas == (0.8, 0.99) and c.steps == 10
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown key.*lr_decay.*valid keys: steps"):
        TrainConfig.from_dict({"lr_decay": 0.5})


# -- strategy registry ---------------------------------------------------------------------------------------
def test_strategy_registry():
    assert {"l1", "mse", "charbonnier", "_test_scaled", "_test_stateful"} <= set(list_strategies())
    with pytest.raises(ConfigError, match=r"unknown strategy 'nope'; choose one of: .*\bl1, .*\bmse\b"):
        build_strategy("nope")
    with pytest.raises(ConfigError, match="unknown hyper-parameter.*beta.*valid: none"):
        build_strategy("l1", beta=0.1)
    s = build_strategy("_test_scaled", factor=3.0)
    assert isinstance(s, Scaled) and s.describe() == {"name": "_test_scaled", "factor": 3.0}
    with pytest.raises(ConfigError, match="valid: factor"):
        build_strategy("_test_scaled", fator=3.0)
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy("l1")(Scaled)


def test_capture_outputs_unknown_module():
    with pytest.raises(ConfigError, match="no submodule"):
        with capture_outputs(tiny(), ["body.9"]):
            pass


# -- the loop ------------------------------------------------------------------------------------------------
def test_loss_decreases():
    result = Trainer(tiny(), "l1", ToySource(), config(steps=30, lr=2e-3, log_every=1)).fit()
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 30 and result.steps == 30 and result.last_loss == losses[-1]
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0]  # measured: 0.178 → 0.073


@pytest.mark.parametrize("strategy, reduction", [("mse", "mean"), ("l1", "sum")])
def test_plain_strategies_compute_their_loss(strategy, reduction):
    model, seen = tiny(), []
    Trainer(model, strategy, ToySource(), config(steps=1, lr=1e-9, reduction=reduction),
            progress=seen.append).fit()
    lr, hr = ToySource().batch(0)
    fresh = tiny()
    want = {"mse": mse_loss, "l1": l1_loss}[strategy](fresh(lr), hr, reduction=reduction).item()
    assert seen[0]["loss"] == pytest.approx(want, rel=1e-6)


def test_teacher_outputs_and_features_are_passed():
    teacher, student, probe = tiny(seed=1, n_feats=12), tiny(), TeacherProbe()
    before = [p.clone() for p in teacher.parameters()]
    Trainer(student, probe, ToySource(), config(steps=2), teacher=teacher).fit()
    b = probe.batches[1]
    lr, hr = ToySource().batch(1)
    assert torch.equal(b.lr, lr) and torch.equal(b.hr, hr) and torch.equal(b.x, lr) and torch.equal(b.y, hr)
    with torch.no_grad(), capture_outputs(teacher, ["body.0", "body.1"]) as feats:
        want = teacher(lr)
    assert torch.equal(b.teacher_y, want) and not b.teacher_y.requires_grad
    assert [f.shape for f in b.teacher_features] == [(BATCH, 12, PATCH, PATCH)] * 2
    assert all(torch.equal(a, w) for a, w in zip(b.teacher_features, feats, strict=True))
    assert all(torch.equal(a, w) for a, w in zip(teacher.parameters(), before, strict=True))  # frozen


def test_teacher_required_and_compatible():
    with pytest.raises(ConfigError, match="needs a teacher"):
        Trainer(tiny(), TeacherProbe(), ToySource(), config())
    with pytest.raises(ConfigError, match="teacher is ×3 but the student is ×2"):
        Trainer(tiny(), TeacherProbe(), ToySource(), config(), teacher=tiny(scale=3))
    with pytest.raises(ConfigError, match="colour space"):
        Trainer(tiny(), TeacherProbe(), ToySource(), config(), teacher=tiny("vdsr"))


def test_y_model_trains_on_y_channel():
    probe = Probe()
    Trainer(tiny("fsrcnn", channels=1), probe, ToySource(), config(steps=1)).fit()
    b = probe.batches[0]
    assert b.x.shape == (BATCH, 1, PATCH, PATCH) and b.y.shape == (BATCH, 1, 2 * PATCH, 2 * PATCH)
    assert torch.equal(b.x, rgb_to_ycbcr(b.lr)[:, :1]) and torch.equal(b.y, rgb_to_ycbcr(b.hr)[:, :1])


def test_hooks_rounds_and_epochs():
    probe = Probe()
    Trainer(tiny(), probe, ToySource(), config(steps=12, rounds=3, epoch_length=5)).fit()
    ev = probe.events
    assert ev[0] == ("train_start", 0)
    # each round starts with a fresh optimiser (no Adam state yet)
    assert [e for e in ev if e[0] == "round_start"] == [("round_start", s, r, 0) for s, r in ((0, 0), (4, 1), (8, 2))]
    assert [e for e in ev if e[0] == "epoch_end"] == [("epoch_end", 5, 1.0), ("epoch_end", 10, 2.0)]
    assert [e[1] for e in ev if e[0] == "step_end"] == list(range(1, 13))
    assert all(probe.training)


def test_extra_params_are_optimised():
    strategy = Stateful()
    Trainer(tiny(), strategy, ToySource(), config(steps=5, lr=1e-2)).fit()
    assert abs(strategy.gain.item() - 1.0) > 1e-3 and strategy.age == 5


def test_grad_clip_bounds_the_update():
    model = tiny()
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    Trainer(model, "l1", ToySource(), config(steps=1, optimizer="sgd", momentum=0.0, lr=1.0, grad_clip=1e-3)).fit()
    step = torch.cat([p.detach().flatten() for p in model.parameters()]) - start
    assert step.norm().item() == pytest.approx(1e-3, rel=1e-3)  # unclipped gradient norm is about 0.09


def test_progress_history_and_validation():
    seen, calls = [], []

    def validate(model):
        calls.append(model.training)
        return {"val_score": 10.0 + len(calls)}

    result = Trainer(tiny(), Stateful(), ToySource(), config(steps=6, log_every=4, val_every=3),
                     progress=seen.append, validate=validate).fit()
    assert [r["step"] for r in seen] == [1, 2, 3, 4, 5, 6]
    assert {"step", "steps", "loss", "lr", "elapsed", "round", "epoch", "age"} <= set(seen[0])
    assert seen[2]["val_score"] == 11.0 and seen[5]["val_score"] == 12.0 and "val_score" not in seen[3]
    assert calls == [False, False]  # validated in eval mode
    # every validation is kept in the history, besides the log_every records
    assert [h["step"] for h in result.history] == [3, 4, 6] and result.history[0]["val_score"] == 11.0
    assert result.history[-1]["val_score"] == 12.0


def test_nan_loss_is_an_error():
    class Broken(Probe):
        def loss(self, ctx, batch):
            return super().loss(ctx, batch) * float("nan")

    with pytest.raises(ConfigError, match="loss became nan at step 1"):
        Trainer(tiny(), Broken(), ToySource(), config()).fit()


def test_source_shape_errors():
    with pytest.raises(DataError, match="expected 8×3×H×W"):
        Trainer(tiny(), "l1", ToySource(), config(batch_size=8)).fit()
    with pytest.raises(DataError, match="expected HR = LR × 2"):
        Trainer(tiny(), "l1", ToySource(scale=3), config()).fit()


# -- checkpoints and resume ----------------------------------------------------------------------------------
def test_checkpoint_contents(tmp_path):
    model, strategy = tiny(), Stateful()
    result = Trainer(model, strategy, ToySource(), config(steps=4, ckpt_every=2), out_dir=tmp_path).fit()
    assert result.checkpoint == tmp_path / "last.pt" and result.final == tmp_path / "final.pt"
    raw = torch.load(tmp_path / "last.pt", weights_only=True)
    st = raw["train_state"]
    assert st["step"] == 4 and st["config"] == config(steps=4, ckpt_every=2).to_dict()
    assert st["strategy"] == {"name": "_test_stateful", "params": {}, "state": {"age": 4}}
    assert torch.equal(st["extra_params"][0], strategy.gain.detach())
    assert len(st["optimizer"]["state"]) == len(list(model.parameters())) + 1  # the model's and the gain
    assert [h["step"] for h in st["history"]] == [1, 2, 3, 4] and st["last_loss"] == result.last_loss
    loaded = load_checkpoint(tmp_path / "final.pt").model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    assert "train_state" in load_checkpoint(tmp_path / "last.pt").extra


def test_fresh_run_refuses_existing_state(tmp_path):
    Trainer(tiny(), "l1", ToySource(), config(steps=1), out_dir=tmp_path).fit()
    with pytest.raises(OutputExistsError, match="last.pt exists: resume from it, or use --force"):
        Trainer(tiny(), "l1", ToySource(), config(steps=1), out_dir=tmp_path).fit()
    Trainer(tiny(), "l1", ToySource(), config(steps=1), out_dir=tmp_path, force=True).fit()


RESUME_CASES = {
    "adam-onecycle": ({"optimizer": "adam", "scheduler": "onecycle", "lr": 3e-3, "ckpt_every": 4}, 6, 4),
    "sgd-step-clip-rounds": ({"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 1e-4,
                              "scheduler": "step", "step_size": 3, "gamma": 0.5, "grad_clip": 0.05,
                              "rounds": 2, "ckpt_every": 5}, 7, 5),  # resume on a round boundary
    "sgd-onecycle-mid-round": ({"optimizer": "sgd", "lr": 0.5, "scheduler": "onecycle", "grad_clip": 0.05,
                                "rounds": 2, "ckpt_every": 3}, 8, 6),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_is_exact(case, tmp_path):
    settings, crash, saved_at = RESUME_CASES[case]
    cfg = config(steps=10, **settings)
    full_strategy = Stateful()
    full = Trainer(tiny(), full_strategy, ToySource(), cfg, out_dir=tmp_path / "a").fit()

    with pytest.raises(Crash):
        Trainer(tiny(), Stateful(), ToySource(), cfg, out_dir=tmp_path / "b", progress=crash_at(crash)).fit()
    last = tmp_path / "b" / "last.pt"
    assert torch.load(last, weights_only=True)["train_state"]["step"] == saved_at
    strategy = Stateful()
    torch.manual_seed(123)  # a different random state: the checkpoint's must win
    resumed = Trainer(tiny(seed=5), strategy, ToySource(), cfg, out_dir=tmp_path / "b").fit(resume=last)

    assert resumed.resumed_from == saved_at and resumed.steps == 10
    for name, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert torch.equal(strategy.gain, full_strategy.gain) and strategy.age == full_strategy.age == 10
    assert resumed.last_loss == full.last_loss
    assert [(h["step"], h["loss"]) for h in resumed.history] == [(h["step"], h["loss"]) for h in full.history]


def test_resume_checks_what_it_continues(tmp_path):
    Trainer(tiny(), "l1", ToySource(), config(steps=2, ckpt_every=1), out_dir=tmp_path).fit()
    last = tmp_path / "last.pt"
    with pytest.raises(ConfigError, match=r"different settings \(lr: 0.001 → 0.002\)"):
        Trainer(tiny(), "l1", ToySource(), config(steps=2, lr=2e-3), out_dir=tmp_path).fit(resume=last)
    with pytest.raises(ConfigError, match="strategy l1 .*not mse"):
        Trainer(tiny(), "mse", ToySource(), config(steps=2), out_dir=tmp_path).fit(resume=last)
    with pytest.raises(CheckpointError, match="was trained for edsr"):
        Trainer(tiny(n_feats=4), "l1", ToySource(), config(steps=2), out_dir=tmp_path).fit(resume=last)
    with pytest.raises(CheckpointError, match="no training state"):
        Trainer(tiny(), "l1", ToySource(), config(steps=2), out_dir=tmp_path).fit(resume=tmp_path / "final.pt")
    # logging and checkpoint frequency may change; a finished run resumes to its end at once
    done = Trainer(tiny(), "l1", ToySource(), config(steps=2, log_every=5), out_dir=tmp_path).fit(resume=last)
    assert done.resumed_from == 2 and done.steps == 2


def test_psnr_validator_matches_metrics():
    metrics = pytest.importorskip("sr_compress.metrics", reason="sr_compress.metrics is written by another helper")
    from sr_compress.infer import super_resolve
    from sr_compress.train.trainer import psnr_validator

    lr, hr = ToySource().batch(0)
    pairs = [types.SimpleNamespace(name=f"p{i}", lr=lr[i:i + 1], hr=hr[i:i + 1]) for i in range(2)]
    model = tiny().eval()
    got = psnr_validator(pairs)(model)["val_psnr"]
    want = [metrics.psnr(super_resolve(model, p.lr), p.hr, crop=2) for p in pairs]
    assert got == pytest.approx(sum(want) / 2) and 0 < got < 60
