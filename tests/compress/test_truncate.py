"""truncate: a standalone model equal to the full model's depth-K output, for every family; CLI, recipe, eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sr_compress.checkpoint import load_checkpoint, provenance_entry, save_checkpoint
from sr_compress.compress.truncate import depth_output, evaluate_depths, trained_with_deep_supervision, truncate
from sr_compress.errors import ConfigError
from sr_compress.models import build_model, count_params, list_models, model_class, tiny_hparams
from sr_compress.recipes import parse_recipe, run_recipe


def tiny(arch: str = "asrn", seed: int = 0, **over):
    torch.manual_seed(seed)
    hp = {**tiny_hparams(arch, 2), **({"n_blocks": 3} if arch == "asrn" else {}), **over}
    return build_model(arch, **hp).eval()


def inputs(m, n: int = 10):
    g = torch.Generator().manual_seed(1)
    side = n * m.scale if m.pre_upsample else n
    return torch.rand(2, m.channels, side, side, generator=g)


# families whose blocks all feed one fuse conv (IMDN, RFDN) or that do not offer truncation declare no depth
TRUNCATABLE = [a for a in list_models() if model_class(a).depth_hparam is not None]


@pytest.mark.parametrize("arch", TRUNCATABLE)
def test_truncated_model_equals_the_depth_k_output(arch, tmp_path):
    m = tiny(arch)
    n = len(m.body)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = inputs(m)
    for k in range(1, n + 1):
        sub, rep = truncate(m, blocks=k)
        assert len(sub.body) == k and rep.blocks_after == k and rep.blocks_before == n
        assert rep.max_abs_diff == 0.0
        with torch.no_grad():
            assert torch.equal(sub(x), depth_output(m, x, k))  # bit-exact
        assert count_params(sub) == rep.params_after and (k == n) == (rep.params_after == count_params(m))
        assert sub.provenance[-1]["stage"] == "truncate" and sub.provenance[-1]["params"]["blocks"] == k
        # standalone: rebuilds from (arch, hparams) and loads with weights_only
        save_checkpoint(sub, tmp_path / f"{k}.pt")
        back = load_checkpoint(tmp_path / f"{k}.pt").model
        with torch.no_grad():
            assert torch.equal(back(x), sub(x))
    assert len(m.body) == n and all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # not mutated


def test_asrn_truncation_is_the_multi_depth_output():
    m = tiny("asrn")
    x = inputs(m)
    with torch.no_grad():
        outs = m(x, all_depths=True).outputs
        for k in (1, 2, 3):
            assert torch.equal(truncate(m, blocks=k)[0](x), outs[k - 1])
    assert truncate(m, blocks=1)[0].hparams["n_blocks"] == 1


def test_edsr_keeps_body_conv_and_global_skip():
    m = tiny("edsr")
    sub, _ = truncate(m, blocks=1)
    assert torch.equal(sub.body_conv.weight, m.body_conv.weight)
    x = inputs(m)
    with torch.no_grad():  # by hand: tail(body_conv(block0(head)) + head)
        f = m.head(m.sub_mean(x))
        want = m.add_mean(m.tail(m.body_conv(m.body[0](f)) + f))
        assert torch.equal(sub(x), want)


def test_bad_block_counts():
    m = tiny("asrn")
    for bad in (0, 4, 1.5):
        with pytest.raises(ConfigError, match=r"blocks must be an integer in 1\.\.3"):
            truncate(m, blocks=bad)


@pytest.mark.parametrize("params, deep", [
    ({"strategy": "l1"}, False),
    ({"strategy": "dsl_psd"}, True),
    ({"strategy": "dsl_psd", "strategy_options": {"dsl": False, "psd": False}}, False),
    ({"strategy": "dsl_psd", "strategy_options": {"dsl": False}}, True),
])
def test_warns_without_deep_supervision(params, deep):
    m = tiny("asrn")
    m.provenance = [provenance_entry("train", **params)]
    assert trained_with_deep_supervision(m.provenance) is deep
    _, rep = truncate(m, blocks=2)
    assert rep.deep_supervision is deep
    assert bool(rep.warnings) is not deep
    if not deep:
        assert "not trained with deep supervision" in rep.warnings[0]
    assert truncate(m, blocks=3)[1].warnings == []  # full depth: nothing to warn about


def _photos(folder, n=2, size=40):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).resize((size, size), Image.BICUBIC).save(folder / f"im{i}.png")
    return folder


def test_cli_truncate_and_eval_all_depths(invoke, tmp_path):
    m = tiny("asrn")
    m.provenance = [provenance_entry("train", strategy="l1")]
    src = save_checkpoint(m, tmp_path / "a.pt")
    code, out, err = invoke("truncate", src, "--blocks", "2", "-o", tmp_path / "a2.pt")
    assert code == 0, err
    assert "3 → 2 blocks" in out and "not trained with deep supervision" in err
    assert len(load_checkpoint(tmp_path / "a2.pt").model.body) == 2
    code, _, err = invoke("truncate", src, "--blocks", "2", "-o", tmp_path / "a2.pt")
    assert code == 2 and "exists" in err
    code, _, err = invoke("truncate", src, "--blocks", "9", "-o", tmp_path / "a9.pt")
    assert code == 2 and "1..3" in err and not (tmp_path / "a9.pt").exists()
    code, out, _ = invoke("truncate", src, "-k", "1", "-o", tmp_path / "a1.pt", "--json")
    assert code == 0 and json.loads(out)["params_after"] == count_params(truncate(m, blocks=1)[0])

    data = _photos(tmp_path / "photos")
    code, out, err = invoke("eval", src, "--data", data, "--all-depths", "--json")
    assert code == 0, err
    table = json.loads(out)
    assert [r["depth"] for r in table["rows"]] == [3, 2, 1] and table["blocks"] == 3
    assert table["rows"][0]["params"] == count_params(m) and table["warnings"]
    assert table["rows"][0]["gflops"] > table["rows"][2]["gflops"] > 0
    code, out, _ = invoke("eval", src, "--data", data, "--all-depths")
    assert code == 0 and "Δ vs full" in out and "GFLOPs" in out


def test_evaluate_depths_matches_evaluating_each_truncation(tmp_path):
    from sr_compress.evaluate import eval_pairs_for, evaluate_model

    m = tiny("asrn")
    pairs = eval_pairs_for(_photos(tmp_path / "p"), 2)
    table = evaluate_depths(m, pairs, depths=[2])
    assert [r.depth for r in table.rows] == [2]
    assert table.rows[0].psnr_y == pytest.approx(evaluate_model(truncate(m, blocks=2)[0], pairs).mean.psnr_y)


def test_recipe_stage_truncate(tmp_path):
    src = save_checkpoint(tiny("asrn"), tmp_path / "a.pt")
    recipe = parse_recipe({"name": "t", "out": str(tmp_path / "run"), "stage": [
        {"id": "cut", "kind": "truncate", "model": str(src), "blocks": 1}]})
    (res,) = run_recipe(recipe)
    assert res.artifact.endswith("a_k1.pt") and res.summary["blocks"] == 1
    assert len(load_checkpoint(res.artifact).model.body) == 1


@pytest.mark.parametrize("arch, hp, kept", [
    ("edsr", {"n_feats": 8, "n_blocks": 3, "block_feats": [4, 6, 5]}, ("block_feats", [4, 6])),
    ("msrresnet", {"n_feats": 8, "n_blocks": 3, "block_feats": [3, 7, 5]}, ("block_feats", [3, 7])),
    ("vdsr", {"n_feats": 8, "n_layers": 3, "widths": [6, 5, 8, 8]}, ("widths", [6, 5, 8])),
    ("fsrcnn", {"d": 8, "s": 4, "m": 3, "channels": 3, "widths": [8, 4, 5, 4, 4, 8]}, ("widths", [8, 4, 5, 4, 8])),
])
def test_slimmed_models_keep_their_per_block_widths(arch, hp, kept):
    torch.manual_seed(0)
    m = build_model(arch, scale=2, **hp).eval()
    sub, rep = truncate(m, blocks=2)
    assert sub.hparams[kept[0]] == kept[1] and rep.max_abs_diff == 0.0


def test_a_cut_that_does_not_fit_the_tail_is_refused():
    torch.manual_seed(0)
    m = build_model("vdsr", scale=2, n_feats=8, n_layers=3, widths=[6, 5, 7, 8]).eval()
    with pytest.raises(ConfigError, match="do not fit its tail"):
        truncate(m, blocks=2)  # layer 2 gives 7 channels, the tail takes 8


def test_train_records_options_that_truncate_reads(invoke, tmp_path):
    """End to end: `train --strategy dsl_psd --opt ...` → provenance → truncate's deep-supervision check."""
    hp = ["--hparam", "n_feats=8", "--hparam", "n_blocks=2", "--hparam", "up_feats=4"]
    common = ["train", "--arch", "asrn", "--scale", "2", *hp, "--strategy", "dsl_psd", "--steps", "2",
              "--batch-size", "2", "--patch-size", "24"]
    for name, opts, warned in [("ss", ["--opt", "dsl=false", "--opt", "psd=false"], True), ("dsl", [], False)]:
        code, _, err = invoke(*common, *opts, "-o", tmp_path / f"{name}.pt")
        assert code == 0, err
        code, _, err = invoke("truncate", tmp_path / f"{name}.pt", "--blocks", "1", "-o", tmp_path / f"{name}1.pt")
        assert code == 0, err
        assert ("not trained with deep supervision" in err) is warned
