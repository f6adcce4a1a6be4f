"""Latency and peak memory of .onnx (onnxruntime) and .pt (PyTorch) models, measured the honest way.

Method (``docs/benchmarks.md``):

* **Latency**: every model is opened in this process, warmed up, then timed one run at a time, interleaved
  A B A B …, so a noisy neighbour hits every model alike; median, p90 and min per model and the median ratio
  against the first model. CUDA runs are timed with CUDA events (PyTorch) or a synchronous session run (ORT).
* **Peak memory**: each measurement in a fresh process (:mod:`sr_compress.deploy.memory`), ``rounds`` times
  in shuffled order; first run, steady state and retained memory; medians over the rounds.
* **Bound, FLOPs, params**: from the ONNX graph's shapes at the benchmark size
  (:mod:`sr_compress.deploy.bound`); a .pt model is exported to a temporary ONNX graph for this.
* **Machine peak**: a dense float32 matmul's GFLOP/s with the same threads; each model's achieved GFLOP/s
  (FLOPs / median latency) as a percentage of it.

Images are float32 NCHW; ``size`` is the output (HR) size W×H and the model input is ``size / scale``
(the full size for pre-upsampling models such as VDSR). Input values are uniform random in [0, 1): latency
and memory of these convolutional networks do not depend on them.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import logging
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..fileio import require_file
from .bound import GraphCost, graph_cost, load_graph, with_input_shape
from .memory import probe_env, run_probe
from .runners import ORT_PRESETS, Runner, check_device, model_kind, open_runner, preset_options

log = logging.getLogger(__name__)



# -- results -------------------------------------------------------------------------------------------------
@dataclass
class Latency:
    """Seconds per inference over the timed runs."""

    median_s: float
    p90_s: float
    min_s: float
    runs: list[float]


@dataclass
class Memory:
    """Peak rise over the post-setup baseline (bytes), medians over ``rounds`` fresh processes."""

    first_bytes: int
    steady_bytes: int
    retained_bytes: int
    first_max_bytes: int  # the largest over the rounds
    steady_max_bytes: int
    rounds: int
    hwm_reset: bool
    method: str
    footprint_bytes: int | None = None  # highest peak over the level before the model was opened


@dataclass
class ModelBench:
    """One model in one configuration: what it costs (graph), how fast, how much memory."""

    name: str
    path: str
    kind: str  # "onnx" | "pt"
    arch: str
    device: str
    threads: int
    provider: str
    options: dict[str, Any]
    scale: int
    input_shape: list[int]
    output_shape: list[int]
    flops: int
    params: int
    weights_bytes: int
    bound_bytes: int
    peak_node: str
    latency: Latency | None = None
    memory: Memory | None = None
    first_ratio: float | None = None  # measured first-run peak / bound
    steady_ratio: float | None = None
    gflops: float | None = None  # achieved: flops / median latency
    pct_peak: float | None = None  # of the measured matmul peak
    ratio_vs_first: float | None = None  # median latency / the first model's
    memory_vs_first: float | None = None  # steady peak / the first model's
    precision: str = "float32"  # of the graph (int8 / fp16 / bf16 ONNX) or PyTorch's compute type
    params_by_dtype: dict[str, int] | None = None  # parameter elements by element type

    @property
    def stem(self) -> str:
        return Path(self.path).stem


@dataclass
class Machine:
    cpu: str
    cores: int
    gpu: str
    torch: str
    onnxruntime: str
    python: str
    platform: str
    date: str
    matmul_gflops: float | None


@dataclass
class Settings:
    device: str
    size: list[int]  # output W, H
    threads: int
    warmup: int
    runs: int
    rounds: int
    precision: str
    optimization: str
    presets: list[str]
    channels_last: bool
    timing_process: str  # what was set in the timing process (malloc threshold)


@dataclass
class BenchResult:
    models: list[ModelBench]
    machine: Machine
    settings: Settings
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """Inverse of :meth:`to_dict` (e.g. a report.json read back)."""
        models = [_model_from_dict(m) for m in data["models"]]
        return cls(models, Machine(**data["machine"]), Settings(**data["settings"]), data.get("command", ""))


def _model_from_dict(data: dict[str, Any]) -> ModelBench:
    d = dict(data)
    d["latency"] = Latency(**d["latency"]) if d.get("latency") else None
    d["memory"] = Memory(**d["memory"]) if d.get("memory") else None
    return ModelBench(**{f.name: d[f.name] for f in fields(ModelBench) if f.name in d})


# -- what a model is -----------------------------------------------------------------------------------------
@dataclass
class ModelSpec:
    path: Path
    kind: str
    arch: str
    scale: int
    channels: int
    pre_upsample: bool


def inspect_model(path: str | os.PathLike, scale: int | None = None) -> ModelSpec:
    """Kind, arch, scale, channels and pre-upsampling of a .onnx or .pt model file."""
    p = require_file(path, "model")
    if model_kind(p) == "onnx":
        return _inspect_onnx(p, scale)
    from ..checkpoint import load_checkpoint

    m = load_checkpoint(p).model
    if scale is not None and scale != m.scale:
        raise ConfigError(f"{p} is a ×{m.scale} model; --scale {scale} does not apply")
    return ModelSpec(p, "pt", m.arch, m.scale, m.channels, bool(m.pre_upsample))


def _inspect_onnx(p: Path, scale: int | None) -> ModelSpec:
    """From the metadata our exporter writes; without it, scale and channels from the graph's shapes."""
    from .onnx import check_sr_onnx, meta_int

    sig = check_sr_onnx(p)
    model = load_graph(p)
    meta = {m.key: m.value for m in model.metadata_props}
    channels = meta_int(meta, "channels", sig.channels or 3, 1, 3, str(p))
    ratio = _shape_ratio(model, channels)
    pre = str(meta.get("pre_upsample", ratio == 1)).lower() in ("1", "true", "yes")
    s = scale or meta_int(meta, "scale", 0, 0, 16, str(p)) or (ratio if ratio > 1 else None)
    if s is None:
        raise ConfigError(f"{p}: no scale in the ONNX metadata and none visible in its shapes; give --scale")
    if s not in (2, 3, 4) or (not pre and ratio != s):
        raise ConfigError(f"{p}: upscales ×{ratio} by its shapes, but scale {s} was given or recorded")
    return ModelSpec(p, "onnx", meta.get("arch", "onnx"), s, channels, pre)


