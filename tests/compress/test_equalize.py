"""Exact rewrites of plain students for int8 (offset folding, range equalisation): exact, and they help."""

from __future__ import annotations

import pytest
import torch

from sr_compress.compress.equalize import equalize_plain
from sr_compress.errors import ConfigError
from sr_compress.models import build_model

LAYERS = [8, 8, {"out": 6, "act": "identity"}, {"out": 12, "act": "identity", "shuffle": 2}]


def _offset_student(seed: int = 0):
    """A plain student whose channels sit far above zero, as plainify's mean shift leaves them."""
    torch.manual_seed(seed)
    m = build_model("plain", scale=2, layers=LAYERS, img_range=255.0, rgb_mean=[0.45, 0.44, 0.40]).eval()
    with torch.no_grad():
        for layer in (m.head[0], *m.body):
            layer.conv.weight.mul_(0.3)
            layer.conv.bias.add_(torch.linspace(200, 3000, layer.conv.bias.numel()))
    return m


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_fold_and_equalize_are_exact_on_data_that_meets_the_condition_borders_included():
    m = _offset_student()
    calib = torch.rand(4, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    out, rep = equalize_plain(m, calib, equalize=True)
    assert sum(r.folded for r in rep.layers) > 0 and rep.constant_channels == 3
    assert all(r.min_margin >= 0 for r in rep.layers)  # z_k ≥ c_k held on the calibration data
    with torch.no_grad():
        # the calibration data itself, and other images of the same kind (the margin keeps them exact)
        for x in (calib, torch.rand(2, 3, 23, 17, generator=torch.Generator().manual_seed(2))):
            assert _rel(out.double()(x.double()), m.double()(x.double())) < 1e-6  # weights stored float32
            assert _rel(out.float()(x), m.float()(x)) < 1e-5
    # the whole image, the border ring included (an offset folded into a bias would break the border)
    assert out.hparams["layers"][0]["out"] == 9


def test_fold_without_constant_channel_would_break_the_border():
    """The reason for the constant channel: with the offset added back as a bias the border ring differs."""
    m = _offset_student()
    calib = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    out, _ = equalize_plain(m, calib, equalize=False)
    with torch.no_grad():
        nxt = out.body[0].conv
        nxt.bias += nxt.weight[:, -1].sum((1, 2)) * out.head[0].conv.bias[-1]  # constant channel → bias
        nxt.weight[:, -1] = 0
        diff = (out.double()(calib.double()) - m.double()(calib.double())).abs()[0, 0]
    # the interior (beyond the 3 layers' reach of the border: 6 HR px) still agrees
    assert float(diff[8:-8, 8:-8].max()) < 1e-4 * float(diff.max())
    assert float(diff.max()) > 1e-3  # the border does not


def test_equalisation_alone_is_exact_for_any_input():
    m = _offset_student(3)
    calib = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    out, rep = equalize_plain(m, calib, fold=False, equalize=True)
    assert rep.constant_channels == 0 and out.hparams["layers"] == m.hparams["layers"]
    x = torch.randn(1, 3, 15, 13, generator=torch.Generator().manual_seed(5)) * 3  # far outside the calibration
    with torch.no_grad():
        assert _rel(out.double()(x.double()), m.double()(x.double())) < 1e-6  # weights stored float32


def test_rewrites_shrink_the_per_tensor_range_relative_to_the_channels():
    m = _offset_student()
    calib = torch.rand(4, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    _, folded = equalize_plain(m, calib)
    _, both = equalize_plain(m, calib, equalize=True)
    for a, b in zip(folded.layers, both.layers, strict=True):
        if a.folded:
            # before: thousands wide for channels a few hundred wide; folding alone removes most of it
            assert a.range_before > 4 * a.range_after
            # equalisation brings the tensor's range within a small factor of a channel's
            assert b.range_after < 4 * b.median_channel_span


def test_exported_rewritten_student_stays_plain(tmp_path):
    from sr_compress.deploy.onnx import export_onnx

    out, _ = equalize_plain(_offset_student(), torch.rand(2, 3, 12, 12))
    rep = export_onnx(out, tmp_path / "eq.onnx")
    assert rep.is_plain and rep.max_err_real < 1e-3


def test_only_plain_models():
    with pytest.raises(ConfigError, match="plain"):
        equalize_plain(build_model("edsr", scale=2, n_feats=8, n_blocks=1), torch.rand(1, 3, 8, 8))
