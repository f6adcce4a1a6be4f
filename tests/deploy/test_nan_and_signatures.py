"""NaN is a failure, never a zero: export, plainify, winning init, budgets, the regression gate; ONNX files
are checked for an image-to-image signature before a session is made; sizes and memory caps in range;
upscale output names planned before the first image."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from sr_compress.deploy.bench import BenchResult, Latency, Machine, Memory, ModelBench, Settings
from sr_compress.errors import ConfigError, InputError, OutputExistsError, VerificationError
from sr_compress.models import build_model, plain_layers, tiny_hparams

NAN = float("nan")


def _nan_model(arch: str = "plain"):
    torch.manual_seed(0)
    m = build_model("plain", scale=2, layers=plain_layers(2, 8, 2)) if arch == "plain" else \
        build_model(arch, **tiny_hparams(arch))
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(NAN)
    return m


# -- export --------------------------------------------------------------------------------------------------
def test_export_of_an_all_nan_model_fails_and_writes_nothing(tmp_path):
    from sr_compress.deploy.onnx import export_onnx

    out = tmp_path / "nan.onnx"
    with pytest.raises(VerificationError, match="differs from PyTorch by nan"):
        export_onnx(_nan_model(), out, simplify=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tol", [NAN, math.inf, -1.0])
def test_export_tolerance_must_be_finite_and_non_negative(tmp_path, tol):
    from sr_compress.deploy.onnx import export_onnx

    with pytest.raises(ConfigError, match="tolerance"):
        export_onnx(build_model("plain", scale=2, layers=plain_layers(2, 8, 2)), tmp_path / "x.onnx",
                    tolerance=tol)


def test_tolerance_check_sees_nan_in_any_position():
    from sr_compress.deploy.onnx import _check_tolerance

    for errors in ([NAN, 0.0], [0.0, NAN], [None, NAN], [math.inf, None]):
        with pytest.raises(VerificationError):
            _check_tolerance(errors, 1.0)
    _check_tolerance([None, None], 1e-3)  # validation off: nothing measured, nothing failed
    _check_tolerance([1e-4, 2e-4], 1e-3)


# -- plainify / winning init -----------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [NAN, math.inf, 0.0, -5.0])
def test_plainify_shift_c_must_be_finite_positive(c):
    from sr_compress.compress.plainify.exact import plainify_exact

    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="shift C"):
        plainify_exact(build_model("edsr", **tiny_hparams("edsr")), scheme="shift", shift_c=c)


def test_plainify_of_a_nan_teacher_is_not_reported_exact():
    from sr_compress.compress.plainify.exact import plainify_exact

    for scheme in ("pair", "shift"):
        with pytest.raises(VerificationError):
            plainify_exact(_nan_model("edsr"), scheme=scheme)


def test_plainify_shift_huge_c_is_not_exact_in_float32():
    from sr_compress.compress.plainify.exact import plainify_exact

    torch.manual_seed(0)
    with pytest.raises(VerificationError):
        plainify_exact(build_model("edsr", **tiny_hparams("edsr")), scheme="shift", shift_c=1e300)


@pytest.mark.parametrize("coef", [NAN, math.inf, 1e309, -1.0])
def test_winning_init_shift_coef_refused_before_any_work(coef):
    from sr_compress.compress.plainify.winning_init import bridges_for, winning_init

    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="shift_coef"):
        winning_init(build_model("edsr", **tiny_hparams("edsr")), width=4, shift_coef=coef)
    with pytest.raises(ConfigError, match="shift_coef"):
        bridges_for([], [], coef)


@pytest.mark.parametrize("change", [{"res_scale": NAN}, {"img_range": 0.0}, {"img_range": -1.0},
                                    {"img_range": NAN}, {"rgb_mean": [NAN, 0.0, 0.0]}, {"res_scale": 1e309}])
def test_model_hparams_never_build_a_nan_model(change):
    with pytest.raises(ConfigError):
        build_model("edsr", **{**tiny_hparams("edsr"), **change})


# -- bench budgets and the regression gate ---------------------------------------------------------------------
def _model(name="plain_tiny", median=0.25, steady=52.1e6) -> ModelBench:
    mem = Memory(int(45e6), int(steady), int(1e6), int(45e6), int(steady), 2, True, "VmHWM rise", int(57e6))
    lat = Latency(median, median * 1.2, median * 0.9, [median] * 3)
    return ModelBench(
        name=name, path=f"/models/{name}.onnx", kind="onnx", arch="plain", device="cpu", threads=2,
        provider="CPUExecutionProvider", options={}, scale=2, input_shape=[1, 3, 90, 160],
        output_shape=[1, 3, 180, 320], flops=int(12.5e9), params=123456, weights_bytes=493824,
        bound_bytes=int(40e6), peak_node="Relu r", latency=lat, memory=mem, first_ratio=1.1, steady_ratio=1.3,
        gflops=50.0, pct_peak=12.0, ratio_vs_first=1.0, memory_vs_first=1.0)


def _result(*models: ModelBench) -> BenchResult:
    machine = Machine("Test CPU", 2, "", "2", "1", "3.11", "Linux", "2026-01-01T00:00:00+00:00", 410.0)
    settings = Settings("cpu", [320, 180], 2, 2, 3, 2, "float32", "ORT_ENABLE_ALL", ["lowmem"], True, "default")
    return BenchResult(list(models), machine, settings, "srcompress bench x.onnx")


def test_nan_regression_allowance_is_refused():
    from sr_compress.deploy.report import compare_to_baseline

    for bad in (NAN, math.inf):
        with pytest.raises(ConfigError, match="latency_ms"):
            compare_to_baseline(_result(_model()), _result(_model()), {"latency_ms": bad})


def test_nan_measurement_is_a_regression_not_a_pass():
    from sr_compress.deploy.report import compare_to_baseline

    cmp = compare_to_baseline(_result(_model(median=NAN)), _result(_model()), {"latency_ms": 1000.0})
    assert [d.metric for d in cmp.regressions] == ["latency_ms"]
    cmp = compare_to_baseline(_result(_model()), _result(_model(median=NAN)), {"latency_ms": 1000.0})
    assert [d.metric for d in cmp.regressions] == ["latency_ms"]  # a crafted NaN baseline cannot pass either
    assert compare_to_baseline(_result(_model()), _result(_model())).regressions == []


@pytest.mark.parametrize("line", ["peak_mb = nan", "latency_ms = inf", "bound_ratio = -1.0", "peak_mb = 0"])
def test_non_finite_budgets_are_refused(tmp_path, line):
    from sr_compress.deploy.report import load_budgets

    p = tmp_path / "b.toml"
    p.write_text(f"[models.plain_tiny]\n{line}\n")
    with pytest.raises(ConfigError):
        load_budgets(p)


def test_nan_measurement_violates_every_budget(tmp_path):
    from sr_compress.deploy.report import check_budgets

    p = tmp_path / "b.toml"
    p.write_text("[models.plain_tiny]\nlatency_ms = 1000\npeak_mb = 1000\n")
    m = _model(median=NAN)
    m = replace(m, memory=replace(m.memory, first_bytes=-1, steady_bytes=-1))
    m.memory.steady_bytes = NAN  # type: ignore[assignment]
    metrics = sorted(v.metric for v in check_budgets(_result(m), p))
    assert metrics == ["latency_ms", "peak_mb"]


def test_typed_config_refuses_nan_and_inf():
    from sr_compress.train.trainer import TrainConfig

    for key in ("lr", "grad_clip"):
        for bad in (NAN, math.inf):
            with pytest.raises(ConfigError, match="finite"):
                TrainConfig.from_dict({key: bad})


# -- ONNX signatures ---------------------------------------------------------------------------------------
def _graph(inputs, outputs, nodes=None, inits=()):
    nodes = nodes or [helper.make_node("Identity", [inputs[0].name], [outputs[0].name])]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


HOSTILE_ONNX = {
    "rank3": _graph([_vi("x", [1, 3, 8])], [_vi("y", [1, 3, 8])]),
    "two inputs": _graph([_vi("x", [1, 3, 8, 8]), _vi("z", [1, 3, 8, 8])], [_vi("y", [1, 3, 8, 8])],
                         [helper.make_node("Add", ["x", "z"], ["y"])]),
    "int input": _graph([_vi("x", [1, 3, 8, 8], TensorProto.INT64)], [_vi("y", [1, 3, 8, 8], TensorProto.INT64)]),
    "5 channels": _graph([_vi("x", [1, 5, 8, 8])], [_vi("y", [1, 5, 8, 8])]),
    "huge shape": _graph([_vi("x", [1, 3, 100000, 100000])], [_vi("y", [1, 3, 100000, 100000])]),
    "huge area": _graph([_vi("x", [64, 3, 60000, 60000])], [_vi("y", [64, 3, 60000, 60000])]),
    "rank2 output": _graph([_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 192])],
                           [helper.make_node("Flatten", ["x"], ["y"])]),
    "huge weights": _graph([_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 3, 8, 8])],
                           inits=[TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 10])]),
    "no nodes": helper.make_model(helper.make_graph([], "g", [], [])),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_ONNX))
def test_non_sr_onnx_graphs_are_refused_from_metadata(tmp_path, name):
    from sr_compress.deploy.onnx import check_sr_onnx

    p = tmp_path / "m.onnx"
    p.write_bytes(HOSTILE_ONNX[name].SerializeToString())
    with pytest.raises(InputError) as info:
        check_sr_onnx(p)
    assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_empty_and_garbage_onnx_files_are_one_line(tmp_path, invoke):
    from sr_compress.deploy.onnx import check_sr_onnx

    empty, junk = tmp_path / "e.onnx", tmp_path / "j.onnx"
    empty.write_bytes(b"")
    junk.write_bytes(b"\x08\x07garbage" * 10)
    for p in (empty, junk):
        with pytest.raises(InputError, match="ONNX model"):
            check_sr_onnx(p)
        for args in (("info", p), ("bench", p, "--runs", "1", "--warmup", "0", "--no-memory")):
            code, _, err = invoke(*args)
            assert code == 2, err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "IndexError" not in err


def test_a_real_export_passes_the_signature_check(tmp_path):
    from sr_compress.deploy.onnx import check_sr_onnx, export_onnx

    torch.manual_seed(0)
    p = tmp_path / "ok.onnx"
    export_onnx(build_model("plain", scale=2, layers=plain_layers(2, 8, 2)), p, validate=False)
    sig = check_sr_onnx(p)
    assert sig.channels == 3 and len(sig.input_dims) == 4 and len(sig.output_dims) == 4
    assert isinstance(onnx.load(str(p)), onnx.ModelProto)


# -- tiling: memory caps and sizes --------------------------------------------------------------------------
@pytest.mark.parametrize("cap", [math.inf, NAN, 0.0, -1.0])
def test_memory_cap_must_be_finite_positive(cap):
    from sr_compress.deploy.tiling import tile_for_memory, tiled_network

    m = build_model("plain", scale=2, layers=plain_layers(2, 8, 2))
    with pytest.raises(ConfigError, match="memory cap"):
        tile_for_memory(m, cap)
    with pytest.raises(ConfigError, match="memory cap"):
        tiled_network(m, max_bytes=cap)


def test_huge_memory_cap_is_bounded_not_overflowing():
    from sr_compress.deploy.tiling import MAX_TILE, tile_for_memory

    m = build_model("plain", scale=2, layers=plain_layers(2, 8, 2))
    assert tile_for_memory(m, 1e300) <= MAX_TILE


def test_hostile_tile_profile_metadata_is_refused():
    from sr_compress.deploy.tiling import TileProfile, check_profile

    for prof in (TileProfile(-1, 10.0, 2), TileProfile(2, NAN, 2), TileProfile(2, 0.0, 2),
                 TileProfile(10**9, 10.0, 2), TileProfile(2, 10.0, 0)):
        with pytest.raises(ConfigError):
            check_profile(prof)


def test_cli_bench_huge_size_refused_before_allocating(invoke, tmp_path):
    import resource

    from sr_compress.checkpoint import save_checkpoint

    p = save_checkpoint(build_model("plain", scale=2, layers=plain_layers(2, 8, 2)), tmp_path / "m.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, _, err = invoke("bench", p, "--size", "100000x100000", "--no-memory")
    assert code == 2 and "too large" in err and len(err.strip().splitlines()) == 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


# -- upscale output names ---------------------------------------------------------------------------------------
def _imgs(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for n in names:
        p = tmp_path / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"img")
        out.append(p)
    return out


@pytest.mark.parametrize("force", [False, True])
def test_upscale_name_collisions_refused_before_the_first_image(tmp_path, force):
    from sr_compress.deploy.outputs import plan_upscale_outputs

    a, b = _imgs(tmp_path, "A/same.png", "B/same.png")
    with pytest.raises(OutputExistsError, match="would both be written to .*same_x2.png"):
        plan_upscale_outputs([a, b], tmp_path / "out", 2, force=force)
    assert not (tmp_path / "out").exists()
    c, d = _imgs(tmp_path, "c.png", "c.jpg")  # different files, one stem
    with pytest.raises(OutputExistsError, match="would both"):
        plan_upscale_outputs([c, d], tmp_path / "out", 2, force=force)


def test_upscale_png_output_with_several_images_is_refused(tmp_path):
    from sr_compress.deploy.outputs import plan_upscale_outputs

    a, b = _imgs(tmp_path, "a.png", "b.png")
    with pytest.raises(ConfigError, match="names one file, but 2 images"):
        plan_upscale_outputs([a, b], tmp_path / "u.png", 2)
    assert plan_upscale_outputs([a], tmp_path / "u.png", 2) == [(a, tmp_path / "u.png")]
    plan = plan_upscale_outputs([a, b], tmp_path / "o", 3)
    assert [t.name for _, t in plan] == ["a_x3.png", "b_x3.png"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="is a file"):
        plan_upscale_outputs([a, b], tmp_path / "file", 2)


def test_upscale_plan_checks_every_target_before_writing(tmp_path):
    from sr_compress.deploy.outputs import plan_upscale_outputs

    a, b = _imgs(tmp_path, "a.png", "b.png")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "b_x2.png").write_text("old")
    with pytest.raises(OutputExistsError, match="b_x2.png exists"):
        plan_upscale_outputs([a, b], tmp_path / "o", 2)
    assert not (tmp_path / "o" / "a_x2.png").exists()
    with pytest.raises(OutputExistsError, match="input"):  # the output folder is where an input lives
        plan_upscale_outputs([a], tmp_path / "a.png", 2, force=True)
    model = tmp_path / "m.png"
    model.write_text("model")
    with pytest.raises(OutputExistsError, match="input"):
        plan_upscale_outputs([a], model, 2, inputs=[model], force=True)


def test_training_batch_size_is_bounded_before_allocating():
    from sr_compress.train.trainer import MAX_BATCH_PIXELS, TrainConfig

    with pytest.raises(ConfigError, match="too large"):
        TrainConfig.from_dict({"batch_size": 10**9, "patch_size": 96})
    assert TrainConfig.from_dict({"batch_size": 64, "patch_size": 192}).batch_size == 64
    assert MAX_BATCH_PIXELS == 1 << 28