def _shape_ratio(model: Any, channels: int, n: int = 24) -> int:
    out = with_input_shape(model, [1, channels, n, n]).graph.output[0].type.tensor_type.shape.dim
    return out[2].dim_value // n if len(out) == 4 else 0


def input_shape(spec: ModelSpec, size: tuple[int, int]) -> list[int]:
    """NCHW model input for an output ``size`` = (W, H): LR = size // scale (full size if pre-upsampling)."""
    w, h = size
    lw, lh = w // spec.scale, h // spec.scale
    if lw < 1 or lh < 1:
        raise ConfigError(f"size {w}x{h} is smaller than the scale ×{spec.scale}")
    if lw * spec.scale != w or lh * spec.scale != h:
        log.warning("size %dx%d is not a multiple of ×%d: output %dx%d", w, h, spec.scale,
                    lw * spec.scale, lh * spec.scale)
    if spec.pre_upsample:
        return [1, spec.channels, lh * spec.scale, lw * spec.scale]
    return [1, spec.channels, lh, lw]


def model_cost(spec: ModelSpec, shape: Sequence[int]) -> GraphCost:
    """Graph cost at ``shape``; a .pt model is exported to an in-memory ONNX graph first."""
    if spec.kind == "onnx":
        return graph_cost(spec.path, shape)
    from ..checkpoint import load_checkpoint
    from .onnx import to_onnx

    return graph_cost(to_onnx(load_checkpoint(spec.path).model), shape)


# -- opening and running a model -----------------------------------------------------------------------------
# -- timing --------------------------------------------------------------------------------------------------
def interleaved_order(n_models: int, runs: int) -> list[int]:
    """Model indices in run order: A B C A B C … (``runs`` rounds of every model)."""
    return [i for _ in range(runs) for i in range(n_models)]


def time_interleaved(runners: Sequence[Runner], *, warmup: int, runs: int) -> list[list[float]]:
    """Warm every runner up, then time ``runs`` runs of each, interleaved; seconds per runner."""
    for i in interleaved_order(len(runners), warmup):
        runners[i].run()
    times: list[list[float]] = [[] for _ in runners]
    for i in interleaved_order(len(runners), runs):
        times[i].append(runners[i].time_once())
    return times


def summarize(times: Sequence[float]) -> Latency:
    """Median, p90 (linear interpolation) and min of per-run seconds."""
    s = sorted(times)
    pos = 0.9 * (len(s) - 1)
    lo = int(pos)
    p90 = s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (pos - lo)
    return Latency(statistics.median(s), p90, s[0], list(times))


def matmul_peak_gflops(*, device: str = "cpu", threads: int | None = None, n: int = 2048,
                       repeats: int = 10, budget_s: float = 2.0) -> float:
    """Best GFLOP/s (2·n³ per product) of a dense float32 n×n matmul, TF32 off on CUDA.

    On the CPU the best of PyTorch's BLAS and onnxruntime's MLAS: which is faster depends on the processor
    (on AMD EPYC, MKL's matmul is ~20% slower than MLAS, so a PyTorch-only peak would be exceeded by ORT convs).
    Up to ``repeats`` timed products after one warm-up, stopping early once ``budget_s`` is spent (≥ 2).
    """
    import torch

    with torch_threads(threads), _no_tf32():
        a, b = (torch.rand(n, n, device=device) for _ in range(2))
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        best = _best_time(lambda: (torch.matmul(a, b), sync()), repeats, budget_s)
    if device == "cpu":
        best = min(best, _ort_matmul_time(n, threads, repeats, budget_s))
    return 2 * n**3 / best / 1e9


