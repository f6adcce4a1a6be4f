"""Fuzz: hostile ONNX files (wrong rank, several or no inputs, integer inputs, huge static shapes, huge declared
weights, garbage bytes). ``check_sr_onnx`` and an onnxruntime session through ``ort_session`` either accept
the file or refuse it with one InputError line; ``srcompress info`` exits 0 or 2 with one stderr line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from _fuzz_budget import budget, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from sr_compress.errors import SrCompressError

ELEM = [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64, TensorProto.DOUBLE, TensorProto.UINT8,
        TensorProto.STRING]
DIM = st.one_of(st.integers(0, 8), st.sampled_from([1, 3, 100_000, 2**31, 2**40]), st.sampled_from(["N", "H", "W"]))


@st.composite
def hostile_onnx(draw) -> tuple[str, bytes]:
    if draw(st.integers(0, 9)) == 0:
        raw = draw(st.binary(max_size=64))
        return f"bytes {raw[:16]!r}", raw
    if draw(st.booleans()):  # near-valid: one 4-D float image in and out, hostile in one detail at most
        dims = [draw(DIM), draw(st.sampled_from([1, 3, "C"])), draw(DIM), draw(DIM)]
        out_dims = draw(st.one_of(st.just(dims), st.lists(DIM, min_size=4, max_size=4)))
        ins = [helper.make_tensor_value_info("x0", TensorProto.FLOAT, dims)]
        outs = [helper.make_tensor_value_info("y0", TensorProto.FLOAT, out_dims)]
    else:
        n_in, n_out = draw(st.integers(0, 3)), draw(st.integers(0, 2))
        ins = [helper.make_tensor_value_info(f"x{i}", draw(st.sampled_from(ELEM)),
                                             draw(st.lists(DIM, max_size=6))) for i in range(n_in)]
        outs = [helper.make_tensor_value_info(f"y{i}", draw(st.sampled_from(ELEM)),
                                              draw(st.lists(DIM, max_size=6))) for i in range(n_out)]
    nodes = []
    if ins and outs:
        op = draw(st.sampled_from(["Identity", "Relu", "Neg", "Flatten", "DepthToSpace"]))
        attrs = {"blocksize": draw(st.sampled_from([0, 1, 2, 3]))} if op == "DepthToSpace" else {}
        nodes = [helper.make_node(op, [ins[0].name], [outs[0].name], **attrs)]
    inits = []
    if draw(st.booleans()):
        inits = [TensorProto(name="w", data_type=TensorProto.FLOAT,
                             dims=draw(st.lists(st.sampled_from([1, 3, 2**20, 2**31]), min_size=1, max_size=3)))]
    model = helper.make_model(helper.make_graph(nodes, "g", ins, outs, initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    meta = draw(st.dictionaries(st.sampled_from(["scale", "channels", "hparams", "provenance", "pre_upsample",
                                                 "receptive_radius", "act_bytes_per_px", "arch"]),
                                st.one_of(st.sampled_from(["nan", "-1", "0", "2", "3", "1e309", "99999999999",
                                                           "[" * 5000 + "]" * 5000, "{}", "[]", "null", "{",
                                                           '{"global_residual": true}', "true", "x" * 300]),
                                          st.text(max_size=8)), max_size=4))
    helper.set_model_props(model, meta)
    label = (f"in {[(i.type.tensor_type.elem_type, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]) for i in ins]} "  # noqa: E501
             f"out {len(outs)} nodes {[n.op_type for n in nodes]} inits {[list(t.dims) for t in inits]} "
             f"meta { {k: v[:12] for k, v in meta.items()} }")
    return label, model.SerializeToString()


@fuzz_settings(max_examples=300)
@given(case=hostile_onnx())
def test_fuzz_hostile_onnx_files(case, invoke):
    from sr_compress.deploy.bench import inspect_model
    from sr_compress.deploy.onnx import check_sr_onnx, ort_session

    label, raw = case
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.onnx"
        p.write_bytes(raw)
        with budget("onnx", label):
            for step in (check_sr_onnx, ort_session, inspect_model):
                try:
                    step(p)
                except SrCompressError as e:
                    assert "\n" not in str(e), label
            code, _, err = invoke("info", p)
        assert code in (0, 2), f"{label}: exit {code}: {err}"
        if code:
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, f"{label}: {err}"
        assert p.read_bytes() == raw
