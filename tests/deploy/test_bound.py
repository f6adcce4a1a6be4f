"""The theoretical activation bound, FLOPs and params from ONNX shapes: hand-computed graphs, then the
reference networks of PERF.md (shape inference only, nothing is executed)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from sr_compress.deploy.bound import activation_bound, graph_cost, with_input_shape
from sr_compress.errors import ConfigError, InputError
from sr_compress.models import build_model, plain_layers

F32 = 4


def _conv(name: str, x: str, c_in: int, c_out: int, inits: list, k: int = 3, group: int = 1):
    w = np.zeros((c_out, c_in // group, k, k), np.float32)
    b = np.zeros(c_out, np.float32)
    inits += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
    return helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], pads=[k // 2] * 4, group=group)


def _model(nodes: list, inits: list, c_in: int, outputs: list[str]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", c_in, "h", "w"])
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "g", [x], outs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_plain_chain_bound_is_the_widest_input_plus_output():
    inits: list = []
    nodes = [_conv("a", "x", 2, 4, inits), helper.make_node("Relu", ["a"], ["r"]),
             _conv("y", "r", 4, 3, inits)]
    cost = graph_cost(_model(nodes, inits, 2, ["y"]), [1, 2, 4, 4])
    px = 16
    # conv a: x + a = 6 ch; relu: a + r = 8 ch (the peak); conv y: r + y = 7 ch
    assert cost.bound_bytes == 8 * px * F32
    assert cost.peak_node.startswith("Relu")
    assert cost.flops == 2 * px * (4 * 2 * 9) + 2 * px * (3 * 4 * 9)
    assert cost.params == (4 * 2 * 9 + 4) + (3 * 4 * 9 + 3)
    assert cost.weights_bytes == cost.params * F32
    assert cost.output_shape == [1, 3, 4, 4]


def test_residual_block_keeps_its_skip_alive():
    inits: list = []
    nodes = [_conv("a", "x", 4, 4, inits), helper.make_node("Relu", ["a"], ["b"]),
             _conv("c", "b", 4, 4, inits), helper.make_node("Add", ["x", "c"], ["y"])]
    t = 4 * 5 * 6 * F32  # one 4-channel 5×6 tensor
    assert graph_cost(_model(nodes, inits, 4, ["y"]), [1, 4, 5, 6]).bound_bytes == 3 * t  # x + two others
    chain = nodes[:3]
    assert graph_cost(_model(chain, inits, 4, ["c"]), [1, 4, 5, 6]).bound_bytes == 2 * t


def test_graph_output_stays_alive_to_the_end_and_batch_scales_linearly():
    inits: list = []
    nodes = [helper.make_node("Relu", ["x"], ["early"]), _conv("a", "early", 3, 8, inits),
             helper.make_node("Relu", ["a"], ["late"])]
    m = _model(nodes, inits, 3, ["early", "late"])
    px = 7 * 9
    # last node: early (kept as an output) + a + late = 3 + 8 + 8 channels
    assert graph_cost(m, [1, 3, 7, 9]).bound_bytes == (3 + 8 + 8) * px * F32
    assert graph_cost(m, [2, 3, 7, 9]).bound_bytes == 2 * (3 + 8 + 8) * px * F32


def test_constants_and_values_computed_from_them_count_as_weights_not_activations():
    mean = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "mean")
    nodes = [helper.make_node("Identity", ["mean"], ["mean2"]),
             helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.float32(2.0))),
             helper.make_node("Sub", ["x", "mean2"], ["s"]), helper.make_node("Mul", ["s", "k"], ["y"])]
    cost = graph_cost(_model(nodes, [mean], 3, ["y"]), [1, 3, 4, 4])
    assert cost.bound_bytes == 2 * 3 * 16 * F32  # x + s, then s + y: the constants add nothing
    assert cost.weights_bytes == 3 * F32 + F32
    assert cost.params == 0 and cost.flops == 0


def test_grouped_conv_gemm_and_transposed_conv_flops():
    inits: list = []
    nodes = [_conv("g", "x", 4, 8, inits, k=3, group=2)]
    assert graph_cost(_model(nodes, inits, 4, ["g"]), [1, 4, 5, 5]).flops == 2 * 8 * 25 * (2 * 9)

    w = numpy_helper.from_array(np.zeros((4, 2, 2, 2), np.float32), "wt")  # [C_in, C_out, k, k]
    up = [helper.make_node("ConvTranspose", ["x", "wt"], ["y"], strides=[2, 2])]
    cost = graph_cost(_model(up, [w], 4, ["y"]), [1, 4, 3, 3])
    assert cost.flops == 2 * (4 * 9) * (2 * 4) and cost.output_shape == [1, 2, 6, 6]

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", 6])
    b = numpy_helper.from_array(np.zeros((6, 5), np.float32), "b")
    g = helper.make_graph([helper.make_node("Gemm", ["a", "b"], ["y"])], "g", [a],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[b])
    gemm = graph_cost(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), [3, 6])
    assert gemm.flops == 2 * 3 * 5 * 6 and gemm.params == 30 and gemm.bound_bytes == (18 + 15) * F32


def test_bad_input_shapes_are_clear_errors():
    inits: list = []
    m = _model([_conv("y", "x", 3, 3, inits)], inits, 3, ["y"])
    with pytest.raises(ConfigError, match="rank 4"):
        graph_cost(m, [1, 3, 8])
    with pytest.raises(InputError, match="not a readable ONNX model"):
        graph_cost("/nonexistent/model.onnx", [1, 3, 8, 8])
    fixed = with_input_shape(m, [1, 3, 8, 8])
    assert m.graph.input[0].type.tensor_type.shape.dim[2].dim_param == "h"  # the original is untouched
    assert activation_bound(fixed)[0] == 2 * 3 * 64 * F32


def _exported(model: torch.nn.Module) -> onnx.ModelProto:
    from sr_compress.deploy.onnx import to_onnx

    return to_onnx(model.eval())


def test_exported_tiny_plain_net_matches_the_layer_by_layer_count():
    torch.manual_seed(0)
    model = build_model("plain", scale=2, layers=plain_layers(2, 8, 2))
    cost = graph_cost(_exported(model), [1, 3, 12, 16])
    px = 12 * 16
    # conv 3→8 (+relu: 8+8), conv 8→8 (+relu: 8+8), conv 8→12 (8+12), DepthToSpace (12 in + 12 out)
    assert cost.bound_bytes == max(3 + 8, 8 + 8, 8 + 12, 12 + 12) * px * F32
    assert cost.flops == 2 * px * 9 * (3 * 8 + 8 * 8 + 8 * 12)
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert cost.output_shape == [1, 3, 24, 32]


@pytest.mark.parametrize("arch, hparams, bound_mb, gflop", [
    ("plain", {"layers": plain_layers(34, 64, 4)}, 66.4, 323),
    ("edsr", {"n_feats": 64, "n_blocks": 16}, 1061.7, 514),
])
def test_reference_networks_reproduce_perf_md(arch, hparams, bound_mb, gflop):
    """PERF.md: ×4, LR 480×270 → 1920×1080. Shapes only, so this is fast."""
    model = build_model(arch, scale=4, **hparams)
    cost = graph_cost(_exported(model), [1, 3, 270, 480])
    assert cost.bound_bytes / 1e6 == pytest.approx(bound_mb, rel=0.005)
    assert cost.flops / 1e9 == pytest.approx(gflop, rel=0.005)
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert cost.output_shape == [1, 3, 1080, 1920]
    if arch == "edsr":
        assert "DepthToSpace" in cost.peak_node  # the upsampler, not the skips
