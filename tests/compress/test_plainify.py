"""plainify (MemSR): exact plain equivalent, winning initialisation, memory budget, checkpoint, CLI, ONNX."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import foreign
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sr_compress.checkpoint import load_checkpoint, save_checkpoint
from sr_compress.compress.plainify import parse_bytes, plainify
from sr_compress.compress.plainify.exact import (
    PlainifyError,
    plainify_exact,
    realise,
    shift_bound,
    teacher_chain,
    verify,
)
from sr_compress.compress.plainify.winning_init import student_bound, winning_init
from sr_compress.errors import BudgetExceededError, ConfigError, VerificationError
from sr_compress.models import build_model
from sr_compress.ops.plainify import plainify_file

PROPS = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


def edsr(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = build_model("edsr", **{"scale": 2, "n_feats": 6, "n_blocks": 2, **kw}).eval()
    with torch.no_grad():  # larger random weights than the default init: non-trivial ReLU patterns
        for p in m.parameters():
            p.mul_(1.5)
    return m


def calib(channels: int = 3, n: int = 4, size: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


nets = st.fixed_dictionaries({
    "n_blocks": st.integers(0, 3), "n_feats": st.integers(2, 7), "res_scale": st.sampled_from([0.1, 0.5, 1.0]),
    "scale": st.sampled_from([2, 3, 4]), "img_range": st.sampled_from([1.0, 255.0]), "seed": st.integers(0, 99)})


# -- exact conversion ---------------------------------------------------------------------------------------------
@PROPS
@given(nets)
def test_exact_equivalent_both_schemes_float64(kw):
    kw = dict(kw)
    m = edsr(kw.pop("seed"), **kw)
    chain = teacher_chain(m)
    x = [calib(seed=3), torch.rand(2, 3, 11, 13, generator=torch.Generator().manual_seed(4))]
    for scheme in ("pair", "shift"):
        p64 = realise(chain, scheme, dtype=torch.float64)
        e64, e32, _ = verify(m, p64, copy.deepcopy(p64).float(), x)
        assert e64 <= 1e-9, (scheme, e64)
        assert e32 < 1e-3, (scheme, e32)
        n_tail = 3 if kw["scale"] == 4 else 2
        assert p64.arch == "plain" and len(p64.body) + 1 + len(p64.tail) == 2 * kw["n_blocks"] + 2 + n_tail


def test_exact_stage_reports_errors_and_provenance():
    m = edsr(n_blocks=3, res_scale=0.5)
    plain, rep = plainify_exact(m, scheme="pair")
    assert rep.max_abs_err64 < 1e-12 and 0 < rep.max_abs_err32 < 1e-4
    # pair: head carries ±f (12); conv1 of block 0 ±f and a0 (18); later conv1 ±f, ±r, a (30); conv2 ±f, ±r (24)
    assert rep.widths[:5] == [12, 18, 24, 30, 24] and rep.widths[7] == 6
    assert plain.arch == "plain" and plain.provenance[-1]["stage"] == "plainify"
    assert m.arch == "edsr" and not hasattr(m, "layers")  # input untouched
    plain_s, rep_s = plainify_exact(m, scheme="shift")
    assert rep_s.max_abs_err64 < 1e-12 and rep_s.shift_c == 1000.0 and rep_s.shift_margin > 0
    assert rep_s.max_abs_err32 > rep.max_abs_err32  # the x + C carry costs float32 precision
    assert rep_s.widths[0] == 7  # f + C and the ones channel


def test_shift_scheme_bound_is_checked():
    m = edsr()
    low = shift_bound(teacher_chain(m), m.sub_mean.double()(calib().double()))
    assert low < 0
    with pytest.raises(VerificationError, match="-C"):
        plainify_exact(m, scheme="shift", shift_c=-low / 4, calibration=calib())


@pytest.mark.parametrize("fmt", ["edsr-pytorch", "basicsr", "mmagic"])
def test_foreign_edsr_converts_exactly(tmp_path, fmt):
    f = foreign
    if fmt == "edsr-pytorch":
        obj = f.edsr_pytorch_sd(4)
    elif fmt == "basicsr":
        obj = {"params": f.basicsr_edsr_sd(3)}
    else:
        obj = {"state_dict": {f"generator.{k}": v for k, v in f.basicsr_edsr_sd(
            2, up="upsample.{j}.upsample_conv").items()}}
    path = tmp_path / "t.pth"
    torch.save(obj, path)
    loaded = load_checkpoint(path)
    for scheme in ("pair", "shift"):
        _, rep = plainify_exact(loaded.model, scheme=scheme)
        assert rep.max_abs_err64 < 1e-9


def test_slim_blocks_widths_from_weights():
    m = edsr(n_feats=6, n_blocks=2)
    blk = m.body[1]  # a channel-slimmed block: inner width 3
    blk.conv1 = torch.nn.Conv2d(6, 3, 3, padding=1)
    blk.conv2 = torch.nn.Conv2d(3, 6, 3, padding=1)
    p64 = realise(teacher_chain(m), "pair", dtype=torch.float64)
    assert verify(m, p64, p64, [calib()])[0] < 1e-9


@pytest.mark.parametrize("arch, needle", [("msrresnet", "bilinear"), ("vdsr", "global image residual"),
                                          ("fsrcnn", "ConvTranspose"), ("plain", "already a plain"),
                                          ("imdn", "not a residual chain of convs.*channel attention"),
                                          ("rfdn", "not a residual chain of convs.*spatial attention"),
                                          ("rlfn", "not a residual chain of convs.*spatial attention"),
                                          ("srvgg", "already a plain chain of convs \\(with PReLU\\)")])
def test_unconvertible_archs_are_named(arch, needle):
    from sr_compress.models import tiny_hparams

    with pytest.raises(PlainifyError, match=needle):
        plainify_exact(build_model(arch, **tiny_hparams(arch, 2)))


def test_unconvertible_module_is_named():
    m = edsr()
    m.body[1].act = torch.nn.GELU()
    with pytest.raises(PlainifyError, match=r"body\.1\.act is GELU"):
        plainify_exact(m)
    m = edsr()
    m.tail.append(torch.nn.Sigmoid())
    with pytest.raises(PlainifyError, match="tail.3 is a Sigmoid"):
        plainify_exact(m)
    m = edsr()
    m.body[0].conv2 = torch.nn.Conv2d(6, 6, 3, padding=2, dilation=2)
    with pytest.raises(PlainifyError, match=r"body\.0\.conv2"):
        plainify_exact(m)


# -- winning initialisation ---------------------------------------------------------------------------------------
def _interior(t: torch.Tensor, k: int) -> torch.Tensor:
    return t[..., k:-k, k:-k]


def _all_branch_relus_active(m, x: torch.Tensor) -> None:
    """Raise each block's conv1 bias until its pre-activations are ≥ 1 on ``x`` (block by block)."""
    for blk in m.body:
        seen = []
        h = blk.conv1.register_forward_hook(lambda _m, _i, o, seen=seen: seen.append(float(o.min())))
        with torch.no_grad():
            m(x)
            h.remove()
            blk.conv1.bias.add_(max(0.0, 1.0 - seen[0]))


