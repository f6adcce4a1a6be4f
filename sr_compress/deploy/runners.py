"""Opening a model for measurement: the runners shared by ``bench`` (timing) and the memory probe.

A :class:`Runner` holds an onnxruntime session or a PyTorch model with its input already allocated;
``run()`` runs it once. Both :mod:`.bench` (in-process, interleaved timing) and :mod:`.memory` (a fresh process
per peak-memory measurement) open models through :func:`open_runner`, so both measure the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..fileio import require_file
from ..registry import Registry

#: glibc malloc threshold of the ``lowmem`` preset: frees above 1 MB go back to the OS at once (docs/benchmarks.md)
MMAP_THRESHOLD = 1 << 20
#: onnxruntime session settings by name; ``lowmem`` is the default (lowest peak, docs/benchmarks.md).
ORT_PRESETS: Registry[dict[str, Any]] = Registry("onnxruntime preset")
ORT_PRESETS.add("lowmem", {"enable_cpu_mem_arena": False, "enable_mem_pattern": False,
                           "malloc_mmap_threshold": MMAP_THRESHOLD})
ORT_PRESETS.add("arena", {"enable_cpu_mem_arena": True, "enable_mem_pattern": False})
ORT_PRESETS.add("default", {"enable_cpu_mem_arena": True, "enable_mem_pattern": True})
# the same memory settings at optimisation level EXTENDED (no NCHWc/NHWC layout transformer): for comparing the
# graph forms of quantised graphs (docs/benchmarks.md, "Quantised and half-precision graphs")
ORT_PRESETS.add("lowmem-ext", {"enable_cpu_mem_arena": False, "enable_mem_pattern": False,
                               "malloc_mmap_threshold": MMAP_THRESHOLD,
                               "graph_optimization_level": "ORT_ENABLE_EXTENDED"})
ORT_PRESETS.add("arena-ext", {"enable_cpu_mem_arena": True, "enable_mem_pattern": False,
                              "graph_optimization_level": "ORT_ENABLE_EXTENDED"})
KINDS = {".onnx": "onnx", ".pt": "pt", ".pth": "pt"}
DEVICES = ("cpu", "cuda")


def model_kind(path: Path) -> str:
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: unknown model file type {path.suffix!r}; give .onnx or .pt files")
    return kind


@dataclass
class Runner:
    """One prepared inference: the session/model and its input are allocated; ``run()`` runs it once."""

    kind: str
    provider: str
    options: dict[str, Any]
    run: Callable[[], None]
    cuda_timer: Callable[[], float] | None = None

    def time_once(self) -> float:
        """Seconds of one run (CUDA events for PyTorch on CUDA, else the wall clock around a synced run)."""
        if self.cuda_timer is not None:
            return self.cuda_timer()
        t0 = time.perf_counter()
        self.run()
        return time.perf_counter() - t0


def preset_options(preset: str) -> dict[str, Any]:
    return dict(ORT_PRESETS.get(preset))


def check_device(device: str) -> None:
    """A clear error for an unknown device or ``cuda`` on a machine without one."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available to PyTorch on this machine")


#: PyTorch compute precisions of a .pt model (ONNX graphs carry their own: see deploy/quantize.py)
TORCH_PRECISIONS = {"float32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def open_runner(path: Path, *, shape: Sequence[int], device: str = "cpu", threads: int | None = None,
                preset: str = "lowmem", channels_last: bool = True, precision: str = "float32") -> Runner:
    """Open a .onnx or .pt model for ``device`` and allocate a random input of ``shape`` (NCHW float32; a .pt
    model in ``precision`` bf16/fp16 gets its weights and input in that type)."""
    p = require_file(path, "model")
    if precision not in TORCH_PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(TORCH_PRECISIONS)}")
    if model_kind(p) == "onnx":
        return _ort_runner(p, shape, device, threads, preset)
    return _torch_runner(p, shape, device, threads, channels_last, precision)


def _ort_providers(device: str) -> list[Any]:
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise InputError("--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    cuda = {"arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "HEURISTIC"}
    return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]


def _ort_runner(path: Path, shape: Sequence[int], device: str, threads: int | None, preset: str) -> Runner:
    import numpy as np
    import onnxruntime as ort

    from .onnx import OPT_LEVEL, check_sr_onnx, session_options

    check_sr_onnx(path)  # an image-to-image graph with sane shapes, before a session is made
    opts = preset_options(preset)
    providers = _ort_providers(device)
    level = opts.get("graph_optimization_level", OPT_LEVEL)
    so = session_options(threads, arena=opts["enable_cpu_mem_arena"], mem_pattern=opts["enable_mem_pattern"],
                         level=level)
    sess = ort.InferenceSession(str(path), so, providers=providers)
    x = np.random.default_rng(0).random(tuple(shape), dtype=np.float32)
    name = sess.get_inputs()[0].name
    options = {"preset": preset, **opts, "graph_optimization_level": level}
    if device == "cpu":
        return Runner("onnx", "CPUExecutionProvider", options, lambda: sess.run(None, {name: x}) and None)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output(sess.get_outputs()[0].name, "cuda")
    options.update(providers[0][1])
    return Runner("onnx", "CUDAExecutionProvider", options, lambda: sess.run_with_iobinding(binding))


def _torch_runner(path: Path, shape: Sequence[int], device: str, threads: int | None,
                  channels_last: bool, precision: str = "float32") -> Runner:
    import torch

    from ..checkpoint import load_checkpoint

    if threads:
        torch.set_num_threads(threads)
    dtype = getattr(torch, TORCH_PRECISIONS[precision])
    model = load_checkpoint(path).model.eval().to(device=device, dtype=dtype)
    x = torch.rand(tuple(shape), generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode():
            model(x)
        if device == "cuda":
            torch.cuda.synchronize()

    options = {"channels_last": channels_last, "inference_mode": True, "precision": precision}
    timer = _cuda_event_timer(run) if device == "cuda" else None
    return Runner("pt", f"PyTorch {device}", options, run, timer)


def _cuda_event_timer(run: Callable[[], None]) -> Callable[[], float]:
    import torch

    def timed() -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timed
