"""Quantisation: int8 QDQ / fp16 graphs validated, bad inputs as one-line errors, dtype-aware graph cost."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from helpers.quant import FAST, quiet_quantiser  # noqa: F401  (autouse fixture)
from onnx import TensorProto, helper

from sr_compress.deploy.bound import fused_view, graph_cost, with_input_shape
from sr_compress.deploy.quantize import graph_precision, quantize, to_half
from sr_compress.errors import ConfigError, DataError, InputError, VerificationError
from sr_compress.models import build_model


def _plain(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("plain", scale=2, layers=[8, 8, {"out": 12, "act": "identity", "shuffle": 2}],
                       img_range=255.0, rgb_mean=[0.45, 0.44, 0.40]).eval()


def _run(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_int8_graph_is_qdq_with_float32_boundary_and_close_to_float(tmp_path):
    model = _plain()
    path, rep = quantize(model, tmp_path / "m_int8.onnx", max_drop=1.0, rewrite=False, **FAST)
    g = onnx.load(str(path))
    onnx.checker.check_model(g, full_check=True)
    ops = {n.op_type for n in g.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert g.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert g.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert graph_precision(g) == "int8"
    # conv weights are stored as int8 with one int8 zero point per channel; aligned for onnxruntime's fused
    # kernel (tests/deploy/test_align.py) the 3 → 8 → 8 → 12 convs are 4 → 16 → 16 → 16 wide
    assert rep.weights_by_dtype["int8"] == 16 * 4 * 9 + 16 * 16 * 9 + 16 * 16 * 9 + 16 + 16 + 16
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1)).numpy()
    out = _run(path, x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape == (1, 3, 40, 48) and out.dtype == np.float32
    assert np.abs(out - ref).max() < 0.1 * (np.abs(ref).max() + 1e-6)
    assert rep.images and abs(rep.drop_db - (rep.float_psnr_y - rep.quant_psnr_y)) < 1e-9
    assert rep.max_diff_levels > 0


def test_fp16_graph_keeps_float32_io_and_matches(tmp_path):
    model = _plain()
    path, rep = quantize(model, tmp_path / "m_fp16.onnx", precision="fp16", **FAST)
    g = onnx.load(str(path))
    onnx.checker.check_model(g, full_check=True)
    assert {t.data_type for t in g.graph.initializer} == {TensorProto.FLOAT16}
    assert g.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert graph_precision(g) == "fp16" and rep.drop_db < 0.02
    x = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(2)).numpy()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(_run(path, x) - ref).max() < 2e-3 * max(1.0, np.abs(ref).max())


def test_to_half_bf16_rounds_to_nearest_even():
    w = np.array([1.0, 1.00390625, 1.01171875, -3.140625e-3], dtype=np.float32)  # exact ties and non-ties
    init = helper.make_tensor("w", TensorProto.FLOAT, [4], w)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    g = helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [init]))
    half = to_half(g, "bf16")
    t = half.graph.initializer[0]
    assert t.data_type == TensorProto.BFLOAT16
    got = (np.frombuffer(t.raw_data, "<u2").astype(np.uint32) << 16).view(np.float32)
    ref = torch.from_numpy(w).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(got, ref)
    assert [n.op_type for n in half.graph.node] == ["Cast", "Add", "Cast"]


def test_bf16_without_runtime_kernels_is_one_line_input_error(tmp_path):
    try:
        quantize(_plain(), tmp_path / "m.onnx", precision="bf16", **FAST)
    except InputError as e:
        assert "bf16" in str(e) and "\n" not in str(e)
        assert not (tmp_path / "m.onnx").exists()
    else:
        pytest.skip("this onnxruntime runs bfloat16 Conv on the CPU; the missing-kernel error cannot occur")


def test_bad_inputs_are_one_line_errors(tmp_path):
    model = _plain()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        quantize(model, tmp_path / "a.onnx", calib=empty, **FAST)
    with pytest.raises(ConfigError, match="precision"):
        quantize(model, tmp_path / "a.onnx", precision="int4", **FAST)
    with pytest.raises(ConfigError, match="method"):
        quantize(model, tmp_path / "a.onnx", method="mse", **FAST)
    with pytest.raises(ConfigError, match="no node named 'nope'"):
        quantize(model, tmp_path / "a.onnx", exclude=["nope"], rewrite=False, **FAST)
    # an op outside the supported set (a custom-domain op) is refused by name
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])
    node = helper.make_node("Fancy", ["input"], ["output"], name="fancy0", domain="my.ops")
    bad = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                            opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)])
    helper.set_model_props(bad, {"scale": "2", "channels": "3"})
    onnx.save(bad, tmp_path / "bad.onnx")
    with pytest.raises(InputError, match="op Fancy"):
        quantize(tmp_path / "bad.onnx", tmp_path / "b.onnx", **FAST)
    for e in (DataError, ConfigError, InputError):
        assert e.exit_code == 2


def test_quantised_onnx_is_refused_and_a_large_drop_writes_nothing(tmp_path):
    model = _plain()
    path, _ = quantize(model, tmp_path / "m_int8.onnx", max_drop=100, **FAST)
    with pytest.raises(InputError, match="already quantised"):
        quantize(path, tmp_path / "again.onnx", **FAST)
    with pytest.raises(VerificationError, match="max drop"):
        quantize(model, tmp_path / "never.onnx", max_drop=-1.0, **FAST)
    assert not (tmp_path / "never.onnx").exists()


def test_bound_and_params_count_real_element_sizes(tmp_path):
    model = _plain()
    float_path = tmp_path / "m.onnx"
    from sr_compress.deploy.onnx import export_onnx

    export_onnx(model, float_path, validate=False)
    # align=False: the widths as exported (alignment adds zero channels; counted in tests/deploy/test_align.py)
    q, rep = quantize(float_path, tmp_path / "m_int8.onnx", max_drop=100, align=False, **FAST)
    assert rep.warnings and "checkpoint" in rep.warnings[0]  # a plain ONNX graph: no offset folding
    h, rep = quantize(float_path, tmp_path / "m_fp16.onnx", precision="fp16", **FAST)
    assert rep.warnings == []
    shape = [1, 3, 30, 40]
    f32, i8, f16 = (graph_cost(p, shape) for p in (float_path, q, h))
    n_w = 8 * 3 * 9 + 8 * 8 * 9 + 12 * 8 * 9
    assert f32.params_by_dtype == {"float32": n_w + 8 + 8 + 12}
    assert i8.params_by_dtype == {"int32": 8 + 8 + 12, "int8": n_w} and i8.params == f32.params
    assert f16.params_by_dtype == {"float16": n_w + 8 + 8 + 12}
    # plain chain bound: the widest conv's input + output. float32: 8+8 channels ×4 B (or the
    # 12-channel tail + its shuffle); int8 between the convs: 1 B per element
    px = 30 * 40
    assert f32.bound_bytes == max(3 * px * 4 + 8 * px * 4, 16 * px * 4, 8 * px * 4 + 12 * px * 4,
                                  12 * px * 4 * 2)
    # int8: the shuffle moves 8-bit values, then the float32 output is dequantised from them
    assert i8.activation_dtypes == {"float32": 12 * px * 4, "uint8": 12 * px}
    assert i8.bound_bytes == 12 * px * 5 < f32.bound_bytes
    runtime = fused_view(with_input_shape(onnx.load(str(q)), shape))
    kinds = [n.op_type for n in runtime.graph.node]
    assert kinds.count("Conv") == 3 and kinds.count("DequantizeLinear") < 8  # activation DQs folded away


def test_bench_reads_quantised_graphs_and_runs_bf16_pytorch(tmp_path):
    from sr_compress.checkpoint import save_checkpoint
    from sr_compress.deploy.bench import bench_models
    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.deploy.report import table_rows

    model = _plain()
    f32 = tmp_path / "m.onnx"
    export_onnx(model, f32, validate=False)
    q, _ = quantize(f32, tmp_path / "m_int8.onnx", max_drop=100, **FAST)  # params: alignment zeros excluded
    res = bench_models([f32, q], size=(64, 48), warmup=0, runs=1, memory=False, peak=False, tune_malloc=False)
    a, b = res.models
    assert (a.precision, b.precision) == ("float32", "int8")
    assert b.params == a.params and set(b.params_by_dtype) == {"int8", "int32"}
    assert b.bound_bytes < a.bound_bytes
    _, rows = table_rows(res)
    assert rows[1][4].endswith("(int8)") and "int8" in rows[1][1]
    pt = tmp_path / "m.pt"
    save_checkpoint(model, pt)
    res = bench_models([pt], size=(64, 48), warmup=0, runs=1, memory=False, peak=False, precision="bf16")
    assert res.models[0].precision == "bf16" and res.models[0].latency.median_s > 0
    with pytest.raises(ConfigError, match="precision"):
        bench_models([pt], size=(64, 48), precision="int4")


def test_pipeline_report_takes_int8_graphs_beside_checkpoints(tmp_path):
    from sr_compress.deploy.summary import pipeline_report

    model = _plain()
    q, rep = quantize(model, tmp_path / "m_int8.onnx", max_drop=100, rewrite=False, **FAST)
    out = pipeline_report({"m": model, "m_int8": q}, tmp_path / "report", data="default")
    float_row, int8_row = out.rows
    assert int8_row.arch == "plain int8" and int8_row.params == float_row.params
    assert abs(int8_row.psnr_y - float_row.psnr_y) < 2.0  # whole validation photos: near the float model
    assert "m_int8" in (tmp_path / "report" / "report.md").read_text()