@PROPS
@given(nets)
def test_eps_zero_student_reproduces_teacher_features(kw):
    """With every branch ReLU active (large conv1 biases) and a large mean shift (no student ReLU clips), the
    full-rank student is the teacher: bridged features and output match inside the border ring."""
    kw = dict(kw)
    m = edsr(kw.pop("seed"), **kw)
    x = calib(size=32)
    _all_branch_relus_active(m, x)
    student, bridges, rep = winning_init(m, eps=0.0, calibration=x, shift_coef=1e6,
                                         dtype=torch.float64)
    depth = len(bridges) + 1
    names = ["head", *[n for j in range(len(m.body)) for n in (f"body.{j}.act", f"body.{j}")]]
    from sr_compress.models.capture import capture_outputs

    t64 = copy.deepcopy(m).double()
    with torch.no_grad(), capture_outputs(t64, names) as tf, capture_outputs(
            student, ["head.0", *(f"body.{i}" for i in range(len(student.body)))]) as sf:
        ty = t64(x.double())
        sy = student(x.double())
    teacher = dict(zip(names, tf, strict=True))
    for b, s_feat in zip(bridges, sf, strict=False):
        target = torch.cat([teacher[n] for n in b.teacher_modules], 1)
        est = torch.einsum("cr,nrhw->nchw", b.weight, s_feat) + b.bias.view(1, -1, 1, 1)
        scale = float(target.abs().max())
        assert float(_interior(est - target, depth).abs().max()) <= 1e-7 * scale, b.name
    s = m.scale
    assert float(_interior(sy - ty, s * (depth + len(student.tail) + 1)).abs().max()) < 1e-6


