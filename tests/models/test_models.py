"""The model zoo: every registered family builds from plain data, has the right shapes, and round-trips."""

from __future__ import annotations

import json

import pytest
import torch

from sr_compress.checkpoint import FORMAT, load_checkpoint, read_raw, save_checkpoint
from sr_compress.errors import CheckpointError, ConfigError
from sr_compress.models import build_model, count_params, list_models, plain_layers, tiny_hparams

ARCHS = list_models()


def test_registry_has_the_families():
    assert {"edsr", "vdsr", "fsrcnn", "msrresnet", "plain"} <= set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_and_structure(arch, scale):
    m = build_model(arch, **tiny_hparams(arch, scale)).eval()
    h, w = max(11, m.min_size), max(13, m.min_size)  # ESA nets need 15×15 (upstream's pooling window)
    x = torch.rand(2, m.channels, h * scale, w * scale) if m.pre_upsample else torch.rand(2, m.channels, h, w)
    y = m(x)
    assert y.shape == (2, m.channels, h * scale, w * scale)
    assert isinstance(m.body, torch.nn.ModuleList) and len(m.body) >= 1
    assert hasattr(m, "head") and hasattr(m, "tail")
    assert count_params(m) < 20_000  # tiny variants stay tiny
    json.dumps(m.hparams)  # hparams are plain data


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trip_is_exact(tmp_path, arch):
    torch.manual_seed(0)
    m = build_model(arch, **tiny_hparams(arch, 3)).eval()
    m.provenance = [{"stage": "test", "params": {"a": 1}}]
    save_checkpoint(m, tmp_path / "m.pt")
    raw = read_raw(tmp_path / "m.pt")
    assert raw["format"] == FORMAT and raw["arch"] == arch
    back = load_checkpoint(tmp_path / "m.pt").model
    side = max(9, m.min_size)
    x = torch.rand(1, m.channels, 3 * side, 3 * side) if m.pre_upsample else torch.rand(1, m.channels, side, side)
    assert torch.equal(back(x), m(x))
    assert back.hparams == m.hparams and back.provenance == m.provenance


def test_edsr_parameter_counts_match_the_reference_implementation():
    # EDSR-PyTorch baseline r16f64 (ECOSYSTEM.md), mean-shift convs excluded
    expected = {2: 1_369_859, 3: 1_554_499, 4: 1_517_571}
    for scale, n in expected.items():
        assert count_params(build_model("edsr", scale=scale)) == n


def test_vdsr_and_plain_reference_sizes():
    assert count_params(build_model("vdsr")) == 64 * 9 + 18 * 64 * 64 * 9 + 64 * 9  # no biases
    plain = build_model("plain", scale=4)
    assert len(plain.hparams["layers"]) == 35
    assert [(s["out"], s["act"], s["shuffle"]) for s in plain.hparams["layers"]] == [(64, "relu", 1)] * 34 + [
        (48, "identity", 4)]


@pytest.mark.parametrize("arch, hparams, message", [
    ("nope", {}, "unknown arch 'nope'; choose one of"),
    ("edsr", {"scale": 5}, "scale must be one of"),
    ("edsr", {"width": 3}, "unknown hyper-parameter(s) width"),
    ("plain", {"scale": 2, "layers": [8, {"out": 27, "shuffle": 3}]}, "multiply to 3"),
    ("plain", {"scale": 2, "layers": [8, {"out": 12, "act": "gelu", "shuffle": 2}]}, "unknown activation"),
    ("plain", {"scale": 2, "layers": [8, {"out": 8, "shuffle": 2}]}, "must output 3 channels"),
])
def test_bad_hparams_are_config_errors(arch, hparams, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model(arch, **hparams)


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path, monkeypatch):
    m = build_model("plain", **tiny_hparams("plain", 2))
    path = tmp_path / "m.pt"
    save_checkpoint(m, path)
    before = path.read_bytes()

    def boom(obj, f):  # a crash half-way through writing
        open(f, "wb").write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(m, path, force=True)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    monkeypatch.undo()
    with pytest.raises(Exception, match="exists; use --force"):
        save_checkpoint(m, path)


def test_newer_format_and_unknown_arch_are_refused(tmp_path):
    m = build_model("plain", **tiny_hparams("plain", 2))
    from sr_compress.checkpoint import checkpoint_dict

    data = checkpoint_dict(m)
    torch.save({**data, "format": "srcompress/9"}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer srcompress"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save({**data, "arch": "mystery"}, tmp_path / "arch.pt")
    with pytest.raises(ConfigError, match="unknown arch 'mystery'"):
        load_checkpoint(tmp_path / "arch.pt")
    torch.save({**data, "hparams": {**data["hparams"], "layers": plain_layers(3, 16, 2)}}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(tmp_path / "w.pt")
