"""Import of the lightweight families' released layouts (IMDN, RFDN, RLFN, Real-ESRGAN SRVGGNetCompact, yjn870
FSRCNN) from synthetic tiny checkpoints written with the upstream key names: detection from keys, hparams from
shapes, containers and prefixes, exactness, and one-line errors for missing, extra and misshapen keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from sr_compress.checkpoint import load_checkpoint
from sr_compress.errors import CheckpointError, ConfigError
from sr_compress.models import build_model


def _renamed(sd: dict, rules: list[tuple[str, str]]) -> dict:
    out = {}
    for k, v in sd.items():
        for pat, rep in rules:
            m = re.fullmatch(pat, k)
            if m:
                k = m.expand(rep)
                break
        out[k] = v.clone()
    return out


def _upstream(model) -> dict:
    """The tiny model's state dict under the upstream key names (written from the upstream layouts)."""
    sd = model.state_dict()
    arch = model.arch
    if arch in ("imdn", "rfdn", "rlfn"):
        block = {"imdn": "IMDB{}", "rfdn": "B{}", "rlfn": "block_{}"}[arch]
        out = {}
        for k, v in sd.items():
            m = re.fullmatch(r"body\.(\d+)\.(.*)", k)
            if m:
                k = block.format(int(m.group(1)) + 1) + "." + m.group(2)
            out[k] = v.clone()
        head, body_conv = ("conv_1", "conv_2") if arch == "rlfn" else ("fea_conv", "LR_conv")
        return _renamed(out, [(r"head\.(.*)", head + r".\1"), (r"fuse\.(.*)", r"c.0.\1"),
                              (r"body_conv\.(.*)", body_conv + r".\1"), (r"tail\.0\.(.*)", r"upsampler.0.\1")])
    if arch == "srvgg":
        n = len(model.body)
        out = {}
        for k, v in sd.items():
            m = re.fullmatch(r"(head|tail|body\.(\d+))\.(\d)\.(.*)", k)
            part, j = m.group(1), int(m.group(3))
            pos = j if part == "head" else 2 * n + 2 if part == "tail" else 2 + 2 * int(m.group(2)) + j
            out[f"body.{pos}.{m.group(4)}"] = v.clone()
        return out
    assert arch == "fsrcnn"
    m_ = len(model.body)
    out = {}
    for k, v in sd.items():
        mm = re.fullmatch(r"(head|tail|body\.(\d+))\.(\d)\.(.*)", k)
        part, j, rest = mm.group(1), int(mm.group(3)), mm.group(4)
        if part == "head":
            key = f"first_part.{j}.{rest}" if j < 2 else f"mid_part.{j - 2}.{rest}"
        elif part == "tail":
            key = f"mid_part.{2 * m_ + 2 + j}.{rest}" if j < 2 else f"last_part.{rest}"
        else:
            key = f"mid_part.{2 + 2 * int(mm.group(2)) + j}.{rest}"
        out[key] = v.clone()
    return out