def _best_time(run: Callable[[], Any], repeats: int, budget_s: float) -> float:
    run()  # warm-up
    times: list[float] = []
    while len(times) < repeats and (len(times) < 2 or sum(times) < budget_s):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def _ort_matmul_time(n: int, threads: int | None, repeats: int, budget_s: float) -> float:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {k: np.random.default_rng(0).random((n, n), dtype=np.float32) for k in "ab"}
    return _best_time(lambda: session.run(None, feeds), repeats, budget_s)


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    import torch

    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads in PyTorch, restoring the previous count afterwards."""
    import torch

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def set_mmap_threshold(nbytes: int) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD, nbytes)`` for this process (frees above it go back to the OS)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, int(nbytes)))
    except (OSError, AttributeError):
        return False


# -- machine -------------------------------------------------------------------------------------------------
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: str, peak: float | None) -> Machine:
    import onnxruntime as ort
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else ""
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Machine(cpu_model(), cores, gpu, torch.__version__, ort.__version__, platform.python_version(),
                   platform.platform(), date, peak)


# -- the benchmark -------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    spec: ModelSpec
    name: str
    preset: str
    shape: list[int]
    cost: GraphCost
    runner: Runner | None = None
    provider: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    memory: list[dict[str, Any]] = field(default_factory=list)


def plan_entries(paths: Sequence[str | os.PathLike], *, size: tuple[int, int], scale: int | None,
                 presets: Sequence[str], labels: Sequence[str] | None = None) -> list[_Entry]:
    """One entry per .pt model and per (.onnx model, ORT preset), with its input shape and graph cost.
    ``labels``: the models' names in the results (default: file stems, or file names where stems repeat)."""
    for p in presets:
        preset_options(p)
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(f"{len(labels)} labels for {len(paths)} models")
    specs = [inspect_model(p, scale) for p in paths]
    stems = [s.path.stem for s in specs]
    entries = []
    for i, spec in enumerate(specs):
        base = spec.path.stem if stems.count(spec.path.stem) == 1 else spec.path.name
        base = labels[i] if labels is not None else base
        shape = input_shape(spec, size)
        cost = model_cost(spec, shape)
        for preset in presets if spec.kind == "onnx" else ["-"]:
            name = f"{base} [{preset}]" if spec.kind == "onnx" and len(presets) > 1 else base
            entries.append(_Entry(spec, name, preset, shape, cost))
    return entries


def _probe_preset(e: _Entry) -> str:
    return e.preset if e.spec.kind == "onnx" else "lowmem"  # ignored by PyTorch


def measure_memory(entries: Sequence[_Entry], *, device: str, threads: int, rounds: int,
                   channels_last: bool, seed: int = 0, precision: str = "float32") -> None:
    """``rounds`` fresh-process probes per entry, entries shuffled within each round (seeded)."""
    rng = random.Random(seed)
    for _ in range(rounds):
        order = list(range(len(entries)))
        rng.shuffle(order)
        for i in order:
            e = entries[i]
            args = [e.spec.path, "--shape", ",".join(map(str, e.shape)), "--device", device, "--threads",
                    threads, "--preset", _probe_preset(e),
                    "--channels-last" if channels_last else "--no-channels-last", "--precision", precision]
            opts = ORT_PRESETS.get(e.preset) if e.spec.kind == "onnx" else {}
            e.memory.append(run_probe(args, env=probe_env(opts, device)))


def memory_summary(probes: Sequence[dict[str, Any]]) -> Memory:
    """Medians (and maxima) over the rounds' probe results."""
    def med(key: str) -> int:
        return int(statistics.median(p[key] for p in probes))

    return Memory(med("first_bytes"), med("steady_bytes"), med("retained_bytes"),
                  max(p["first_bytes"] for p in probes), max(p["steady_bytes"] for p in probes),
                  len(probes), all(p["hwm_reset"] for p in probes), probes[0]["method"],
                  med("footprint_bytes") if all("footprint_bytes" in p for p in probes) else None)


