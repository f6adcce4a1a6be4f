"""Foreign checkpoints: every format against an independent functional reference of the SOURCE network.

Each reference below re-implements the source code base's forward pass with ``F.conv2d`` over the
foreign-layout state dict, on the source's own input range; random tiny weights are saved in the foreign
container with ``torch.save`` and loaded through ``load_checkpoint``.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from helpers.foreign import (
    BLOCKS,
    FEATS,
    MEAN,
    SCALES,
    Net,
    _close,
    _lr,
    _save,
    basicsr_edsr_forward,
    basicsr_edsr_sd,
    edsr_pytorch_forward,
    edsr_pytorch_sd,
    mmagic_edsr_forward,
    msrresnet_forward,
    msrresnet_sd,
    vdsr_forward,
    vdsr_sd,
)
from torch import nn

from sr_compress.checkpoint import load_checkpoint
from sr_compress.checkpoint.foreign import guess_res_scale
from sr_compress.checkpoint.unpickle import LEGACY_MAGIC, restricted_load
from sr_compress.errors import CheckpointError, ConfigError, UnsafeCheckpointError

# ---------------------------------------------------------------- foreign weights and source forwards


# ---------------------------------------------------------------- each format reproduces its source


@pytest.mark.parametrize("scale", SCALES)
def test_edsr_pytorch_matches_source_on_its_range(tmp_path, scale):
    sd = edsr_pytorch_sd(scale)
    loaded = load_checkpoint(_save(sd, tmp_path / "edsr.pt"))
    m, x = loaded.model, _lr(scale)
    assert loaded.source == "edsr-pytorch" and m.arch == "edsr"
    assert {k: m.hparams[k] for k in ("scale", "n_feats", "n_blocks", "img_range", "res_scale")} == {
        "scale": scale, "n_feats": FEATS, "n_blocks": BLOCKS, "img_range": 255.0, "res_scale": 1.0}
    with torch.no_grad():
        _close(m(x), edsr_pytorch_forward(sd, x * 255.0, scale) / 255.0)
    assert any(g.startswith("img_range = 255 (") and "sub_mean.bias" in g for g in loaded.guesses)
    assert any(g.startswith("res_scale = 1 (") and "--res-scale" in g for g in loaded.guesses)


def test_edsr_pytorch_other_rgb_range_and_std_are_folded_exactly(tmp_path):
    sd = edsr_pytorch_sd(3, rgb_range=1.0, std=(0.5, 1.0, 2.0))
    m = load_checkpoint(_save(sd, tmp_path / "edsr.pt")).model
    x = _lr(3)
    assert m.hparams["img_range"] == 1.0 and m.hparams["rgb_mean"] == pytest.approx(MEAN.tolist())
    with torch.no_grad():
        _close(m(x), edsr_pytorch_forward(sd, x, 3))


@pytest.mark.parametrize("scale", SCALES)
def test_basicsr_edsr_prefers_params_ema_and_strips_module(tmp_path, scale):
    ema, raw = basicsr_edsr_sd(scale, seed=0), basicsr_edsr_sd(scale, seed=5)
    ckpt = {"params": raw, "params_ema": {f"module.{k}": v for k, v in ema.items()}}
    loaded = load_checkpoint(_save(ckpt, tmp_path / "basicsr.pth"))
    x = _lr(scale)
    assert loaded.source == "basicsr" and loaded.model.scale == scale
    with torch.no_grad():
        _close(loaded.model(x), basicsr_edsr_forward(ema, x, scale))
    assert any("params_ema" in g for g in loaded.guesses)
    assert any(g.startswith("img_range = 255 (not stored") for g in loaded.guesses)


@pytest.mark.parametrize("scale", SCALES)
def test_basicsr_msrresnet_matches_source(tmp_path, scale):
    sd = msrresnet_sd(scale)
    loaded = load_checkpoint(_save({"params": sd}, tmp_path / "msrresnet.pth"))
    x = _lr(scale)
    assert (loaded.source, loaded.model.arch, loaded.model.scale) == ("basicsr", "msrresnet", scale)
    assert loaded.guesses == []  # everything is in the shapes
    with torch.no_grad():
        _close(loaded.model(x), msrresnet_forward(sd, x, scale))


@pytest.mark.parametrize("scale", SCALES)
def test_mmagic_edsr_matches_source(tmp_path, scale):
    sd = basicsr_edsr_sd(scale, up="upsample.{j}.upsample_conv")
    state = {f"generator.{k}": v for k, v in sd.items()}
    state["data_preprocessor.mean"] = torch.zeros(3, 1, 1)  # not the generator's: ignored, and said so
    loaded = load_checkpoint(_save({"meta": {"epoch": 3}, "state_dict": state}, tmp_path / "mmagic.pth"))
    x = _lr(scale)
    assert loaded.source == "mmagic" and loaded.model.hparams["img_range"] == 1.0
    with torch.no_grad():
        _close(loaded.model(x), mmagic_edsr_forward(sd, x, scale))
    assert any("1 other entries ignored" in g for g in loaded.guesses)
    assert any(g.startswith("rgb_std = (1, 1, 1)") for g in loaded.guesses)


def test_mmagic_rgb_std_override_is_folded_exactly(tmp_path):
    sd = basicsr_edsr_sd(2, up="upsample.{j}.upsample_conv")
    path = _save({"state_dict": {f"generator.{k}": v for k, v in sd.items()}}, tmp_path / "mmagic.pth")
    std = (0.3, 0.5, 2.0)
    loaded = load_checkpoint(path, overrides={"rgb_std": std})
    x = _lr(2)
    with torch.no_grad():
        _close(loaded.model(x), mmagic_edsr_forward(sd, x, 2, std=std))
    assert "rgb_std = (0.3, 0.5, 2) (set by override)" in loaded.guesses


@pytest.mark.parametrize("prefix", ["", "module."])
def test_vdsr_state_dict_matches_source(tmp_path, prefix):
    sd = vdsr_sd()
    loaded = load_checkpoint(_save({f"{prefix}{k}": v for k, v in sd.items()}, tmp_path / "vdsr.pth"))
    x = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(2))
    assert loaded.source == "pytorch-vdsr" and loaded.model.hparams["n_layers"] == 3
    assert not loaded.model.hparams["bias"]
    with torch.no_grad():
        _close(loaded.model(x), vdsr_forward(sd, x))
    assert loaded.guesses[0].startswith("scale = 2 (not stored")


# ---------------------------------------------------------------- pickled whole modules, never run


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "dataparallel"])
def test_pickled_module_of_unknown_class_loads_without_import(tmp_path, legacy, wrap):
    net = Net().eval()
    path = _save({"epoch": 7, "model": nn.DataParallel(net) if wrap else net}, tmp_path / "m.pth", legacy)
    raw = restricted_load(path)
    prefix = "module." if wrap else ""
    assert raw["epoch"] == 7
    assert list(raw["model"]) == [prefix + k for k in net.state_dict()]  # order, no non-persistent buffer
    assert all(torch.equal(raw["model"][prefix + k], v) for k, v in net.state_dict().items())
    loaded = load_checkpoint(path, overrides={"scale": 3})
    x = torch.rand(1, 1, 16, 16)
    assert loaded.source == "pytorch-vdsr" and loaded.model.scale == 3
    with torch.no_grad():
        _close(loaded.model(x), net(x))


def _write_marker(path: str) -> None:
    Path(path).write_text("code ran")


class _ShellPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _FunctionPayload(_ShellPayload):
    def __reduce__(self):  # a callable on no deny-list: refused because it would be called
        return _write_marker, (str(self.marker),)


@pytest.mark.parametrize("container", ["pickle", "zip", "legacy"])
@pytest.mark.parametrize("payload", [_ShellPayload, _FunctionPayload], ids=["os.system", "function"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, container, payload):
    marker = tmp_path / "marker"
    obj = {"epoch": 1, "model": {"input.weight": torch.zeros(1)}, "hook": payload(marker)}
    path = tmp_path / "evil.pth"
    if container == "pickle":
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        _save(obj, path, legacy=container == "legacy")
    with pytest.raises(UnsafeCheckpointError, match=r"would run code.*state_dict\(\)"):
        load_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        restricted_load(path)
    assert not marker.exists()


def _py2_str(text: str) -> bytes:
    return b"U" + bytes([len(text)]) + text.encode()  # SHORT_BINSTRING: a Python 2 str


def _torch03_file(path: Path, values: list[float]) -> Path:
    """What torch 0.3 on Python 2 wrote (cf. the shared legacy teacher): legacy format, py2 strings,
    ``Parameter(t)`` + BUILD of (requires_grad, volatile, hooks), a ``_get_thnn_function_backend()`` call."""
    storage = b"((" + _py2_str("storage") + b"ctorch\nFloatStorage\n" + _py2_str("k1") + _py2_str("cuda:0")
    storage += b"K" + bytes([len(values)]) + b"Nt" + b"Q"  # ('storage', FloatStorage, 'k1', loc, n, None)
    tensor = b"ctorch._utils\n_rebuild_tensor\n" + storage + b"K\x00K\x02K\x02\x86K\x02K\x01\x86tR"
    main = (b"\x80\x02}(" + _py2_str("weight") + b"ctorch.nn.parameter\nParameter\n" + tensor + b"\x85R"
            + b"\x88\x89N\x87b" + _py2_str("_backend")
            + b"ctorch.nn.backends.thnn\n_get_thnn_function_backend\n)R" + b"u.")
    head = [LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}]
    data = b"".join(pickle.dumps(v, protocol=2) for v in head) + main + pickle.dumps(["k1"], protocol=2)
    path.write_bytes(data + struct.pack("<q", len(values)) + torch.tensor(values).numpy().tobytes())
    return path


def test_torch03_python2_legacy_pickle_is_read(tmp_path):
    raw = restricted_load(_torch03_file(tmp_path / "old.pth", [1.0, 2.0, 3.0, 4.0]))
    assert torch.equal(raw["weight"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert raw["_backend"].startswith("<not loaded: torch.nn.backends.thnn")


def test_legacy_storage_data_must_match_its_record(tmp_path):
    path = _torch03_file(tmp_path / "old.pth", [1.0, 2.0, 3.0])  # 3 elements cannot hold a 2x2 tensor
    with pytest.raises(CheckpointError, match="past the end of its storage"):
        restricted_load(path)


# ---------------------------------------------------------------- overrides and guesses


def test_res_scale_override_reaches_the_source_function(tmp_path):
    sd = edsr_pytorch_sd(2)
    path = _save(sd, tmp_path / "edsr.pt")
    x = _lr(2)
    want = edsr_pytorch_forward(sd, x * 255.0, 2, res_scale=0.1) / 255.0
    with torch.no_grad():
        guessed = load_checkpoint(path).model(x)
        loaded = load_checkpoint(path, overrides={"res_scale": 0.1, "img_range": None})
        _close(loaded.model(x), want)
    assert (guessed - want).abs().max() > 1e-3
    assert "res_scale = 0.1 (set by override)" in loaded.guesses
    assert not any(g.startswith("res_scale = 1") for g in loaded.guesses)


def test_img_range_override_for_basicsr(tmp_path):
    sd = basicsr_edsr_sd(2)
    loaded = load_checkpoint(_save({"params": sd}, tmp_path / "b.pth"), overrides={"img_range": 1.0})
    x = _lr(2)
    with torch.no_grad():
        _close(loaded.model(x), basicsr_edsr_forward(sd, x, 2, img_range=1.0))


def test_res_scale_guess_follows_the_edsr_convention():
    assert guess_res_scale(256, 32) == 0.1
    assert guess_res_scale(64, 16) == 1.0 and guess_res_scale(256, 16) == 1.0


def test_vdsr_scale_override(tmp_path):
    loaded = load_checkpoint(_save(vdsr_sd(), tmp_path / "v.pth"), overrides={"scale": 4})
    assert loaded.model.scale == 4 and loaded.guesses == ["scale = 4 (set by override)"]


@pytest.mark.parametrize(("overrides", "error", "text"), [
    ({"scale": 3}, CheckpointError, "weights are for scale = 2"),
    ({"bogus": 1}, ConfigError, "unknown override"),
    ({"rgb_std": (1, 1, 1)}, ConfigError, "does not apply to edsr-pytorch"),
    ({"res_scale": -1}, ConfigError, "invalid res_scale"),
])
def test_bad_overrides_are_reported(tmp_path, overrides, error, text):
    with pytest.raises(error, match=text):
        load_checkpoint(_save(edsr_pytorch_sd(2), tmp_path / "edsr.pt"), overrides=overrides)


def test_override_not_applicable_to_vdsr(tmp_path):
    with pytest.raises(ConfigError, match="res_scale does not apply to pytorch-vdsr"):
        load_checkpoint(_save(vdsr_sd(), tmp_path / "v.pth"), overrides={"res_scale": 0.1})


# ---------------------------------------------------------------- what cannot be loaded


def test_unknown_layout_names_known_formats_and_keys(tmp_path):
    path = _save({"encoder.weight": torch.zeros(2, 2), "decoder.bias": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"EDSR-PyTorch.*BasicSR.*MMagic.*pytorch-vdsr") as e:
        load_checkpoint(path)
    assert "encoder.weight" in str(e.value)


def test_not_a_dict_of_weights(tmp_path):
    with pytest.raises(CheckpointError, match="not a dict of weights"):
        load_checkpoint(_save(torch.zeros(3), tmp_path / "t.pt"))


def test_shape_mismatch_is_a_checkpoint_error(tmp_path):
    sd = edsr_pytorch_sd(2)
    sd["body.1.body.2.weight"] = torch.zeros(FEATS, FEATS, 1, 1)
    with pytest.raises(CheckpointError, match=r"body\.1\.body\.2\.weight has shape \[8, 8, 1, 1\]"):
        load_checkpoint(_save(sd, tmp_path / "edsr.pt"))


def test_unexpected_keys_are_a_checkpoint_error(tmp_path):
    sd = vdsr_sd()
    sd["input.bias_extra"] = torch.zeros(FEATS)
    with pytest.raises(CheckpointError, match="unexpected keys.*input.bias_extra"):
        load_checkpoint(_save(sd, tmp_path / "v.pth"))


def test_mmagic_msrresnet_is_refused_with_the_reason(tmp_path):
    sd = {"generator.conv_first.weight": torch.zeros(8, 3, 3, 3), "generator.trunk_net.0.conv1.weight":
          torch.zeros(8, 8, 3, 3)}
    with pytest.raises(CheckpointError, match="no LeakyReLU after the upsampler"):
        load_checkpoint(_save({"state_dict": sd}, tmp_path / "m.pth"))


@pytest.mark.parametrize("kind", ["zip-module", "legacy-module", "random", "empty", "zip-weights"])
def test_truncated_or_corrupt_files_are_checkpoint_errors(tmp_path, kind):
    path = tmp_path / "bad.pth"
    if kind in ("zip-module", "legacy-module"):
        data = _save({"model": Net()}, tmp_path / "full.pth", legacy=kind == "legacy-module").read_bytes()
        path.write_bytes(data[: int(len(data) * 0.9)])
    elif kind == "zip-weights":
        data = _save(vdsr_sd(), tmp_path / "full.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(os.urandom(300) if kind == "random" else b"")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert not isinstance(e.value, UnsafeCheckpointError)
    if kind != "zip-weights":
        with pytest.raises(CheckpointError):
            restricted_load(path)
