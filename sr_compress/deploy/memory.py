"""Peak memory of an inference, measured in a fresh process (``python -m sr_compress.deploy.memory``).

Allocators keep what they freed, so a second measurement in the same process lies: the benchmark starts one
probe process per measurement. The probe builds the session (or model), allocates the input, records the
resident set as the baseline, then for each run resets the kernel's high-water mark (``echo 5 >
/proc/self/clear_refs``), runs one inference and reads ``VmHWM`` from ``/proc/self/status``. It prints one
JSON object on stdout:

* ``first_bytes``: peak − baseline of the first run (what a one-shot command needs),
* ``steady_bytes``: the largest peak − baseline of the later runs (a server after warm-up; ORT's memory
  pattern, for one, allocates its plan on the 2nd run),
* ``retained_bytes``: resident set after the last run − baseline (memory the runtime keeps between runs),
* ``footprint_bytes``: the highest peak − the resident set before the model was opened (weights, runtime
  and input included; an arena may serve a run from memory it freed during setup, below the baseline),
* ``hwm_reset``: False where the high-water mark could not be reset; peaks are then upper bounds (they include
  whatever the setup peaked at).

On CUDA the PyTorch figures come from ``torch.cuda.max_memory_allocated`` (context not included); for
onnxruntime's CUDA provider from the device's used memory (its arena keeps its peak with
``kSameAsRequested``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, SrCompressError, VerificationError

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
#: a glibc malloc threshold (bytes) above which buffers are mmapped and handed back to the OS when freed


def proc_status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process in bytes (Linux /proc)."""
    if not STATUS.exists():
        raise InputError("peak-memory measurement needs Linux /proc; run with --no-memory elsewhere")
    out = {}
    for line in STATUS.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def reset_hwm() -> bool:
    """Reset the kernel's resident high-water mark to the current resident set; False where not allowed."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def measure_rise(fn: Callable[[], Any], baseline: int | None = None) -> tuple[int, bool]:
    """``(peak resident bytes during fn() − baseline, hwm_reset)``; baseline defaults to the current VmRSS."""
    base = proc_status()["VmRSS"] if baseline is None else baseline
    ok = reset_hwm()
    fn()
    return proc_status()["VmHWM"] - base, ok


def probe_cpu(run: Callable[[], Any], runs: int = 3) -> dict[str, Any]:
    """Peak rise per run (HWM reset before each) against the post-setup baseline, and the retained memory."""
    gc.collect()
    base = proc_status()["VmRSS"]
    rises, resets = [], []
    for _ in range(runs):
        rise, ok = measure_rise(run, base)
        rises.append(rise)
        resets.append(ok)
    retained = proc_status()["VmRSS"] - base
    return _summary(rises, retained, base, all(resets), "VmHWM rise over the post-setup VmRSS")


def _summary(rises: list[int], retained: int, base: int, reset: bool, method: str) -> dict[str, Any]:
    return {"runs": rises, "first_bytes": rises[0], "steady_bytes": max(rises[1:] or rises),
            "retained_bytes": retained, "baseline_bytes": base, "hwm_reset": reset, "method": method}


def probe_torch_cuda(run: Callable[[], Any], runs: int = 3) -> dict[str, Any]:
    """Like :func:`probe_cpu` with PyTorch's CUDA allocator statistics (context not included)."""
    import torch

    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    rises = []
    for _ in range(runs):
        torch.cuda.reset_peak_memory_stats()
        run()
        rises.append(torch.cuda.max_memory_allocated() - base)
    retained = torch.cuda.memory_allocated() - base
    return _summary(rises, retained, base, True, "torch.cuda.max_memory_allocated rise")


def probe_device_used(run: Callable[[], Any], runs: int = 3) -> dict[str, Any]:
    """Device used memory after each run − before the first (ORT's CUDA arena keeps its peak)."""
    base = memory_level("cuda", "onnx")
    rises = []
    for _ in range(runs):
        run()
        rises.append(memory_level("cuda", "onnx") - base)
    return _summary(rises, rises[-1], base, True, "device used-memory rise (the arena holds its peak)")