def bench_models(paths: Sequence[str | os.PathLike], *, device: str = "cpu",
                 size: tuple[int, int] = (1920, 1080), scale: int | None = None, threads: int | None = None,
                 warmup: int = 2, runs: int = 5, rounds: int = 1, memory: bool = True,
                 precision: str = "float32", presets: Sequence[str] = ("lowmem",), channels_last: bool = True,
                 peak: bool = True, tune_malloc: bool = True, command: str = "",
                 labels: Sequence[str] | None = None) -> BenchResult:
    """Benchmark models side by side: latency (this process, interleaved), peak memory (fresh processes).

    ``size`` is the output (W, H); ``presets`` name :data:`ORT_PRESETS` entries, each .onnx model is measured
    once per preset. ``peak`` measures the machine's matmul GFLOP/s for ``pct_peak``. ``tune_malloc``
    applies a preset's glibc malloc threshold to *this* process for the timing, as the memory probes get it;
    that is process-wide and lasts, so pass False inside a long-lived process that does other work.
    """
    from .runners import TORCH_PRECISIONS

    if precision not in TORCH_PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(TORCH_PRECISIONS)} "
                          "(applies to .pt models; an ONNX graph runs in its own, see srcompress quantize)")
    if not paths:
        raise InputError("give at least one .onnx or .pt model to benchmark")
    if warmup < 0 or runs < 1 or rounds < 1:
        raise ConfigError("need warmup ≥ 0, runs ≥ 1 and rounds ≥ 1")
    check_device(device)
    import torch

    from .onnx import OPT_LEVEL

    threads = threads or torch.get_num_threads()
    entries = plan_entries(paths, size=size, scale=scale, presets=list(presets), labels=labels)
    timing = _timing_process_setup(entries, device) if tune_malloc else "default malloc"
    with torch_threads(threads):
        for e in entries:
            e.runner = open_runner(e.spec.path, shape=e.shape, device=device, threads=threads,
                                   preset=_probe_preset(e), channels_last=channels_last, precision=precision)
            e.provider, e.options = e.runner.provider, e.runner.options
        times = time_interleaved([e.runner for e in entries], warmup=warmup, runs=runs)
    for e in entries:
        e.runner = None  # free sessions before the memory probes and the matmul
    if memory:
        measure_memory(entries, device=device, threads=threads, rounds=rounds, channels_last=channels_last,
                       precision=precision)
    gflops = matmul_peak_gflops(device=device, threads=threads) if peak else None
    settings = Settings(device, list(size), threads, warmup, runs, rounds if memory else 0, precision,
                        OPT_LEVEL, list(presets), channels_last, timing)
    models = [_model_result(e, t, device, threads, gflops, precision)
              for e, t in zip(entries, times, strict=True)]
    _add_ratios(models)
    return BenchResult(models, machine_info(device, gflops), settings, command)


def _timing_process_setup(entries: Sequence[_Entry], device: str) -> str:
    """Apply the presets' glibc malloc threshold to this (timing) process; say what was set."""
    wanted = [ORT_PRESETS.get(e.preset).get("malloc_mmap_threshold") for e in entries if e.spec.kind == "onnx"]
    threshold = max((w for w in wanted if w), default=None)
    if device == "cpu" and threshold and set_mmap_threshold(threshold):
        return f"mallopt(M_MMAP_THRESHOLD={threshold})"
    return "default malloc"


def _model_result(e: _Entry, times: list[float], device: str, threads: int, peak: float | None,
                  precision: str = "float32") -> ModelBench:
    lat = summarize(times)
    mem = memory_summary(e.memory) if e.memory else None
    gflops = e.cost.flops / lat.median_s / 1e9
    bound = e.cost.bound_bytes
    return ModelBench(
        name=e.name, path=str(e.spec.path), kind=e.spec.kind, arch=e.spec.arch, device=device,
        threads=threads, provider=e.provider, options=e.options, scale=e.spec.scale, input_shape=e.shape,
        output_shape=e.cost.output_shape, flops=e.cost.flops, params=e.cost.params,
        weights_bytes=e.cost.weights_bytes, bound_bytes=bound, peak_node=e.cost.peak_node, latency=lat,
        memory=mem, first_ratio=mem.first_bytes / bound if mem and bound else None,
        steady_ratio=mem.steady_bytes / bound if mem and bound else None, gflops=gflops,
        pct_peak=100 * gflops / peak if peak else None,
        precision=_onnx_precision(e.spec.path) if e.spec.kind == "onnx" else precision,
        params_by_dtype=e.cost.params_by_dtype)


def _onnx_precision(path: Path) -> str:
    from .quantize import graph_precision

    return graph_precision(load_graph(path))


def _add_ratios(models: Sequence[ModelBench]) -> None:
    """Latency and steady-peak ratios against the first model (measured side by side)."""
    first = models[0]
    for m in models:
        m.ratio_vs_first = m.latency.median_s / first.latency.median_s
        if m.memory and first.memory and first.memory.steady_bytes > 0:
            m.memory_vs_first = m.memory.steady_bytes / first.memory.steady_bytes
