"""ONNX graphs as read-only models: detection (colour, input range, scale), refusals, inference, tiling."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from torch import nn

from sr_compress.checkpoint import OnnxModel, load_checkpoint, save_checkpoint
from sr_compress.deploy.onnx import export_onnx
from sr_compress.deploy.tiling import tiled_network
from sr_compress.errors import CheckpointError, ConfigError
from sr_compress.infer import super_resolve
from sr_compress.models import build_model, tiny_hparams

DYNAMIC = {"x": {0: "n", 2: "h", 3: "w"}}


def tiny(arch="edsr", seed=0, scale=2, **over):
    torch.manual_seed(seed)
    return build_model(arch, **{**tiny_hparams(arch, scale), **over}).eval()


def export_raw(module, path, inputs=None, dynamic=DYNAMIC, names=("x",), channels=3):
    """A foreign export: torch.onnx.export without our metadata (what other code bases ship)."""
    args = inputs if inputs is not None else (torch.rand(1, channels, 16, 16),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, input_names=list(names),
                          output_names=["y"], dynamic_axes=dynamic, opset_version=17)
    return path


class Range255(nn.Module):
    """A net that takes and returns [0, 255] (divides its input by 255 first)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x / 255.0) * 255.0


class Internal255(nn.Module):
    """Takes [0, 1], works in 0–255 inside after a mean shift (the EDSR convention): Sub, Mul 255 at the input."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) * 255.0 / 255.0 + self.mean)


class TwoInputs(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, a, b):
        return self.net(a) + self.net(b)


class Pooled(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).mean(dim=(2, 3))


def x_batch(n=2, c=3, h=14, w=19, seed=1):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_own_export_rgb_and_y(tmp_path):
    for arch, channels in (("edsr", 3), ("fsrcnn", 1)):
        m = tiny(arch, channels=channels)
        path = export_onnx(m, tmp_path / f"{arch}.onnx").path
        loaded = load_checkpoint(path)
        om = loaded.model
        assert isinstance(om, OnnxModel) and loaded.source == "onnx"
        assert (om.scale, om.channels, om.pre_upsample, om.hparams["input_range"]) == (2, channels, False, 1.0)
        assert "input range = [0, 1] (an srcompress export)" in loaded.guesses
        x = x_batch(c=channels)
        with torch.no_grad():
            assert (om(x) - m(x)).abs().max() < 1e-5
        assert om(x).dtype == torch.float32 and not om(x).requires_grad
        assert sum(p.numel() for p in om.parameters()) == 0
        assert om.provenance[0]["stage"] == "import" and om.provenance[0]["params"]["source"] == "onnx"


def test_pre_upsampling_export_takes_scale_from_metadata(tmp_path):
    m = tiny("vdsr", scale=3)
    om = load_checkpoint(export_onnx(m, tmp_path / "v.onnx").path).model
    assert (om.scale, om.channels, om.pre_upsample) == (3, 1, True)
    lr = x_batch(n=1, c=3, h=10, w=12)
    assert (super_resolve(om, lr) - super_resolve(m, lr)).abs().max() < 1e-5


@pytest.mark.parametrize("wrapper, rng, why", [
    (Range255, 255.0, "divides its input by 255"),
    (Internal255, 1.0, "multiplies its input by 255"),
])
def test_foreign_range_detected_from_the_graph(tmp_path, wrapper, rng, why):
    net = wrapper(tiny()).eval()
    loaded = load_checkpoint(export_raw(net, tmp_path / "f.onnx"))
    om = loaded.model
    assert om.hparams["input_range"] == rng and any(why in g for g in loaded.guesses), loaded.guesses
    assert "scale = 2 (measured: a 32x24 input gives 64x48)" in loaded.guesses
    x = x_batch()
    with torch.no_grad():
        want = net(x * rng) / rng  # the graph sees [0, rng] input; our model's contract is [0, 1] in and out
        assert (om(x) - want).abs().max() < 1e-4


class Bicubic(nn.Module):
    """An 'SR net' without range ops whose output is its input upscaled plus a bias of ``offset`` (its units)."""

    def __init__(self, offset):
        super().__init__()
        self.offset = offset

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False) + self.offset


def test_range_probed_when_the_graph_does_not_say(tmp_path):
    loaded = load_checkpoint(export_raw(Bicubic(8.0), tmp_path / "b255.onnx"))  # 8 grey levels: a 0–255 net
    assert loaded.model.hparams["input_range"] == 255.0
    assert any(g.startswith("input range = [0, 255] (probed: a smooth image in [0, 255]") for g in loaded.guesses)
    with pytest.raises(CheckpointError, match="cannot tell"):  # +0.01 looks right in both ranges: undecided
        load_checkpoint(export_raw(Bicubic(0.01), tmp_path / "b1.onnx"))
    same = load_checkpoint(export_raw(Bicubic(0.0), tmp_path / "b0.onnx"))  # homogeneous: the range cannot matter
    assert same.model.hparams["input_range"] == 1.0 and any("does not matter" in g for g in same.guesses)


def test_range_undetectable_needs_the_flag(tmp_path):
    net = tiny("plain")  # no range op at its input
    path = export_raw(net, tmp_path / "plain.onnx")
    with pytest.raises(CheckpointError, match=r"cannot tell whether the graph takes \[0, 1\] or \[0, 255\]"):
        load_checkpoint(path)
    for rng in (1, 255):
        loaded = load_checkpoint(path, overrides={"input_range": rng})
        assert loaded.model.hparams["input_range"] == rng
        assert f"input range = [0, {rng}] (set by override)" in loaded.guesses
    x = x_batch()
    with torch.no_grad():
        assert (load_checkpoint(path, overrides={"input_range": 1}).model(x) - net(x)).abs().max() < 1e-5
    with pytest.raises(ConfigError, match="input_range must be 1 or 255"):
        load_checkpoint(path, overrides={"input_range": 100})


def test_fixed_batch_graph_runs_row_by_row(tmp_path):
    net = tiny("plain")
    path = export_raw(net, tmp_path / "b1.onnx", dynamic={"x": {2: "h", 3: "w"}})
    om = load_checkpoint(path, overrides={"input_range": 1}).model
    x = x_batch(n=3)
    with torch.no_grad():
        assert (om(x) - net(x)).abs().max() < 1e-5


def test_tiled_inference_of_a_foreign_graph_is_exact(tmp_path):
    net = Range255(tiny()).eval()
    om = load_checkpoint(export_raw(net, tmp_path / "f.onnx")).model
    lr = x_batch(n=1, h=30, w=27)
    tiled = tiled_network(om, tile=8)
    assert tiled.profile.halo >= 1 and tiled.profile.scale == 2
    assert (super_resolve(tiled, lr) - super_resolve(om, lr)).abs().max() < 1e-5


def test_content_detection_and_scale_override(tmp_path):
    path = export_onnx(tiny(), tmp_path / "m.onnx").path
    odd = tmp_path / "model.bin"
    shutil.copy(path, odd)
    assert isinstance(load_checkpoint(odd).model, OnnxModel)  # detected from the bytes, not the suffix
    assert load_checkpoint(path, overrides={"scale": 2}).model.scale == 2
    with pytest.raises(CheckpointError, match=r"upscales ×2; it cannot be used as ×3"):
        load_checkpoint(path, overrides={"scale": 3})
    with pytest.raises(CheckpointError, match="takes 3 channel"):
        load_checkpoint(path, overrides={"colour": "y"})
    with pytest.raises(ConfigError, match="res_scale does not apply to an ONNX graph"):
        load_checkpoint(path, overrides={"res_scale": 0.1})
    pt = save_checkpoint(tiny(), tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="input_range applies to ONNX graphs only"):
        load_checkpoint(pt, overrides={"input_range": 255})
    with pytest.raises(CheckpointError, match="read-only"):
        save_checkpoint(load_checkpoint(path).model, tmp_path / "x.pt")


def _refusal_cases(tmp_path):
    net = tiny()
    yield "fixed", export_raw(Range255(net), tmp_path / "fixed.onnx", dynamic=None), \
        r"a fixed-size graph \(input \[1x3x16x16\]\)"
    yield "two", export_raw(TwoInputs(net), tmp_path / "two.onnx", inputs=(torch.rand(1, 3, 8, 8),) * 2,
                            names=("a", "b"), dynamic={"a": {2: "h", 3: "w"}, "b": {2: "h", 3: "w"}}), \
        r"has 2 inputs \(a, b\); srcompress runs graphs with one image input"
    yield "pooled", export_raw(Pooled(Range255(net)), tmp_path / "pooled.onnx"), \
        r"gave an output of shape \[1, 3\]; not an image-to-image SR net"
    same = nn.Conv2d(3, 3, 3, padding=1)
    yield "same-size", export_raw(Range255(same), tmp_path / "same.onnx"), \
        "a pre-upsampling net .* give its scale"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07this is not a protobuf model" * 3)
    yield "garbage", garbage, "not a readable ONNX model|onnxruntime cannot load it"


def test_refusals_are_one_clear_line(tmp_path):
    for name, path, message in _refusal_cases(tmp_path):
        with pytest.raises(CheckpointError, match=message) as e:
            load_checkpoint(path)
        assert "\n" not in str(e.value), name


def test_same_size_graph_with_scale_is_pre_upsampling(tmp_path):
    same = Range255(nn.Conv2d(1, 1, 3, padding=1)).eval()
    path = export_raw(same, tmp_path / "same.onnx", channels=1)
    om = load_checkpoint(path, overrides={"scale": 4}).model
    assert (om.scale, om.channels, om.pre_upsample) == (4, 1, True)
    assert super_resolve(om, x_batch(n=1, h=6, w=5)).shape == (1, 3, 24, 20)


def test_info_of_a_foreign_graph(tmp_path):
    from sr_compress.deploy.onnx import onnx_info

    info = onnx_info(export_raw(Range255(tiny()), tmp_path / "f.onnx"), size=(20, 10))
    assert info["hparams"]["scale"] == 2 and info["hparams"]["input_range"] == 255.0
    assert info["input_size"] == "20x10 LR (20x10 model input)" and info["macs"] > 0
    assert any("divides its input by 255" in g for g in info["guesses"])
    unknown = onnx_info(export_raw(tiny("plain"), tmp_path / "p.onnx"))
    assert any("input range = unknown" in g for g in unknown["guesses"])
