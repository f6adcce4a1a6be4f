"""The receptive-field analysis behind tiling, against a brute force (perturb one input pixel, see which output
pixels change), for every model family — ASRN's split / concat / channel shuffle included — plus the halo
override for graphs the analysis cannot follow."""

from __future__ import annotations

import copy

import pytest
import torch
from onnx import TensorProto, helper

from sr_compress.deploy import tiling
from sr_compress.deploy.onnx import simplify_graph, to_onnx
from sr_compress.errors import ConfigError
from sr_compress.models import build_model, list_models, model_class, tiny_hparams


def brute_force_halo(model, size: int) -> int:
    """max |X − ⌊Y / s⌋| over input pixels X and output pixels Y that depend on each other (float64).

    ReLUs become leaky ones for the probe: same graph structure, but no unit is dead for the perturbation,
    so every structural dependence shows up as a change."""
    m = copy.deepcopy(model).double().eval()
    for mod in list(m.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(mod, child_name, torch.nn.LeakyReLU(0.5))
    s = 1 if m.pre_upsample else m.scale
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, m.channels, size, size, generator=g, dtype=torch.float64)
    c = size // 2
    with torch.no_grad():
        base = m(x)
        changed = torch.zeros(base.shape[-2:], dtype=torch.bool)
        for delta in (4.0, -4.0):
            x2 = x.clone()
            x2[:, :, c, c] += delta
            changed |= (m(x2) - base).abs().amax(dim=(0, 1)) > 0
    ys, xs = changed.nonzero(as_tuple=True)
    return int(max((c - ys // s).abs().max(), (c - xs // s).abs().max()))


# families with a global context (IMDN's CCA, RFDN / RLFN's ESA) have no finite receptive radius: the tiling
# tests check that they are refused
CASES = [(a, s) for a in list_models() if model_class(a).global_context is None for s in (2, 3, 4)] + [("asrn", 2)]


@pytest.mark.parametrize("arch, scale", CASES)
def test_analysis_equals_the_brute_force_receptive_field(arch, scale):
    torch.manual_seed(0)
    m = build_model(arch, **tiny_hparams(arch, scale)).eval()
    graph = simplify_graph(to_onnx(m))
    derived = tiling.receptive_radius(graph)
    brute = brute_force_halo(m, 2 * derived + 7)
    assert derived == brute, (arch, scale, derived, brute)
    assert tiling.receptive_radius(m) >= brute  # the module walk is an upper bound


def test_asrn_graph_has_the_channel_ops():
    torch.manual_seed(0)
    ops = {n.op_type for n in simplify_graph(to_onnx(build_model("asrn", **tiny_hparams("asrn", 2)))).graph.node}
    assert {"Slice", "Concat", "Reshape", "Transpose", "ConvTranspose"} <= ops


def _graph(nodes, extra_init=()):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 4, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 3, 3], [0.0] * 144)
    g = helper.make_graph(nodes, "g", [x], [y], [w, *extra_init])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_spatial_channel_ops_are_refused_with_a_hint():
    conv = helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    # a concat along the width moves pixels: the analysis refuses it
    cat = helper.make_node("Concat", ["c", "c"], ["output"], axis=3)
    with pytest.raises(ConfigError, match="spatial axis.*give the halo"):
        tiling.receptive_radius(_graph([conv, cat]))
    # along channels it is followed
    cat = helper.make_node("Concat", ["c", "c"], ["output"], axis=1)
    assert tiling.receptive_radius(_graph([conv, cat])) == 1
    # a transpose that swaps H and C, then a conv: refused
    tr = helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 1, 3])
    conv2 = helper.make_node("Conv", ["t", "w"], ["output"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    with pytest.raises(ConfigError, match="spatial axes are .*give the halo"):
        tiling.receptive_radius(_graph([conv, tr, conv2]))
    # an op the analysis does not know
    top = helper.make_node("ReduceMean", ["c"], ["output"], axes=[2])
    with pytest.raises(ConfigError, match="op ReduceMean.*give the halo"):
        tiling.receptive_radius(_graph([conv, top]))
