"""The fine-tuning strategies (KD, AIL, PSPL): their maths pinned by numbers, determinism and exact resume.

Tiny models and the toy source of test_trainer.py (its helpers are reused, not copied).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.training import BATCH, PATCH, Crash, ToySource, config, crash_at, tiny

from sr_compress import metrics
from sr_compress.errors import ConfigError
from sr_compress.models.capture import capture_outputs
from sr_compress.train.losses import mse_loss, training_ssim_map
from sr_compress.train.strategies import build_strategy
from sr_compress.train.strategies.ail import (
    AIL_OFFICIAL,
    AILStrategy,
    round_lambda,
    teacher_importance,
    update_importance,
)
from sr_compress.train.strategies.pspl import DELTA_MIN, pspl_attention, pspl_delta
from sr_compress.train.trainer import TrainConfig, Trainer, check_teacher


# -- feature capture -------------------------------------------------------------------------------------------
def test_captured_conv_output_is_the_conv_output_not_the_relu_after_it():
    """EDSR's block applies ReLU(inplace=True) to conv1's output: the record must be taken before it."""
    model = tiny().eval()
    x = torch.rand(2, 3, 10, 10)
    with torch.no_grad(), capture_outputs(model, ["head", "body.0.conv1"]) as feats:
        model(x)
    head, conv1 = feats
    want = model.body[0].conv1(head)  # the conv's true output, recomputed
    assert torch.equal(conv1, want)
    assert conv1.min() < 0  # an in-place-ReLU'd record could not be negative
    assert not torch.equal(conv1, torch.relu(want))


def test_captured_student_features_keep_their_gradient():
    model = tiny()
    with capture_outputs(model, ["body.0.conv1"]) as feats:
        model(torch.rand(1, 3, 8, 8))
    feats[0].sum().backward()
    assert model.body[0].conv1.weight.grad is not None and model.body[0].conv1.weight.grad.abs().sum() > 0


# -- AIL maths --------------------------------------------------------------------------------------------------
def test_teacher_importance_is_normalised_and_decreasing():
    e = torch.linspace(0, 1, 101, dtype=torch.float64)
    g = teacher_importance(e)
    assert g[0].item() == pytest.approx(1.0, abs=1e-7)  # g(0) = 1
    assert torch.all(g[1:] < g[:-1]) and g.min() >= 0
    z = 1 + math.exp(-1.0)  # μ0·α0 = 1
    assert teacher_importance(torch.tensor(0.01)).item() == pytest.approx(z / 2, rel=1e-6)  # e = μ0
    assert teacher_importance(torch.tensor(0.05)).item() == pytest.approx(z / (1 + math.exp(4)), rel=1e-5)
    assert torch.isfinite(teacher_importance(torch.tensor([50.0]))).all()  # no overflow far out


def _objective(w: np.ndarray, w0: float, d: float, lam: float) -> np.ndarray:
    """Theorem 1's objective d·w + (w − w0)(ln((w − w0)/λ) − 1), with its limit 0 at w = w0."""
    u = np.maximum(w - w0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(u > 0, u * (np.log(u / lam) - 1), 0.0)
    return d * w + ent


def _numerical_minimiser(w0: float, d: float, lam: float) -> float:
    """Dense grid on [w0, 1], then golden-section search around the best point (the objective is convex)."""
    grid = np.linspace(w0, 1.0, 20001)
    i = int(np.argmin(_objective(grid, w0, d, lam)))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(100):
        a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if _objective(np.array(a), w0, d, lam) < _objective(np.array(b), w0, d, lam):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


@pytest.mark.parametrize("w0, d, lam", [(0.0, 0.0, 0.15), (0.2, 0.5, 0.3), (0.5, 3.0, 0.15), (0.9, 0.1, 0.45),
                                        (0.7, 0.0, 1.5), (0.05, 10.0, 0.6), (1.0, 2.0, 0.3), (0.3, 1.0, 1e-3)])
def test_theorem_1_closed_form_is_the_minimiser(w0, d, lam):
    closed = update_importance(torch.tensor(w0, dtype=torch.float64), torch.tensor(d, dtype=torch.float64),
                               lam).item()
    assert closed == pytest.approx(_numerical_minimiser(w0, d, lam), abs=1e-6)
    assert w0 <= closed <= 1.0


def test_update_clamps_and_is_monotone_in_lambda():
    g = torch.Generator().manual_seed(0)
    w0, d = torch.rand(1000, generator=g), 3 * torch.rand(1000, generator=g)
    prev = None
    for lam in (0.0, 0.15, 0.3, 0.6, 1.35, 5.0):
        w = update_importance(w0, d, lam)
        assert w.min() >= 0 and w.max() <= 1 and torch.all(w >= w0)
        if prev is not None:
            assert torch.all(w >= prev)
        prev = w
    assert torch.equal(update_importance(w0, d, 0.0), w0)
    assert torch.all(update_importance(w0, d, 5.0)[d < 0.1] == 1.0)  # clamped at 1
    assert [round_lambda(t) for t in (1, 2, 10)] == pytest.approx([0.15, 0.30, 1.50])


def test_ail_weights_the_loss_with_detached_importance():
    """Round 0: loss = Σ (w0·S − w0·y)² with w0 = g(|T − y|); the gradient treats w0 as a constant."""
    student, teacher = tiny(), tiny(seed=1)
    lr, hr = ToySource().batch(0)
    s = AILStrategy()
    ctx = _ctx(student, teacher, reduction="sum")
    batch = _batch(lr, hr, teacher)
    w = s.importance(ctx, batch)
    assert not w.requires_grad and w.grad_fn is None
    assert torch.equal(w, teacher_importance((teacher(lr).detach() - hr).abs()))
    pred = student(lr)
    pred.retain_grad()
    ctx.forward = lambda x: pred
    loss = s.loss(ctx, batch)
    assert loss.item() == pytest.approx(mse_loss(pred, hr, weight=w, reduction="sum").item(), rel=1e-6)
    loss.backward()
    assert torch.allclose(pred.grad, 2 * w * w * (pred - hr).detach(), atol=1e-6)
    assert ctx.metrics["importance"] == pytest.approx(w.mean().item())


def test_ail_rounds_use_a_snapshot_of_the_previous_round():
    teacher, seen, states = tiny(seed=1), [], {}

    def progress(rec):
        seen.append(rec)
        if rec["step"] == 3:  # end of round 0 (3 steps per round)
            states["end0"] = {k: v.clone() for k, v in student.state_dict().items()}

    student, s = tiny(), AILStrategy()
    Trainer(student, s, ToySource(), config(steps=6, rounds=2), teacher=teacher, progress=progress).fit()
    snap = s.snapshot.state_dict()
    assert all(torch.equal(snap[k], v) for k, v in states["end0"].items())
    assert not any(p.requires_grad for p in s.snapshot.parameters())
    # round 1 importance = clamp(w0 + 0.15·exp(−10|S0 − y|)) ≥ w0: its mean grows
    r0, r1 = [r["importance"] for r in seen[:3]], [r["importance"] for r in seen[3:]]
    assert min(r1) > max(r0)
    assert seen[2]["importance_round"] == pytest.approx(sum(r0) / 3)
    assert seen[3]["importance_round"] == pytest.approx(r1[0])  # restarted at the round


def test_ail_ablations_need_no_teacher():
    zeros, rand = build_strategy("ail", init="zeros"), build_strategy("ail", init="random")
    assert not zeros.needs_teacher and not rand.needs_teacher and build_strategy("ail").needs_teacher
    lr, hr = ToySource().batch(0)
    ctx = _ctx(tiny(), None)
    w = rand.initial_importance(ctx, _batch(lr, hr, None))
    assert 0.45 < w.mean().item() < 0.55 and w.min() >= 0 and w.max() <= 1
    assert torch.equal(w, rand.initial_importance(ctx, _batch(lr, hr, None)))  # a function of (seed, step)
    assert zeros.initial_importance(ctx, _batch(lr, hr, None)).abs().sum() == 0


def test_ail_official_preset_is_a_valid_config():
    c = TrainConfig(**{**AIL_OFFICIAL, "steps": 22})
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay, c.grad_clip, c.reduction) == \
        ("sgd", 0.1, 0.9, 1e-4, 0.4, "sum")
    assert (c.scheduler, c.step_size, c.gamma, c.rounds) == ("step", 10 * c.epoch_length, 0.1, 11)


