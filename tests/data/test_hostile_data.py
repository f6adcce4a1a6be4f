"""Hostile data files: an eval folder with a 1×1 image, an .npz holding pickled objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sr_compress.errors import DataError


@pytest.fixture
def ckpts(tmp_path):
    from sr_compress.checkpoint import save_checkpoint
    from sr_compress.models import build_model, tiny_hparams

    torch.manual_seed(0)
    return (save_checkpoint(build_model("edsr", **tiny_hparams("edsr")), tmp_path / "m.pt"),
            save_checkpoint(build_model("vdsr", **tiny_hparams("vdsr")), tmp_path / "v.pt"))


def test_one_pixel_image_in_an_eval_folder(tmp_path, ckpts, invoke):
    from sr_compress.data.datasets import eval_pairs
    from sr_compress.data.degrade import degrade

    d = tmp_path / "data"
    d.mkdir()
    Image.new("RGB", (1, 1)).save(d / "dot.png")
    with pytest.raises(DataError, match=r"dot: 1x1 px is smaller than the scale ×2"):
        eval_pairs(d, 2)
    with pytest.raises(DataError, match="smaller than the scale"):
        degrade(torch.zeros(3, 1, 5), 2)
    code, _, err = invoke("eval", ckpts[0], "--data", d)
    assert code == 2 and err.strip().startswith("error: ") and "dot" in err
    assert len(err.strip().splitlines()) == 1


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_with_pickled_objects_is_refused_cleanly(tmp_path, ckpts, invoke):
    from sr_compress.evaluate import load_npz_y

    obj = np.array([{"a": 1}], dtype=object)
    p = _npz(tmp_path / "p.npz", bird_bicubic_ycbcr=obj, bird_gt_ycbcr=obj)
    with pytest.raises(DataError, match="pickled objects"):
        load_npz_y(p, ("bird",))
    code, _, err = invoke("eval", ckpts[1], "--data", p)
    assert code == 2 and "pickled objects" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("arrays, match", [
    ({"bird_bicubic_ycbcr": np.zeros((4, 4)), "bird_gt_ycbcr": np.zeros((4, 4))}, "shape"),
    ({"bird_bicubic_ycbcr": np.zeros((4, 4, 3)), "bird_gt_ycbcr": np.zeros((5, 4, 3))}, "differ in shape"),
    ({"bird_bicubic_ycbcr": np.array([["a"]]), "bird_gt_ycbcr": np.zeros((4, 4, 3))}, "expected H×W×3"),
])
def test_npz_wrong_arrays(tmp_path, arrays, match):
    from sr_compress.evaluate import load_npz_y

    with pytest.raises(DataError, match=match):
        load_npz_y(_npz(tmp_path / "w.npz", **arrays), ("bird",))


def test_npz_garbage_file(tmp_path):
    from sr_compress.evaluate import load_npz_y

    p = tmp_path / "g.npz"
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz_y(p, ("bird",))
