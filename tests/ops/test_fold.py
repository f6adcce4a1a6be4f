"""The ``fold`` operation (and its command and recipe stage): plain students' offsets out of the activations."""

from __future__ import annotations

import pytest
import torch
from helpers.models import tiny_checkpoint

from sr_compress.checkpoint import load_checkpoint, save_checkpoint
from sr_compress.deploy.quantize import calibration_patches, model_info
from sr_compress.errors import ConfigError, InputError, OutputExistsError
from sr_compress.models import build_model
from sr_compress.ops.fold import fold_file
from sr_compress.recipes import parse_recipe, run_recipe

FAST = {"patches": 4, "patch_size": 16}


def _offset_student(path):
    """A plain ×2 student whose ReLU channels sit far above zero, as plainify's mean shift leaves them."""
    torch.manual_seed(0)
    m = build_model("plain", scale=2, layers=[8, 8, {"out": 12, "act": "identity", "shuffle": 2}],
                    img_range=255.0, rgb_mean=[0.45, 0.44, 0.40]).eval()
    with torch.no_grad():
        for layer in (m.head[0], m.body[0]):
            layer.conv.weight.mul_(0.3)
            layer.conv.bias.add_(torch.linspace(500, 3000, layer.conv.bias.numel()))
    save_checkpoint(m, path)
    return path, m


@pytest.mark.parametrize("border", ["bias", "exact"])
def test_fold_moves_the_offsets_out_of_the_activations(tmp_path, border):
    src, model = _offset_student(tmp_path / "s.pt")
    o = fold_file(src, tmp_path / "f.pt", border=border, **FAST)
    folded = load_checkpoint(o.path).model.eval()
    assert folded.arch == "plain" and folded.provenance[-1]["stage"] == "fold"
    assert folded.provenance[-1]["params"]["border"] == border
    layers = o.report.layers
    assert all(layer.folded > 0 for layer in layers[:2])  # both offset layers folded
    assert all(layer.range_after < 0.5 * layer.range_before for layer in layers[:2])
    widths = [spec["out"] for spec in folded.hparams["layers"]]
    # the calibration patches themselves (folding is exact where z ≥ c held: on them by construction)
    x = torch.from_numpy(calibration_patches(None, model_info(model), 4, 16, 0))
    with torch.no_grad():  # float64: the offsets (thousands) cancel, float32 would blur the comparison
        ref = model.double()(x.double())
        diff = (folded.double()(x.double()) - ref).abs().amax((0, 1)) / ref.abs().max()
    ring = 2 * 3  # 3 layers reach 3 LR px in, ×2 (the 32 px outputs keep a 20 px interior)
    tol = 1e-5 * float(ref.abs().max())  # the reported differences are absolute
    if border == "bias":  # same widths, no constant channel; exact inside, the border ring changes
        assert widths == [8, 8, 12] and o.report.constant_channels == 0
        assert float(diff[ring:-ring, ring:-ring].max()) < 1e-5 < 1e-3 < float(diff.max())
        assert o.max_diff_interior < 100 * tol < o.max_diff  # (measured in float32)
    else:  # one constant channel per folded layer: exact everywhere
        assert widths == [9, 9, 12] and o.report.constant_channels == 2
        assert float(diff.max()) < 1e-5 and o.max_diff < 100 * tol


def test_fold_refuses_what_it_cannot_do(tmp_path):
    src, _ = _offset_student(tmp_path / "s.pt")
    with pytest.raises(ConfigError, match="plain students"):
        fold_file(tiny_checkpoint(tmp_path / "e.pt"), tmp_path / "o.pt", **FAST)
    with pytest.raises(ConfigError, match="margin"):
        fold_file(src, tmp_path / "o.pt", margin=1.5, **FAST)
    with pytest.raises(ConfigError, match="border"):
        fold_file(src, tmp_path / "o.pt", border="zeros", **FAST)
    with pytest.raises(InputError):
        fold_file(src, src, force=True, **FAST)  # never over the input
    fold_file(src, tmp_path / "o.pt", **FAST)
    with pytest.raises(OutputExistsError):
        fold_file(src, tmp_path / "o.pt", **FAST)
    assert not (tmp_path / "e_folded.pt").exists()


def test_fold_command_and_recipe_stage(tmp_path, invoke):
    src, _ = _offset_student(tmp_path / "s.pt")
    code, out, err = invoke("fold", src, "-o", tmp_path / "c.pt", "--patches", 4, "--patch-size", 16)
    assert code == 0, err
    assert "folded" in out and (tmp_path / "c.pt").exists()
    code, out, err = invoke("fold", tiny_checkpoint(tmp_path / "e.pt"), "-o", tmp_path / "d.pt")
    assert code == 2 and "plain students" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d.pt").exists()
    data = {"out": "run", "stage": [{"id": "f", "kind": "fold", "model": str(src), "patches": 4, "patch_size": 16}]}
    (res,) = run_recipe(parse_recipe(data, source=tmp_path / "r.toml"))
    assert res.kind == "fold" and res.status == "ran" and res.summary["folded"] > 0
    assert res.summary["constant_channels"] == 0 and res.summary["max_diff_interior"] < 1e-3 * res.summary["max_diff"]
