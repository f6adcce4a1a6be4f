"""Channel slimming: coupled groups for every family, exact surgery, widths, determinism, CLI and recipe."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.cli import one_error_line
from helpers.foreign import _save, basicsr_edsr_sd, edsr_pytorch_sd, msrresnet_sd, vdsr_sd
from helpers.models import tiny_model

from sr_compress.checkpoint import load_checkpoint, save_checkpoint
from sr_compress.compress.slim import choose_channels, group_importance, slim, slim_width
from sr_compress.errors import ConfigError
from sr_compress.models import SRModel, build_model, count_params, list_models, model_class, tiny_hparams

# the families that declare their coupled channel groups (ASRN does not: its split / shuffle coupling is not
# expressible as whole-channel groups, see docs/asrn.md)
ARCHS = [a for a in list_models() if model_class(a).channel_groups is not SRModel.channel_groups]


def test_families_without_groups_refuse_to_slim():
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="asrn declares no coupled channel groups"):
        slim(build_model("asrn", **tiny_hparams("asrn", 2)), rho=0.5)


def _model(arch: str, scale: int, seed: int = 0) -> SRModel:
    return tiny_model(arch, scale, seed).eval()


def _input(m: SRModel, side: int = 10) -> torch.Tensor:
    side = max(side, m.min_size)
    s = m.scale if m.pre_upsample else 1
    return torch.rand(2, m.channels, side * s, side * s, generator=torch.Generator().manual_seed(5))


def _zero_half(m: SRModel) -> dict[str, torch.Tensor]:
    """Make half the channels of every group identically zero (zero producer filters and biases)."""
    dead = {}
    gen = torch.Generator().manual_seed(3)
    state = m.state_dict()
    for g in m.channel_groups():
        idx = torch.randperm(g.width, generator=gen)[: g.width // 2]
        dead[g.name] = idx
        for p in g.producers:
            rows = (idx[:, None] * p.expand + torch.arange(p.expand)).reshape(-1)
            state[f"{p.key}.weight"].index_fill_(p.dim, rows, 0.0)
            if p.bias:
                state[f"{p.key}.bias"].index_fill_(0, rows, 0.0)
    return dead


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_rho_with_l1_reproduces_the_model_exactly(arch, scale):
    m = _model(arch, scale)
    s, rep = slim(m, 1e-6)
    assert rep.params_after == rep.params_before == count_params(m)
    for k, v in m.state_dict().items():
        assert torch.equal(v, s.state_dict()[k]), k
    with torch.no_grad():
        assert torch.equal(s(_input(m)), m(_input(m)))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("arch", ARCHS)
def test_dead_channels_are_found_and_cutting_them_changes_nothing(arch, scale):
    """Zeroed channels of every coupled group carry zeros; l1 must drop exactly those, and since the groups
    are declared right (skip path, shuffle blocks, PReLU slopes) the half-width model gives the same output."""
    m = _model(arch, scale)
    dead = _zero_half(m)
    s, rep = slim(m, 0.5)
    keep = choose_channels(m, m.channel_groups(), {g["group"]: g["width"][1] for g in rep.groups}, select="l1")
    for g in m.channel_groups():
        assert set(keep[g.name].tolist()).isdisjoint(dead[g.name].tolist()), g.name
        assert len(keep[g.name]) == g.width - g.width // 2
    with torch.no_grad():
        a, b = m(_input(m)), s(_input(m))
    assert torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())


@pytest.mark.parametrize("arch", ARCHS)
def test_slimmed_model_rebuilds_from_plain_data_and_loads_weights_only(arch, tmp_path):
    m = _model(arch, 2)
    s, _ = slim(m, 0.5)
    path = save_checkpoint(s, tmp_path / "s.pt")
    raw = torch.load(path, weights_only=True)
    json.dumps(raw["hparams"])  # plain data
    back = load_checkpoint(path).model
    assert back.hparams == s.hparams
    with torch.no_grad():
        assert torch.equal(back(_input(m)), s(_input(m)))
    assert [p["stage"] for p in back.provenance][-1] == "slim"


def test_input_is_not_mutated_and_global_rng_untouched():
    m = _model("edsr", 2)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    slim(m, 0.5, select="random", init="scratch", seed=4)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert m.provenance == [] and m.hparams == _model("edsr", 2).hparams


@pytest.mark.parametrize("select,init", [("random", "copy"), ("l1", "scratch"), ("random", "scratch")])
def test_deterministic_for_a_seed(select, init):
    m = _model("vdsr", 2)
    a, _ = slim(m, 0.5, select=select, init=init, seed=1)
    b, _ = slim(m, 0.5, select=select, init=init, seed=1)
    c, _ = slim(m, 0.5, select=select, init=init, seed=2)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_l1_keeps_the_highest_group_importance():
    m = _model("edsr", 2)
    g = m.channel_groups()[0]
    assert g.name == "skip" and len(g.producers) == 2 + len(m.body)  # head, every conv2, body_conv
    score = group_importance(m, g)
    keep = choose_channels(m, [g], {"skip": 3}, select="l1")["skip"]
    assert set(keep.tolist()) == set(torch.topk(score, 3).indices.tolist())


@pytest.mark.parametrize("rho,width", [(0.5, 32), (0.66, 22), (0.75, 16), (0.8, 13)])
def test_widths_follow_the_paper(rho, width):
    assert slim_width(64, rho) == width
    m = build_model("vdsr", scale=2, n_feats=64, n_layers=2)
    s, rep = slim(m, rho)
    assert s.hparams["widths"] == [width] * 3
    assert {g["width"][1] for g in rep.groups} == {width}


def test_round_to_rounds_up_but_never_above_the_original():
    assert slim_width(64, 0.8, round_to=8) == 16 and slim_width(64, 0.8, round_to=16) == 16
    assert slim_width(12, 0.1, round_to=8) == 12  # 11 → 16 would exceed 12
    s, _ = slim(build_model("vdsr", scale=2, n_feats=64, n_layers=2), 0.8, round_to=8)
    assert s.hparams["widths"] == [16, 16, 16]


def test_pixel_shuffle_convs_are_cut_in_whole_r2_groups():
    m = _model("edsr", 3)
    s, _ = slim(m, 0.5)
    assert s.tail[0].out_channels == 9 * s.hparams["tail_feats"][0] and s.tail[2].in_channels == 4


def test_edsr_baseline_x4_at_half_width_has_a_quarter_of_the_parameters():
    m = build_model("edsr", scale=4, n_feats=64, n_blocks=16)
    s, rep = slim(m, 0.5)
    assert count_params(m) == 1_517_571 + 0  # the reference count (mean shifts hold no parameters)
    assert 0.24 < rep.params_after / rep.params_before < 0.26
    assert 0.24 < rep.macs_after / rep.macs_before < 0.27


@pytest.mark.parametrize("rho", [0.0, 1.0, -0.2, 1.5])
def test_rho_outside_the_open_interval_is_an_error(rho):
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        slim(_model("vdsr", 2), rho)


def test_rho_that_empties_a_layer_is_an_error():
    with pytest.raises(ConfigError, match="leaves no channel"):
        slim(_model("vdsr", 2), 0.95)


# ---------------------------------------------------------------- foreign formats, CLI, recipe
@pytest.mark.parametrize("fmt", ["edsr-pytorch", "basicsr", "mmagic", "msrresnet", "pytorch-vdsr"])
def test_foreign_checkpoints_slim_directly(fmt, tmp_path, invoke):
    sd = {"edsr-pytorch": lambda: edsr_pytorch_sd(2), "basicsr": lambda: {"params": basicsr_edsr_sd(2)},
          "mmagic": lambda: {"state_dict": {f"generator.{k}": v for k, v in
                                            basicsr_edsr_sd(2, up="upsample.{j}.upsample_conv").items()}},
          "msrresnet": lambda: {"params": msrresnet_sd(2)}, "pytorch-vdsr": lambda: vdsr_sd()}[fmt]()
    src = _save(sd, tmp_path / "teacher.pth")
    code, out, err = invoke("slim", src, "--rho", "1e-6", "--json", "-o", tmp_path / "s.pt")
    assert code == 0, err
    teacher, student = load_checkpoint(src).model, load_checkpoint(tmp_path / "s.pt").model
    x = _input(teacher)
    with torch.no_grad():
        assert torch.allclose(teacher(x), student(x), atol=1e-6)
    assert json.loads(out)["params_after"] == count_params(teacher)
    code, _, err = invoke("slim", src, "--rho", "0.5", "-o", tmp_path / "h.pt")
    assert code == 0, err
    assert count_params(load_checkpoint(tmp_path / "h.pt").model) < count_params(teacher) / 2


def test_cli_prints_the_per_layer_table_and_writes_the_student(tmp_path, invoke):
    t = save_checkpoint(_model("edsr", 2), tmp_path / "t.pt")
    code, out, err = invoke("slim", t, "--rho", "0.5", "--round-to", "4", "-o", tmp_path / "s.pt")
    assert code == 0, err
    assert "body.0.conv1" in out and "8 → 4" in out and "total" in out and "params ×" in out
    assert load_checkpoint(tmp_path / "s.pt").model.hparams["n_feats"] == 4
    code, _, err = invoke("slim", t, "--rho", "0.5", "-o", tmp_path / "s.pt")
    assert code == 2 and "exists" in err
    code, _, err = invoke("slim", t, "--rho", "0.5")  # default output beside the input, never over it
    assert code == 0 and (tmp_path / "t_slim0.5.pt").is_file()


@pytest.mark.parametrize("args,message", [
    (["--rho", "1.2"], "(0, 1)"), (["--rho", "0.97"], "leaves no channel"), (["--rho", "0"], "(0, 1)"),
    (["--rho", "0.5", "--select", "svd"], "Invalid value"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message, tmp_path, invoke):
    t = save_checkpoint(_model("vdsr", 2), tmp_path / "t.pt")
    code, _, err = invoke("slim", t, *args, "-o", tmp_path / "s.pt")
    assert code == 2 and message in one_error_line(err), err
    assert not (tmp_path / "s.pt").exists()


def test_cli_arch_without_groups_is_an_error(tmp_path, invoke, monkeypatch):
    from sr_compress.models.vdsr import VDSR

    t = save_checkpoint(_model("vdsr", 2), tmp_path / "t.pt")
    monkeypatch.setattr(VDSR, "channel_groups", SRModel.channel_groups)
    code, _, err = invoke("slim", t, "--rho", "0.5", "-o", tmp_path / "s.pt")
    assert code == 2 and "declares no coupled channel groups" in err


def test_recipe_slim_stage(tmp_path):
    from sr_compress.recipes import parse_recipe, run_recipe

    save_checkpoint(_model("edsr", 2), tmp_path / "t.pt")
    data = {"out": str(tmp_path / "run"), "stage": [{"id": "s", "kind": "slim", "model": str(tmp_path / "t.pt"),
                                                      "rho": 0.5, "round_to": 2}]}
    res = run_recipe(parse_recipe(data, source=tmp_path / "r.toml"))
    assert res[0].status == "ran" and res[0].summary["params_ratio"] < 0.5
    assert json.loads((tmp_path / "run" / "s" / "slim.json").read_text())["params"]["rho"] == 0.5
    assert run_recipe(parse_recipe(data, source=tmp_path / "r.toml"))[0].status == "cached"


def test_calibration_keeps_a_deep_chain_alive():
    """Copied filters lose signal at every layer of a deep bias-free chain; the gains give it back."""
    torch.manual_seed(0)
    m = build_model("vdsr", scale=2, n_feats=32, n_layers=12).eval()
    with torch.no_grad():
        for conv in m.modules():
            if isinstance(conv, torch.nn.Conv2d):  # VDSR's He init keeps the teacher's own signal alive
                conv.weight.normal_(0, (2 / (9 * conv.out_channels)) ** 0.5)
    x = _input(m, 16)
    with torch.no_grad():
        ref = (m(x) - x).abs().mean()
        raw, _ = slim(m, 0.75, calibrate=False)
        cal, rep = slim(m, 0.75)
        weak, strong = (raw(x) - x).abs().mean() / ref, (cal(x) - x).abs().mean() / ref
    assert weak < 0.01 and 0.2 < strong < 5, (float(weak), float(strong))
    assert len(rep.gains) == len(m.channel_groups()) and max(rep.gains.values()) > 1.2
    assert rep.params["calibrate"] is True and not slim(m, 0.75, init="scratch")[1].gains