@PROPS
@given(nets)
def test_widths_shrink_monotonically_with_eps(kw):
    kw = dict(kw)
    m = edsr(kw.pop("seed"), **kw)
    x = calib()
    prev = None
    for eps in (0.0, 0.01, 0.05, 0.1, 0.3, 0.7, 1.0):
        _, _, rep = winning_init(m, eps=eps, calibration=x)
        for row in rep.layers[:-1]:
            assert row["rel_error"] <= eps + 1e-12 and 1 <= row["student_width"] <= row["teacher_width"]
        if prev is not None:
            assert all(a <= b for a, b in zip(rep.widths, prev, strict=True)), (eps, rep.widths, prev)
        prev = rep.widths
    assert prev == [1] * len(prev)


def test_width_mode_round_to_and_report():
    m = edsr(n_feats=7, n_blocks=2)
    _, _, rep = winning_init(m, width=5, calibration=calib())
    assert rep.widths == [5, 5, 5, 5, 5] and rep.layers[-1]["student_width"] == 7
    _, _, rep = winning_init(m, eps=0.3, round_to=8, calibration=calib())
    assert all(w % 8 == 0 or w == row["teacher_width"] for w, row in zip(rep.widths, rep.layers, strict=False))
    with pytest.raises(ConfigError, match="exactly one"):
        winning_init(m, eps=0.1, width=3, calibration=calib())


def test_shuffle_tail_is_one_conv_and_least_squares(tmp_path):
    m = edsr(scale=4, n_feats=8, n_blocks=1)
    x = calib(size=24)
    s, _, rep = winning_init(m, eps=0.05, tail="shuffle", calibration=x)
    assert len(s.tail) == 1 and s.tail[0].conv.out_channels == 48 and rep.tail_rel_error < 0.5
    s_copy, _, rep_copy = winning_init(m, eps=0.05, tail="copy", calibration=x)
    assert len(s_copy.tail) == 3
    assert rep.student_bound_bytes < rep_copy.student_bound_bytes and rep_copy.tail_share == 1.0


def test_default_calibration_is_real_patches_and_fast():
    m = edsr()
    _, _, rep = winning_init(m, eps=0.05, patches=3, patch_size=16, seed=2)
    assert rep.patches == 3 and rep.patch_size == 16 and rep.columns == 3 * 16 * 16
    _, _, again = winning_init(m, eps=0.05, patches=3, patch_size=16, seed=2)
    assert again.widths == rep.widths and again.layers == rep.layers  # deterministic for a seed