def _tiny(arch: str, scale: int, **over):
    torch.manual_seed(0)
    hp = {"imdn": {"n_feats": 12, "n_blocks": 3, "distilled": 3, "cca_feats": 2},
          "rfdn": {"n_feats": 8, "n_blocks": 2, "distilled": 4, "esa_feats": 2},
          "rlfn": {"n_feats": 8, "n_blocks": 3, "mid_feats": 6, "esa_feats": 4},
          "srvgg": {"n_feats": 8, "n_conv": 3},
          "fsrcnn": {"d": 8, "s": 4, "m": 2, "channels": 1}}[arch]
    m = build_model(arch, scale=scale, **{**hp, **over}).eval()
    with torch.no_grad():  # PReLU slopes and biases away from their init, so a mix-up shows
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _save(obj, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


CASES = [("imdn", 2), ("imdn", 3), ("rfdn", 4), ("rfdn", 2), ("rlfn", 4), ("rlfn", 3), ("srvgg", 4), ("srvgg", 2),
         ("fsrcnn", 3)]


@pytest.mark.parametrize("arch, scale", CASES)
def test_upstream_layout_imports_exactly(arch, scale, tmp_path):
    m = _tiny(arch, scale)
    sd = _upstream(m)
    if arch == "imdn":  # released as a legacy (pre-1.6) file from DataParallel: every key prefixed module.
        path = _save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "w.pth", legacy=True)
    elif arch == "srvgg":  # Real-ESRGAN: {'params': ...} (params_ema preferred when present)
        path = _save({"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}}, tmp_path / "w.pth")
    else:
        path = _save(sd, tmp_path / "w.pth")
    loaded = load_checkpoint(path, overrides={"scale": scale} if arch == "fsrcnn" else None)
    got = loaded.model
    assert got.arch == arch and got.hparams == m.hparams, (got.hparams, m.hparams)
    x = torch.rand(1, m.channels, 16, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(got(x), m(x))
    assert got.provenance[0]["stage"] == "import"
    if arch == "srvgg":
        assert any("params_ema" in g for g in loaded.guesses)


def test_rlfn_prune_layout_has_mid_width():
    m = _tiny("rlfn", 4, n_feats=6, mid_feats=8, n_blocks=2)
    assert m.body[0].c1_r.out_channels == 8 and m.body[0].c3_r.out_channels == 6


def test_guesses_and_overrides(tmp_path):
    path = _save(_upstream(_tiny("rlfn", 4)), tmp_path / "r.pth")
    g = load_checkpoint(path).guesses
    assert g == ["img_range = 255 (not stored; RLFN's test_demo.py (x 255) feeds RGB in 0..255 and returns 0..255; "
                 "override with --img-range)"]
    assert load_checkpoint(path, overrides={"img_range": 1.0}).model.hparams["img_range"] == 1.0
    with pytest.raises(CheckpointError, match="the weights are for scale = 4"):
        load_checkpoint(path, overrides={"scale": 2})
    fs = _save(_upstream(_tiny("fsrcnn", 2)), tmp_path / "f.pth")
    assert any(s.startswith("scale = 2 (not stored") for s in load_checkpoint(fs).guesses)
    with pytest.raises(ConfigError, match="res_scale does not apply"):
        load_checkpoint(fs, overrides={"res_scale": 1.0})


def test_srvgg_without_prelu_slopes_guesses_the_activation(tmp_path):
    m = _tiny("srvgg", 4, act="lrelu")
    path = _save({"params": _upstream(m)}, tmp_path / "w.pth")
    loaded = load_checkpoint(path)
    assert loaded.model.hparams["act"] == "relu" and any(s.startswith("act = relu (no PReLU") for s in loaded.guesses)
    back = load_checkpoint(path, overrides={"act": "lrelu"}).model
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.equal(back(x), m(x))


@pytest.mark.parametrize("arch", ["imdn", "rfdn", "rlfn", "srvgg", "fsrcnn"])
def test_missing_extra_and_misshapen_keys_are_one_line(arch, tmp_path):
    sd = _upstream(_tiny(arch, 4))
    victim = sorted(k for k in sd if k.endswith(".bias"))[1]
    for bad, needle in [({k: v for k, v in sd.items() if k != victim}, f"{re.escape(victim)} is missing"),
                        ({**sd, "extra.weight": torch.zeros(3)}, r"unexpected keys \['extra.weight'\]"),
                        ({**sd, victim: torch.zeros(sd[victim].numel() + 1)}, f"{re.escape(victim)} has shape")]:
        path = _save(bad, tmp_path / "bad.pth")
        with pytest.raises(CheckpointError, match=needle) as e:
            load_checkpoint(path, overrides={"scale": 4} if arch == "fsrcnn" else None)
        assert "\n" not in str(e.value)


def test_blocks_must_be_numbered_from_one(tmp_path):
    sd = _upstream(_tiny("rlfn", 4))
    sd = {k.replace("block_2.", "block_5."): v for k, v in sd.items()}
    with pytest.raises(CheckpointError, match=r"blocks numbered \[1, 3, 5\] are not 1..3"):
        load_checkpoint(_save(sd, tmp_path / "w.pth"))


def test_training_patches_too_small_for_esa_are_one_line():
    from sr_compress.train.trainer import TrainConfig, Trainer

    teacher, student = _tiny("rlfn", 4), build_model("srvgg", **{"scale": 4, "n_feats": 4, "n_conv": 1})
    with pytest.raises(ConfigError, match=r"rlfn needs network inputs of at least 15x15 px; HR patches of 48 px "
                                          r"give 12: use a patch size of at least 60"):
        Trainer(student, "kd", source=None, config=TrainConfig(steps=1, patch_size=48), teacher=teacher)
    Trainer(student, "kd", source=None, config=TrainConfig(steps=1, patch_size=60), teacher=teacher)  # fits


@pytest.mark.parametrize("legacy", [True, False])
def test_cuda_tagged_storages_load_on_cpu(legacy, tmp_path, monkeypatch):
    """Most released files were saved from a GPU (storages tagged ``cuda:0``); a plain ``torch.load`` fails on a
    CPU-only machine, ours maps them to the CPU. The tag is written by patching torch's location tag."""
    import torch.serialization as ser

    m = _tiny("imdn", 2)
    sd = {f"module.{k}": v for k, v in _upstream(m).items()}
    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")
    path = _save(sd, tmp_path / "w.pth", legacy=legacy)
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    got = load_checkpoint(path).model
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        assert torch.equal(got(x), m(x))
