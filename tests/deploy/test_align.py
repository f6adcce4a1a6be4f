"""Channel alignment for onnxruntime's fused int8 conv: exact, aligned, and the same int8 quality."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers.quant import FAST, quiet_quantiser  # noqa: F401  (autouse fixture)
from onnx import numpy_helper

from sr_compress.deploy.bound import count_params, model_params
from sr_compress.deploy.quantize import (
    ALIGN_IN,
    ALIGN_OUT,
    MIN_OUT,
    _export_bytes,
    align_channels,
    fold_output_affine,
    quantize,
)
from sr_compress.models import build_model


def _models():
    torch.manual_seed(0)
    plain = build_model("plain", scale=2, layers=[7, 13, 9, {"out": 12, "act": "identity", "shuffle": 2}],
                        img_range=255.0, rgb_mean=[0.45, 0.44, 0.40])
    edsr = build_model("edsr", scale=2, n_feats=6, n_blocks=2)  # residual adds: convs read by Add get a Slice
    srvgg = build_model("srvgg", scale=2, n_feats=10, n_conv=2)  # per-channel PReLU between the convs
    for m in (plain, edsr, srvgg):  # non-zero biases and slopes everywhere, so a wrong pad would show
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return {"plain": plain.eval(), "edsr": edsr.eval(), "srvgg": srvgg.eval()}


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _convs(model: onnx.ModelProto) -> list[tuple[int, ...]]:
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [init[n.input[1]].shape for n in model.graph.node if n.op_type == "Conv"]


@pytest.mark.parametrize("name", ["plain", "edsr", "srvgg"])
def test_align_is_exact_and_every_conv_fits_the_fused_kernel(name):
    graph = fold_output_affine(onnx.load_from_string(_export_bytes(_models()[name])))[0]
    aligned, rep = align_channels(graph)
    onnx.checker.check_model(aligned, full_check=True)
    shapes = _convs(aligned)
    assert all(s[0] % ALIGN_OUT == 0 and s[0] >= MIN_OUT for s in shapes), shapes  # every output, via Slice
    if name == "edsr":  # the residual stream (6 wide) is left as it is; the image is padded for the head conv
        assert shapes[0][1] == ALIGN_IN and sum(s[1] == 6 for s in shapes) == 5
        # sliced: the head, each block's second conv, body_conv (read by Adds) and the last conv (the output)
        assert rep["slices"] == 5 and len(shapes) == 8
    else:  # a plain chain: every input too
        assert all(s[1] % ALIGN_IN == 0 for s in shapes), shapes
    assert rep["convs"] >= 1 and rep["pads"] == 1 and rep["channels"] > 0
    x = np.random.default_rng(0).random((1, 3, 13, 17), np.float32)  # odd sizes: the zero-padded border counts
    before, after = _run(graph, x), _run(aligned, x)
    assert before.shape == after.shape == (1, 3, 26, 34)
    assert np.abs(before - after).max() <= 1e-5 * max(1.0, float(np.abs(before).max()))


def test_align_keeps_the_graph_interface_and_slices_only_where_a_non_conv_reads():
    graph = fold_output_affine(onnx.load_from_string(_export_bytes(_models()["plain"])))[0]
    aligned, rep = align_channels(graph)
    # plain 3 → 7 → 13 → 9 → 12 (+shuffle): every conv feeds a conv except the last, which feeds DepthToSpace
    assert _convs(aligned) == [(16, 4, 3, 3), (16, 16, 3, 3), (16, 16, 3, 3), (16, 16, 3, 3)]
    assert {k: v for k, v in rep.items() if k != "params"} == {
        "convs": 4, "channels": (16 - 7) + (16 - 13) + (16 - 9) + (16 - 12) + 1, "slices": 1, "pads": 1}
    assert count_params(aligned.graph) - count_params(graph.graph) == rep["params"] > 0
    assert [i.name for i in aligned.graph.input] == [i.name for i in graph.graph.input]
    assert [o.name for o in aligned.graph.output] == [o.name for o in graph.graph.output]
    again, rep2 = align_channels(aligned)  # idempotent: nothing left to pad
    assert rep2 == {"convs": 0, "channels": 0, "slices": 0, "pads": 0, "params": 0}
    assert again.SerializeToString() == aligned.SerializeToString()


def test_int8_with_alignment_scores_as_without_and_runs_8bit_between_the_convs(tmp_path):
    model = _models()["plain"]
    p_al, r_al = quantize(model, tmp_path / "al.onnx", max_drop=5.0, rewrite=False, **FAST)
    p_na, r_na = quantize(model, tmp_path / "na.onnx", max_drop=5.0, rewrite=False, align=False, **FAST)
    assert r_al.rewrites["channels_aligned"]["convs"] == 4 and "channels_aligned" not in r_na.rewrites
    # the file stores the zeros; the model's parameter count leaves them out (metadata)
    q_al, q_na = onnx.load(str(p_al)), onnx.load(str(p_na))
    assert count_params(q_al.graph) - count_params(q_na.graph) == r_al.rewrites["channels_aligned"]["params"]
    assert model_params(q_al) == model_params(q_na) == sum(p.numel() for p in model.parameters())
    # zero channels do not move any calibrated range (uint8 ranges always hold 0): the same int8 model
    assert abs(r_al.quant_psnr_y - r_na.quant_psnr_y) < 0.01
    x = np.random.default_rng(1).random((1, 3, 20, 24), np.float32)
    a, b = _run(onnx.load(str(p_al)), x), _run(onnx.load(str(p_na)), x)
    assert a.shape == b.shape == (1, 3, 40, 48)
    assert np.abs(a - b).max() <= 2 / 255 * 255  # within two 8-bit output steps of each other (img_range 255)
    # onnxruntime's optimised graph: 8-bit QLinearConv chain, the Slice and the shuffle on 8-bit values
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(p_al), opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops.count("QLinearConv") == 4 and ops[-1] == "DequantizeLinear"
    tail = ops[ops.index("Slice"):]
    assert tail[:2] == ["Slice", "DepthToSpace"] and "Conv" not in ops