# -- memory -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tail", ["copy", "shuffle"])
def test_chain_bound_agrees_with_bound_py(tail):
    from sr_compress.deploy.bound import graph_cost
    from sr_compress.deploy.onnx import simplify_graph, to_onnx

    m = edsr(scale=4 if tail == "copy" else 3, n_feats=6)
    s, _, _ = winning_init(m, eps=0.1, tail=tail, calibration=calib())
    for w, h in ((60, 36), (96, 48)):
        scale = s.scale
        cost = graph_cost(simplify_graph(to_onnx(s)), [1, 3, h // scale, w // scale])
        assert student_bound(s, (w, h)) == cost.bound_bytes


@PROPS
@given(nets, st.floats(0.05, 0.95))
def test_memory_budget_fits(kw, frac):
    kw = dict(kw)
    m = edsr(kw.pop("seed"), **kw)
    x, size = calib(), (240, 120)
    lo = winning_init(m, eps=1.0, tail="shuffle", calibration=x, size=size)[2]
    hi = winning_init(m, eps=0.0, tail="shuffle", calibration=x, size=size)[2]
    budget = int(lo.student_bound_bytes + frac * (hi.student_bound_bytes - lo.student_bound_bytes))
    s, _, rep = winning_init(m, memory_budget=budget, tail="shuffle", calibration=x, size=size)
    assert rep.student_bound_bytes <= budget and student_bound(s, size) == rep.student_bound_bytes
    # the smallest ε that fits: the eps mode at the chosen ε gives the same student
    again = winning_init(m, eps=rep.eps, tail="shuffle", calibration=x, size=size)[2]
    assert again.widths == rep.widths


def test_impossible_budget_names_the_tail():
    m = edsr(scale=4)
    with pytest.raises(BudgetExceededError, match=r"smallest student needs .* tail alone .* --tail shuffle"):
        winning_init(m, memory_budget=10_000, size=(400, 400), calibration=calib())
    assert parse_bytes("200MB") == 200_000_000 and parse_bytes("1.5KiB") == 1536
    with pytest.raises(ConfigError, match="200MB"):
        parse_bytes("lots")


# -- export, checkpoint, CLI ------------------------------------------------------------------------------------
def test_shuffle_student_exports_as_plain_onnx(tmp_path):
    from sr_compress.deploy.onnx import export_onnx

    s, _, _ = winning_init(edsr(scale=4, n_feats=8), eps=0.05, tail="shuffle", calibration=calib())
    rep = export_onnx(s, tmp_path / "s.onnx")
    assert rep.is_plain, rep.plain_reason
    assert set(rep.ops_after) <= {"Conv", "Relu", "DepthToSpace", "Sub", "Mul", "Div", "Add"}
    assert rep.ops_after["DepthToSpace"] == 1 and rep.ops_after["Conv"] == 7


def test_checkpoint_keeps_bridges_weights_only(tmp_path):
    src = save_checkpoint(edsr(), tmp_path / "t.pt")
    out = plainify_file(src, tmp_path / "s.pt", eps=0.05, patches=2, patch_size=16)
    raw = torch.load(out.path, weights_only=True)
    assert len(raw["bridges"]) == 5 and raw["bridges"][0]["teacher_modules"] == ["head"]
    loaded = load_checkpoint(out.path)
    assert loaded.model.arch == "plain" and loaded.extra["bridges"][1]["student_module"] == "body.0"
    assert loaded.extra["bridges"][2]["teacher_modules"] == ["head", "body.0"]
    with pytest.raises(ConfigError, match="exact-only"):
        plainify(edsr(), exact_only=True, tail="shuffle")


def test_cli_plainify(invoke, tmp_path):
    import json

    src = save_checkpoint(edsr(), tmp_path / "t.pt")
    code, out, err = invoke("plainify", src, "--eps", "0.1", "--patches", "2", "--patch-size", "16",
                            "--size", "64x64", "--shift-coef", "30", "--json", "-o", tmp_path / "s.pt")
    assert code == 0, err
    data = json.loads(out)
    assert data["mode"] == "eps" and len(data["layers"]) == 6 and data["student_bound_bytes"] > 0
    assert data["params"]["shift_coef"] == 30.0 and data["bound_size"] == [64, 64]
    code, out, err = invoke("plainify", src, "--exact-only", "--scheme", "shift", "-o", tmp_path / "e.pt")
    assert code == 0 and "float64" in out
    code, _, err = invoke("plainify", src, "--exact-only", "--tail", "shuffle", "-o", tmp_path / "x.pt")
    assert code == 2 and err.startswith("error:") and "exact-only" in err
    code, _, err = invoke("plainify", src, "--eps", "0.1", "-o", tmp_path / "s.pt")
    assert code == 2 and "exists" in err


def test_recipe_stage_plainify(tmp_path):
    from sr_compress.recipes import parse_recipe, run_recipe

    teacher = save_checkpoint(edsr(), tmp_path / "t.pt")
    recipe = parse_recipe({"name": "p", "out": str(tmp_path / "run"), "stage": [
        {"id": "student", "kind": "plainify", "teacher": str(teacher), "eps": 0.1, "tail": "shuffle",
         "size": "64x64", "patches": 2, "patch_size": 16},
        {"id": "exact", "kind": "plainify", "teacher": str(teacher), "exact_only": True, "scheme": "shift"}]})
    student, exact = run_recipe(recipe)
    assert student.status == "ran" and student.summary["student_bound_mb"] > 0
    assert exact.summary["max_err64"] < 1e-9
    assert load_checkpoint(student.artifact).extra["bridges"]
    assert [r.status for r in run_recipe(recipe)] == ["cached", "cached"]


@pytest.mark.parametrize("scheme", ["pair", "shift"])
def test_exact_equivalent_exports_as_plain_onnx(tmp_path, scheme):
    from sr_compress.deploy.onnx import export_onnx

    plain, _ = plainify_exact(edsr(scale=3), scheme=scheme)
    rep = export_onnx(plain, tmp_path / "p.onnx")  # validated against PyTorch by the export itself
    assert rep.is_plain, rep.plain_reason
    assert rep.ops_after["Conv"] == 2 * 2 + 2 + 2 and "DepthToSpace" in rep.ops_after
