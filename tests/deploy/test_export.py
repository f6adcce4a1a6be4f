"""ONNX export: validated round trip for every arch, dynamic sizes, DepthToSpace, plain check, determinism,
no file on failure, and the ``export`` command."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from helpers.cli import one_error_line
from helpers.models import tiny_model
from onnx import TensorProto, helper, numpy_helper

from sr_compress.checkpoint import save_checkpoint
from sr_compress.deploy import onnx as ox
from sr_compress.deploy import tiling
from sr_compress.errors import OutputExistsError, VerificationError
from sr_compress.models import list_models

PIXEL_SHUFFLE_ARCHS = ("edsr", "msrresnet", "plain")


def _model(arch: str, scale: int = 2, **extra):
    return tiny_model(arch, scale, **extra).eval()


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("scale", [2, 3])
def test_export_round_trip_every_arch(arch, scale, tmp_path):
    m = _model(arch, scale)
    report = ox.export_onnx(m, tmp_path / "m.onnx")
    assert report.max_err_random < 1e-5 and report.max_err_real < 1e-5
    assert report.tolerance == ox.DEFAULT_TOLERANCE and report.nodes_after <= report.nodes_before
    real_sizes = {tuple(s[2:]) for s in report.validated_shapes[1:]}
    assert len(real_sizes) >= 2 and report.validated_shapes[0][0] == 2  # two H×W, batch 2
    graph = onnx.load(tmp_path / "m.onnx")
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]
    assert (graph.graph.input[0].name, graph.graph.output[0].name) == ("input", "output")
    meta = ox.read_metadata(graph)
    assert (meta["arch"], int(meta["scale"]), int(meta["channels"])) == (arch, scale, m.channels)
    assert json.loads(meta["pre_upsample"]) == m.pre_upsample and json.loads(meta["hparams"]) == m.hparams
    assert int(meta["receptive_radius"]) == report.receptive_radius
    if m.global_context:  # IMDN's CCA, ESA: recorded as not tileable
        assert report.receptive_radius == tiling.NOT_TILEABLE
    else:
        assert report.receptive_radius >= 1
    # one more size the exporter never saw (dynamic H and W), through the file on disk
    x = torch.rand(1, m.channels, max(11, m.min_size), max(14, m.min_size))
    got = ox.run_session(ox.ort_session(tmp_path / "m.onnx"), x.numpy())
    with torch.no_grad():
        assert np.abs(got - m(x).numpy()).max() < 1e-5


@pytest.mark.parametrize("arch", PIXEL_SHUFFLE_ARCHS)
def test_pixel_shuffle_becomes_depth_to_space_crd(arch, tmp_path):
    m = _model(arch, 4)
    report = ox.export_onnx(m, tmp_path / "m.onnx")
    shuffles = sum(isinstance(mod, torch.nn.PixelShuffle) for mod in m.modules())  # ×4: 2 stages or 1
    assert shuffles >= 1 and report.ops_after["DepthToSpace"] == shuffles
    assert "Reshape" not in report.ops_after and "Transpose" not in report.ops_after
    nodes = [n for n in onnx.load(tmp_path / "m.onnx").graph.node if n.op_type == "DepthToSpace"]
    modes = [helper.get_attribute_value(a) for n in nodes for a in n.attribute if a.name == "mode"]
    assert modes == [b"CRD"] * shuffles


def test_plain_check_accepts_plain_and_rejects_skips(tmp_path):
    verdicts = {}
    for arch in ("plain", "edsr", "msrresnet", "vdsr"):
        verdicts[arch] = ox.export_onnx(_model(arch), tmp_path / f"{arch}.onnx")
    assert verdicts["plain"].is_plain, verdicts["plain"].plain_reason
    for arch in ("edsr", "msrresnet"):
        assert not verdicts[arch].is_plain and "skip connection" in verdicts[arch].plain_reason
    vdsr = onnx.load(tmp_path / "vdsr.onnx")
    assert not verdicts["vdsr"].is_plain and "global residual" in verdicts["vdsr"].plain_reason
    assert ox.check_plain(vdsr, {"global_residual"})[0]  # declared: VDSR's x + f(x) is allowed
    assert not ox.check_plain(onnx.load(tmp_path / "edsr.onnx"), {"global_residual"})[0]


def test_plain_check_knows_mean_shift_and_declared_activations(tmp_path):
    layers = [{"out": 8, "act": "prelu"}, {"out": 8, "act": "lrelu"},
              {"out": 12, "act": "identity", "shuffle": 2}]
    m = _model("plain", layers=layers, rgb_mean=[0.45, 0.44, 0.40], img_range=255.0)
    report = ox.export_onnx(m, tmp_path / "m.onnx")
    assert report.is_plain, report.plain_reason
    graph = onnx.load(tmp_path / "m.onnx")
    assert {"Sub", "Div", "Add"} <= set(report.ops_after)  # the mean shift survives at both ends
    ok, reason = ox.check_plain(graph)  # PRelu / LeakyRelu not declared this time
    assert not ok and "PRelu" in reason
    raw = ox.export_onnx(m, tmp_path / "raw.onnx", simplify=False)  # Identity-of-weight and ×255 Mul remain
    assert raw.is_plain and "Identity" in raw.ops_after, raw.plain_reason


def _chain(middle_op: str) -> onnx.ModelProto:
    """input → Conv → <middle_op with a constant> → Conv → output, built by hand."""
    w = numpy_helper.from_array(np.ones((3, 3, 3, 3), np.float32), "w")
    c = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "c")
    nodes = [helper.make_node("Conv", ["input", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node(middle_op, ["a", "c"], ["b"]),
             helper.make_node("Conv", ["b", "w"], ["output"], pads=[1, 1, 1, 1])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, "h", "w"]) for n in ("input", "output")]
    return helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:], [w, c]))


def test_plain_check_rejects_constant_ops_between_convs():
    ok, reason = ox.check_plain(_chain("Mul"))
    assert not ok and "between convolutions" in reason
    assert not ox.check_plain(_chain("Pow"))[0]


def test_model_declared_plain_but_not_fails_and_writes_nothing(tmp_path):
    m = _model("edsr")
    m.plain = True  # claims plain, has skips
    with pytest.raises(VerificationError, match="declares itself plain"):
        ox.export_onnx(m, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_is_byte_for_byte_deterministic(tmp_path):
    m = _model("edsr")
    ox.export_onnx(m, tmp_path / "a.onnx")
    ox.export_onnx(m, tmp_path / "b.onnx")
    a, b = (tmp_path / "a.onnx").read_bytes(), (tmp_path / "b.onnx").read_bytes()
    assert a == b
    graph = onnx.load_from_string(a)
    assert (graph.producer_name, graph.doc_string) == ("srcompress", "")
    assert not any(p.key.startswith("onnxsim") for p in graph.metadata_props)


def test_mismatch_raises_and_leaves_no_file(tmp_path, monkeypatch):
    real_run = ox.run_session
    monkeypatch.setattr(ox, "run_session", lambda s, x: real_run(s, x) + 1e-3)
    with pytest.raises(VerificationError, match="differs from PyTorch by 0.001"):
        ox.export_onnx(_model("plain"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []  # no output, no temp file
    report = ox.export_onnx(_model("plain"), tmp_path / "m.onnx", tolerance=2e-3)  # a looser tolerance passes
    assert 9e-4 < report.max_err_random < 1.1e-3


def test_existing_output_needs_force_and_never_an_input(tmp_path):
    m = _model("plain")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        ox.export_onnx(m, out)
    assert out.read_bytes() == b"old"
    ox.export_onnx(m, out, force=True)
    assert onnx.load(out).metadata_props
    with pytest.raises(OutputExistsError, match="input"):
        ox.export_onnx(m, out, force=True, inputs=(out,))


def test_no_simplify_and_custom_real_images(tmp_path):
    m = _model("edsr")
    imgs = [torch.rand(1, 3, 12, 15), torch.rand(1, 3, 17, 9)]
    report = ox.export_onnx(m, tmp_path / "m.onnx", simplify=False, real_images=imgs)
    assert not report.simplified and "Mul" in report.ops_after  # unsimplified: ×255 still its own op
    constants_moved = {op: k for op, k in report.ops_before.items() if op != "Constant"}  # → initializers
    assert report.ops_after == constants_moved
    assert report.validated_shapes[1:] == [[1, 3, 12, 15], [1, 3, 17, 9]]


def test_onnx_info_reads_the_export_back(tmp_path):
    m = _model("plain")
    ox.export_onnx(m, tmp_path / "m.onnx")
    info = ox.onnx_info(tmp_path / "m.onnx", size=(20, 10))
    assert info["arch"] == "plain" and info["hparams"] == m.hparams and info["plain"]
    assert info["params"] == sum(p.numel() for p in m.parameters())
    assert info["macs"] == sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight")) * 200


# -- the command ---------------------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(_model("plain"), path)
    return path


def test_cli_export_default_output_and_json(invoke, checkpoint):
    code, out, err = invoke("export", checkpoint, "--onnx")
    assert code == 0, err
    assert checkpoint.with_suffix(".onnx").is_file()
    assert "DepthToSpace" in out and "plain" in out and "max |ORT - PyTorch|" in out
    code, out, _ = invoke("export", checkpoint, "-o", checkpoint.parent / "j.onnx", "--json", "--no-simplify")
    data = json.loads(out)
    assert code == 0 and data["is_plain"] and not data["simplified"] and data["max_err_real"] < 1e-5


def test_cli_export_check_only_validates_and_writes_nothing(invoke, checkpoint):
    before = set(checkpoint.parent.iterdir())
    code, out, err = invoke("export", checkpoint, "--check-only")
    assert code == 0, err
    assert "checked only, nothing written" in out and "max |ORT - PyTorch|" in out and "plain" in out
    assert set(checkpoint.parent.iterdir()) == before
    code, out, _ = invoke("export", checkpoint, "--check-only", "--json")
    assert code == 0 and json.loads(out)["path"] is None and json.loads(out)["is_plain"]


def test_cli_export_refuses_to_overwrite(invoke, checkpoint):
    assert invoke("export", checkpoint)[0] == 0
    code, _, err = invoke("export", checkpoint)
    assert code == 2 and "exists; use --force" in one_error_line(err)
    assert invoke("export", checkpoint, "--force")[0] == 0
    code, _, err = invoke("export", checkpoint, "-o", checkpoint, "--force")
    assert code == 2 and "input" in err


def test_cli_export_bad_inputs_exit_2(invoke, tmp_path):
    code, _, err = invoke("export", tmp_path / "missing.pt")
    assert code == 2 and err.startswith("error: checkpoint not found")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    code, _, err = invoke("export", tmp_path / "junk.pt")
    assert code == 2 and "not a readable checkpoint" in one_error_line(err)


def test_cli_export_mismatch_exits_1_without_output(invoke, checkpoint, monkeypatch):
    real_run = ox.run_session
    monkeypatch.setattr(ox, "run_session", lambda s, x: real_run(s, x) - 0.5)
    code, _, err = invoke("export", checkpoint)
    assert code == 1 and "differs from PyTorch" in err
    assert not checkpoint.with_suffix(".onnx").exists()