def probe_alloc(megabytes: float, runs: int = 3) -> dict[str, Any]:
    """Self-test: each run allocates and touches ``megabytes`` MB (1e6 bytes) of numpy memory, frees it."""
    import numpy as np

    n = int(megabytes * 1e6)

    def run() -> None:
        a = np.ones(n, dtype=np.uint8)
        del a

    return probe_cpu(run, runs)


def memory_level(device: str, kind: str) -> int:
    """Memory in use now: VmRSS (CPU), PyTorch's allocated bytes (CUDA, .pt), device used bytes (CUDA, ORT)."""
    if device == "cpu":
        gc.collect()
        return proc_status()["VmRSS"]
    import torch

    if kind == "pt":
        return torch.cuda.memory_allocated()
    free, total = torch.cuda.mem_get_info()
    return total - free


def probe_model(path: str, *, shape: Sequence[int], device: str = "cpu", threads: int | None = None,
                preset: str = "lowmem", channels_last: bool = True, runs: int = 3,
                precision: str = "float32") -> dict[str, Any]:
    """Open ``path`` (.onnx or .pt) with the benchmark's settings, allocate an input of ``shape``, measure.

    Adds ``footprint_bytes``: the highest run peak over the level before the model was opened (weights,
    runtime structures and input included) — the process's whole cost of serving this model.
    """
    from .runners import model_kind, open_runner

    kind = model_kind(Path(path))
    before = memory_level(device, kind)
    runner = open_runner(Path(path), shape=shape, device=device, threads=threads, preset=preset,
                         channels_last=channels_last, precision=precision)
    result = _probe_for(runner, kind, device, runs)
    result["footprint_bytes"] = max(result["runs"]) + result["baseline_bytes"] - before
    return result


def _probe_for(runner: Any, kind: str, device: str, runs: int) -> dict[str, Any]:
    if device == "cpu":
        return probe_cpu(runner.run, runs)
    if kind == "pt":
        return probe_torch_cuda(runner.run, runs)
    return probe_device_used(runner.run, runs)


def probe_env(preset_options: dict[str, Any], device: str) -> dict[str, str]:
    """Environment for a probe process: this one's, plus the glibc malloc threshold where the preset asks."""
    env = dict(os.environ)
    threshold = preset_options.get("malloc_mmap_threshold")
    if threshold and device == "cpu":
        env["GLIBC_TUNABLES"] = f"glibc.malloc.mmap_threshold={int(threshold)}"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def run_probe(args: Sequence[Any], *, env: dict[str, str] | None = None,
              timeout: float = 1800) -> dict[str, Any]:
    """Run ``python -m sr_compress.deploy.memory ARGS`` in a fresh process and return its JSON result."""
    cmd = [sys.executable, "-m", "sr_compress.deploy.memory", *map(str, args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise VerificationError(f"memory probe timed out after {timeout:.0f} s: {' '.join(args)}") from None
    lines = proc.stdout.strip().splitlines()
    data = _json_or_none(lines[-1]) if lines else None
    if proc.returncode != 0 or data is None or "error" in data:
        why = (data or {}).get("error") or _last_line(proc.stderr) or f"exit code {proc.returncode}"
        raise VerificationError(f"memory probe failed ({' '.join(map(str, args))}): {why}")
    return data


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sr_compress.deploy.memory",
                                description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help=".onnx or .pt model (omit with --alloc-mb)")
    p.add_argument("--shape", default="", help="input shape, e.g. 1,3,270,480")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--preset", default="lowmem", help="onnxruntime options preset (see bench.ORT_PRESETS)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--precision", default="float32", help="PyTorch compute precision of a .pt model")
    p.add_argument("--alloc-mb", type=float, default=None, help="self-test: allocate this many MB per run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.alloc_mb is not None:
            result = probe_alloc(args.alloc_mb, args.runs)
        else:
            if not args.model or not args.shape:
                raise InputError("give a model and --shape (or --alloc-mb)")
            shape = [int(v) for v in args.shape.split(",")]
            result = probe_model(args.model, shape=shape, device=args.device, threads=args.threads,
                                 preset=args.preset, channels_last=args.channels_last, runs=args.runs,
                                 precision=args.precision)
    except SrCompressError as e:
        result, code = {"error": str(e)}, 2
    else:
        code = 0
    sys.stdout.write(json.dumps(result) + "\n")  # the protocol: one JSON line for the parent process
    return code


if __name__ == "__main__":
    sys.exit(main())
