"""A small workspace of real and hostile input files shared by the CLI and recipe fuzz tests."""

from __future__ import annotations

import hashlib
from pathlib import Path


def make_workspace(root: Path) -> dict[str, Path]:
    import torch
    from PIL import Image

    from sr_compress.checkpoint import checkpoint_dict, save_checkpoint
    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.models import build_model, plain_layers, tiny_hparams

    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    w: dict[str, Path] = {}
    edsr = build_model("edsr", **tiny_hparams("edsr"))
    w["model"] = save_checkpoint(edsr, root / "m.pt")
    w["vdsr"] = save_checkpoint(build_model("vdsr", **tiny_hparams("vdsr")), root / "v.pt")
    w["onnx"] = root / "p.onnx"
    export_onnx(build_model("plain", scale=2, layers=plain_layers(2, 8, 2)), w["onnx"], validate=False)
    data = root / "data"
    data.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(data / f"img{i}.png")
    w["data"], w["image"] = data, data / "img0.png"
    w["empty"] = root / "empty.pt"
    w["empty"].write_bytes(b"")
    w["garbage"] = root / "garbage.pt"
    w["garbage"].write_bytes(b"\x80\x04not a pickle at all" * 8)
    hostile = checkpoint_dict(edsr)
    hostile["hparams"] = {**hostile["hparams"], "n_feats": 10**9}
    w["hostile"] = root / "hostile.pt"
    torch.save(hostile, w["hostile"])
    w["folder"] = root / "folder.pt"
    w["folder"].mkdir()
    w["missing"] = root / "missing.pt"
    w["out"] = root / "out"
    w["out"].mkdir()
    return w


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` except under ``skip`` (the outputs folder)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and skip not in p.parents:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