# -- PSPL maths --------------------------------------------------------------------------------------------------
def test_training_ssim_map_agrees_with_the_metric_inside_the_valid_region():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 24, 24, generator=g, dtype=torch.float64) * 255
    b = (a + 30 * torch.randn(1, 1, 24, 24, generator=g, dtype=torch.float64)).clamp(0, 255)
    same = training_ssim_map(a, b, data_range=255.0)
    assert same.shape == a.shape and not same.requires_grad
    assert torch.allclose(same[0, :, 5:-5, 5:-5], metrics.ssim_map(a[0], b[0]), atol=1e-10)
    assert torch.allclose(training_ssim_map(a, a, data_range=255.0), torch.ones_like(a))


def test_training_ssim_map_is_per_channel_and_detached():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    y = torch.rand(2, 3, 16, 16)
    m = training_ssim_map(x, y)
    assert m.shape == x.shape and m.grad_fn is None and not m.requires_grad
    one = training_ssim_map(x[:, 1:2], y[:, 1:2])
    assert torch.allclose(m[:, 1:2], one)
    assert m.min() >= -1 and m.max() <= 1


def test_pspl_attention_tends_to_gamma_and_guards_delta_zero():
    m_s = torch.linspace(-1, 1, 41)
    assert torch.allclose(pspl_attention(m_s, 1e6), torch.full_like(m_s, 2.0), atol=1e-9)
    gaps = [(2.0 - pspl_attention(m_s, d)).abs().max().item() for d in (0.5, 2, 10, 100)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3
    assert pspl_delta(0.0) == DELTA_MIN and pspl_delta(2.5) == 2.5 and pspl_delta(1.0, alpha=2, beta=0.5) == 2.5
    at0 = pspl_attention(m_s, pspl_delta(0.0))
    assert torch.isfinite(at0).all() and at0[0] == 2.0 and at0[1:].max() < 1e-12  # only m_s = μ = −1 survives
    assert pspl_attention(torch.tensor(0.0), 1.0).item() == pytest.approx(2 * math.exp(-1))


def test_pspl_loss_gradient_treats_the_attention_as_a_constant():
    s = build_strategy("pspl")
    student = tiny()
    lr, hr = ToySource().batch(0)
    ctx = _ctx(student, None, epoch_length=10)
    ctx.step = 7  # age 0.7
    pred = student(lr)
    pred.retain_grad()
    ctx.forward = lambda x: pred
    loss = s.loss(ctx, _batch(lr, hr, None))
    m_a = pspl_attention(training_ssim_map(pred, hr), 0.7)
    assert ctx.metrics["age"] == pytest.approx(0.7) and ctx.metrics["delta"] == pytest.approx(0.7)
    assert loss.item() == pytest.approx((m_a * (pred - hr)).abs().mean().item(), rel=1e-6)
    loss.backward()
    assert torch.allclose(pred.grad, m_a * torch.sign(pred - hr).detach() / pred.numel(), atol=1e-9)


def test_pspl_ssim_ranges_differ():
    x, y = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    proper, faithful = build_strategy("pspl"), build_strategy("pspl", ssim_range="faithful")
    assert torch.allclose(faithful.similarity(x, y), training_ssim_map(255 * x, 255 * y, data_range=1.0))
    assert torch.allclose(proper.similarity(x, y), training_ssim_map(x, y))
    assert not torch.allclose(proper.similarity(x, y), faithful.similarity(x, y), atol=1e-3)


# -- KD -------------------------------------------------------------------------------------------------------------
def test_kd_is_eq_10():
    student, teacher, seen = tiny(), tiny(seed=1, n_feats=12), []
    Trainer(student, build_strategy("kd"), ToySource(), config(steps=1, lr=1e-9), teacher=teacher,
            progress=seen.append).fit()
    lr, hr = ToySource().batch(0)
    with torch.no_grad():
        pred, t = tiny()(lr), teacher(lr)
    want = mse_loss(pred, hr) + 0.1 * mse_loss(pred, t)
    assert seen[0]["loss"] == pytest.approx(want.item(), rel=1e-5)
    assert seen[0]["distill"] == pytest.approx(mse_loss(pred, t).item(), rel=1e-5)
    l1 = build_strategy("kd", beta=0.5, criterion="l1")
    assert l1.describe() == {"name": "kd", "beta": 0.5, "criterion": "l1"}


# -- options and teachers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, options, message", [
    ("ail", {"init": "ones"}, "init must be one of teacher, zeros, random"),
    ("ail", {"alpha0": 0}, "alpha0 must be a finite number > 0"),
    ("ail", {"sigma": "ten"}, "sigma must be a finite number"),
    ("pspl", {"ssim_range": "0-255"}, "ssim_range must be one of proper, faithful"),
    ("pspl", {"alpha": -1}, "alpha must be a finite number >= 0"),
    ("kd", {"criterion": "ssim"}, "criterion must be one of l1, mse, charbonnier"),
    ("kd", {"beta": float("nan")}, "beta must be a finite number"),
    ("kd", {"temperature": 2}, "unknown hyper-parameter.*temperature.*valid: beta, criterion"),
])
def test_bad_options(name, options, message):
    with pytest.raises(ConfigError, match=message):
        build_strategy(name, **options)


