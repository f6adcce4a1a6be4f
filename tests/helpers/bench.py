"""Bench results with made-up numbers (for report, budget and summary tests that measure nothing)."""

from __future__ import annotations

from sr_compress.deploy.bench import BenchResult, Latency, Machine, Memory, ModelBench, Settings


def _model(name: str = "plain_tiny", first: float = 45e6, steady: float = 52.1e6, median: float = 0.25,
           bound: float = 40e6) -> ModelBench:
    mem = Memory(int(first), int(steady), int(1e6), int(first), int(steady), 2, True, "VmHWM rise",
                 int(steady + 5e6))
    lat = Latency(median, median * 1.2, median * 0.9, [median] * 3)
    return ModelBench(
        name=name, path=f"/models/{name.split(' ')[0]}.onnx", kind="onnx", arch="plain", device="cpu",
        threads=2, provider="CPUExecutionProvider", options={"preset": "lowmem"}, scale=2,
        input_shape=[1, 3, 90, 160], output_shape=[1, 3, 180, 320], flops=int(12.5e9), params=123456,
        weights_bytes=493824, bound_bytes=int(bound), peak_node="Relu r", latency=lat, memory=mem,
        first_ratio=first / bound, steady_ratio=steady / bound, gflops=12.5 / median, pct_peak=12.0,
        ratio_vs_first=1.0, memory_vs_first=1.0)


def _result(*models: ModelBench) -> BenchResult:
    machine = Machine("Test CPU", 2, "", "2.13.0", "1.32.0", "3.11", "Linux", "2026-01-01T00:00:00+00:00",
                      410.0)
    settings = Settings("cpu", [320, 180], 2, 2, 3, 2, "float32", "ORT_ENABLE_ALL", ["lowmem"], True,
                        "default malloc")
    return BenchResult(list(models) or [_model()], machine, settings, "srcompress bench x.onnx")
