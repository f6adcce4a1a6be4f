"""Benchmark library and CLI: memory probes, interleaving, model inspection, end-to-end runs, tiny models."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch
from helpers.cli import one_error_line

from sr_compress.checkpoint import save_checkpoint
from sr_compress.deploy import bench as B
from sr_compress.deploy.bound import graph_cost
from sr_compress.deploy.memory import measure_rise, run_probe
from sr_compress.deploy.onnx import export_onnx, to_onnx
from sr_compress.deploy.runners import Runner
from sr_compress.errors import ConfigError, DataError, InputError, VerificationError
from sr_compress.models import build_model, plain_layers

NO_CUDA = "needs a CUDA device; none on this machine or in CI"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """plain (×2, 3 convs of 8) and EDSR (×2, 2 blocks of 8) as ONNX, the plain one also as a checkpoint."""
    d = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    plain = build_model("plain", scale=2, layers=plain_layers(3, 8, 2))
    edsr = build_model("edsr", scale=2, n_feats=8, n_blocks=2)
    export_onnx(plain, d / "plain_tiny.onnx", validate=False)
    export_onnx(edsr, d / "edsr_tiny.onnx", validate=False)
    save_checkpoint(plain, d / "plain_tiny.pt")
    return d


# -- memory probes -------------------------------------------------------------------------------------------
def test_in_process_probe_sees_a_200_mb_array():
    rise, _ = measure_rise(lambda: np.ones(200_000_000, dtype=np.uint8))
    assert rise / 1e6 == pytest.approx(200, rel=0.10)


def test_probe_process_reports_200_mb_first_and_steady_and_nothing_retained():
    r = run_probe(["--alloc-mb", 200, "--runs", 3])
    assert r["first_bytes"] / 1e6 == pytest.approx(200, rel=0.10)
    assert r["steady_bytes"] / 1e6 == pytest.approx(200, rel=0.10)
    assert len(r["runs"]) == 3
    assert abs(r["retained_bytes"]) < 10e6  # freed: handed back to the OS


def test_probe_of_a_tiny_onnx_model_returns_positive_finite_numbers(models):
    r = run_probe([models / "plain_tiny.onnx", "--shape", "1,3,32,48", "--preset", "arena"])
    for key in ("first_bytes", "steady_bytes", "baseline_bytes", "footprint_bytes"):
        assert math.isfinite(r[key]) and r[key] > 0, key
    assert math.isfinite(r["retained_bytes"])
    assert "VmHWM" in r["method"] and r["footprint_bytes"] >= r["first_bytes"] > 0


def test_a_failing_probe_is_one_clear_error(tmp_path):
    with pytest.raises(VerificationError, match="model not found"):
        run_probe([tmp_path / "missing.onnx", "--shape", "1,3,8,8"])


# -- timing --------------------------------------------------------------------------------------------------
def test_interleaved_order_alternates_models():
    assert B.interleaved_order(2, 3) == [0, 1, 0, 1, 0, 1]
    assert B.interleaved_order(3, 1) == [0, 1, 2]
    assert B.interleaved_order(2, 0) == []


def test_time_interleaved_warms_up_then_times_a_b_a_b():
    calls = []
    runners = [Runner("onnx", "x", {}, lambda k=k: calls.append(k)) for k in "AB"]
    times = B.time_interleaved(runners, warmup=1, runs=3)
    assert "".join(calls) == "AB" + "ABABAB"
    assert [len(t) for t in times] == [3, 3] and all(v >= 0 for t in times for v in t)


def test_summarize_gives_median_p90_min():
    lat = B.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (lat.median_s, lat.min_s) == (3.0, 1.0)
    assert lat.p90_s == pytest.approx(4.6)
    assert lat.runs == [5.0, 1.0, 3.0, 2.0, 4.0]


def test_matmul_peak_is_a_positive_rate():
    g = B.matmul_peak_gflops(n=128, repeats=2, threads=1)
    assert math.isfinite(g) and g > 0


# -- what a model is -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, pre, channels, size, expected", [
    (4, False, 3, (1920, 1080), [1, 3, 270, 480]),
    (3, False, 3, (1920, 1080), [1, 3, 360, 640]),
    (2, True, 1, (64, 48), [1, 1, 48, 64]),
    (4, False, 3, (66, 50), [1, 3, 12, 16]),  # not a multiple: floored
])
def test_input_shape_is_output_size_over_scale(tmp_path, scale, pre, channels, size, expected):
    spec = B.ModelSpec(tmp_path / "m.onnx", "onnx", "x", scale, channels, pre)
    assert B.input_shape(spec, size) == expected


def test_input_smaller_than_the_scale_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="smaller than the scale"):
        B.input_shape(B.ModelSpec(tmp_path / "m.onnx", "onnx", "x", 4, 3, False), (3, 100))


def test_inspect_reads_metadata_checkpoints_and_bare_graphs(models, tmp_path):
    spec = B.inspect_model(models / "edsr_tiny.onnx")
    assert (spec.kind, spec.arch, spec.scale, spec.channels) == ("onnx", "edsr", 2, 3)
    assert spec.pre_upsample is False
    spec = B.inspect_model(models / "plain_tiny.pt")
    assert (spec.kind, spec.arch, spec.scale) == ("pt", "plain", 2)
    bare = tmp_path / "bare.onnx"  # no metadata: the scale comes from the shapes
    onnx.save(to_onnx(build_model("plain", scale=3, layers=plain_layers(1, 4, 3))), bare)
    assert B.inspect_model(bare).scale == 3
    with pytest.raises(ConfigError, match="×3 by its shapes"):
        B.inspect_model(bare, scale=2)
    with pytest.raises(ConfigError, match="×2 model"):
        B.inspect_model(models / "plain_tiny.pt", scale=4)


def test_bad_model_files_are_input_errors(tmp_path):
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(InputError, match="unknown model file type"):
        B.inspect_model(tmp_path / "m.txt")
    with pytest.raises(DataError, match="not found"):
        B.inspect_model(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(InputError, match="not a readable ONNX"):
        B.inspect_model(tmp_path / "junk.onnx")


# -- the benchmark -------------------------------------------------------------------------------------------
def test_bench_models_end_to_end(models):
    paths = [models / "plain_tiny.onnx", models / "edsr_tiny.onnx", models / "plain_tiny.pt"]
    r = B.bench_models(paths, size=(64, 48), warmup=1, runs=3, rounds=1, threads=1, peak=False)
    assert [m.name for m in r.models] == ["plain_tiny.onnx", "edsr_tiny", "plain_tiny.pt"]  # stems collide
    plain, edsr, pt = r.models
    assert (plain.kind, pt.kind, plain.provider) == ("onnx", "pt", "CPUExecutionProvider")
    assert plain.options["enable_cpu_mem_arena"] is False and plain.options["graph_optimization_level"]
    assert pt.options == {"channels_last": True, "inference_mode": True, "precision": "float32"}
    assert plain.input_shape == [1, 3, 24, 32] and plain.output_shape == [1, 3, 48, 64]
    assert plain.flops == graph_cost(paths[0], [1, 3, 24, 32]).flops == pt.flops
    assert plain.bound_bytes == pt.bound_bytes and edsr.bound_bytes > plain.bound_bytes
    assert plain.ratio_vs_first == 1.0 and edsr.ratio_vs_first > 0
    for m in r.models:
        assert len(m.latency.runs) == 3 and 0 < m.latency.min_s <= m.latency.median_s <= m.latency.p90_s
        assert m.memory.first_bytes > 0 and m.memory.rounds == 1
        assert m.first_ratio == pytest.approx(m.memory.first_bytes / m.bound_bytes)
        assert m.gflops == pytest.approx(m.flops / m.latency.median_s / 1e9) and m.pct_peak is None
    assert r.settings.size == [64, 48] and r.settings.threads == 1 and r.machine.cores >= 1
    assert r.settings.timing_process == "mallopt(M_MMAP_THRESHOLD=1048576)"  # the lowmem preset's
    data = json.loads(json.dumps(r.to_dict()))
    assert B.BenchResult.from_dict(data) == r


def test_one_entry_per_onnx_model_and_preset(models):
    paths = [models / "plain_tiny.onnx", models / "plain_tiny.pt"]
    r = B.bench_models(paths, size=(32, 32), warmup=0, runs=1, memory=False, peak=False,
                       presets=("lowmem", "arena"), channels_last=False, tune_malloc=False)
    names = ["plain_tiny.onnx [lowmem]", "plain_tiny.onnx [arena]", "plain_tiny.pt"]
    assert [m.name for m in r.models] == names
    assert [m.options.get("enable_cpu_mem_arena") for m in r.models] == [False, True, None]
    assert r.models[2].options["channels_last"] is False
    assert all(m.memory is None and m.first_ratio is None for m in r.models)
    assert r.settings.timing_process == "default malloc" and r.settings.rounds == 0


@pytest.mark.parametrize("kw, match", [
    ({"precision": "bfloat16"}, "unknown precision"),
    ({"presets": ("turbo",)}, "unknown onnxruntime preset"),
    ({"runs": 0}, "runs ≥ 1"),
    ({"device": "tpu"}, "unknown device"),
])
def test_bad_settings_are_config_errors(models, kw, match):
    with pytest.raises(ConfigError, match=match):
        B.bench_models([models / "plain_tiny.onnx"], size=(32, 32), memory=False, peak=False, **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_device_is_a_clear_error(models):
    with pytest.raises(InputError, match="no CUDA device"):
        B.bench_models([models / "plain_tiny.onnx"], device="cuda", size=(32, 32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cuda_bench_of_a_checkpoint(models):
    r = B.bench_models([models / "plain_tiny.pt"], device="cuda", size=(64, 48), runs=2, peak=True)
    m = r.models[0]
    assert m.provider == "PyTorch cuda" and m.memory.first_bytes > 0 and r.machine.gpu
    assert "max_memory_allocated" in m.memory.method


# -- CLI -----------------------------------------------------------------------------------------------------
def test_cli_table_and_json(invoke, models):
    args = ("bench", models / "plain_tiny.onnx", "--size", "32x32", "--runs", "1", "--no-memory")
    code, out, err = invoke(*args, "--threads", "1")
    assert code == 0, err
    assert "plain_tiny" in out and "bound MB" in out and "ORT_ENABLE_ALL" in out and "32×32" in out
    code, out, err = invoke(*args, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["models"][0]["input_shape"] == [1, 3, 16, 16] and data["settings"]["size"] == [32, 32]


@pytest.mark.parametrize("args, message", [
    (["--size", "big"], "size must look like 1920x1080"),
    (["--size", "0x10"], "size must be positive"),
    (["--ort-preset", "lowmem", "--psnr", "nonsense"], "--psnr wants NAME=DB"),
])
def test_cli_bad_options_are_one_line_exit_2(invoke, models, args, message):
    code, _, err = invoke("bench", models / "plain_tiny.onnx", *args)
    assert code == 2 and message in one_error_line(err)


def test_cli_bad_files_are_one_line_exit_2(invoke, models, tmp_path):
    (tmp_path / "model.h5").write_text("x")
    for path, message in ((tmp_path / "missing.onnx", "model not found"),
                          (tmp_path / "model.h5", "unknown model file type")):
        code, _, err = invoke("bench", path, "--no-memory")
        assert code == 2 and message in one_error_line(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_cuda_without_cuda_is_exit_2(invoke, models):
    code, _, err = invoke("bench", models / "plain_tiny.onnx", "--device", "cuda")
    assert code == 2 and "no CUDA device" in one_error_line(err)