def test_teacher_given_exactly_when_used():
    s, t = tiny(), tiny(seed=1)
    with pytest.raises(ConfigError, match="strategy 'ail' needs a teacher"):
        check_teacher(build_strategy("ail"), s, None)
    with pytest.raises(ConfigError, match="strategy 'l1' uses no teacher; drop --teacher"):
        check_teacher(build_strategy("l1"), s, t)
    with pytest.raises(ConfigError, match="strategy 'ail' with .*'init': 'zeros'.* uses no teacher"):
        check_teacher(build_strategy("ail", init="zeros"), s, t)
    with pytest.raises(ConfigError, match="teacher is ×3 but the student is ×2"):
        check_teacher(build_strategy("kd"), s, tiny(scale=3))
    with pytest.raises(ConfigError, match="colour space"):
        check_teacher(build_strategy("kd"), tiny("vdsr"), t)
    check_teacher(build_strategy("pspl"), s, None)
    check_teacher(build_strategy("kd"), tiny("vdsr"), tiny("vdsr", seed=1, n_feats=12))  # Y with Y


# -- determinism and exact resume --------------------------------------------------------------------------
CASES = {
    "kd": ("kd", {}, {}),
    "ail": ("ail", {}, {"rounds": 2}),
    "ail-random-sgd-sum": ("ail", {"init": "random"}, {"rounds": 2, "optimizer": "sgd", "lr": 0.05,
                                                       "reduction": "sum", "grad_clip": 0.4}),
    "pspl": ("pspl", {}, {"epoch_length": 4}),
    "pspl-faithful": ("pspl", {"ssim_range": "faithful"}, {"epoch_length": 3}),
}


def _run(case, out_dir=None, progress=None, resume=None, seed_model=0):
    name, options, settings = CASES[case]
    strategy = build_strategy(name, **options)
    teacher = tiny(seed=1, n_feats=12) if strategy.needs_teacher else None
    cfg = config(steps=8, ckpt_every=3, **settings)
    trainer = Trainer(tiny(seed=seed_model), strategy, ToySource(), cfg, teacher=teacher, out_dir=out_dir,
                      progress=progress)
    return trainer.fit(resume=resume), strategy


@pytest.mark.parametrize("case", list(CASES))
def test_strategy_is_deterministic_and_resumes_exactly(case, tmp_path):
    full, full_strategy = _run(case, tmp_path / "a")
    again, _ = _run(case)
    for k, v in full.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v), k

    with pytest.raises(Crash):  # saved at step 6: inside round 1 of 2 (4 steps each) for AIL
        _run(case, tmp_path / "b", progress=crash_at(7))
    torch.manual_seed(123)
    resumed, strategy = _run(case, tmp_path / "b", resume=tmp_path / "b" / "last.pt", seed_model=5)
    assert resumed.resumed_from == 6
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    keys = [k for k in full.history[0] if k not in ("elapsed",)]
    assert [[h[k] for k in keys] for h in resumed.history] == [[h[k] for k in keys] for h in full.history]
    if case.startswith("ail"):
        a, b = full_strategy.snapshot.state_dict(), strategy.snapshot.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)  # the round's snapshot came back from the checkpoint
    if case.startswith("pspl"):  # age = steps done before the step / epoch_length, kept across the resume
        ep = CASES[case][2]["epoch_length"]
        assert [h["age"] for h in resumed.history] == pytest.approx([(h["step"] - 1) / ep for h in full.history])


# -- helpers -----------------------------------------------------------------------------------------------------
def _ctx(model, teacher, **cfg):
    from sr_compress.train.strategies import TrainContext

    return TrainContext(model=model, forward=model, config=config(**cfg), device=torch.device("cpu"),
                        teacher=teacher)


def _batch(lr, hr, teacher):
    from sr_compress.train.strategies import Batch

    ty = None
    if teacher is not None:
        with torch.no_grad():
            ty = teacher(lr)
    return Batch(x=lr, y=hr, lr=lr, hr=hr, teacher_y=ty)


assert BATCH == 4 and PATCH == 12  # the toy source's sizes the numbers above assume
