"""ONNX graphs as read-only models: any SR net its authors' code can export is evaluated, upscales images and
teaches a student (docs/checkpoints.md, "ONNX models").

:func:`load_onnx_model` opens a graph with onnxruntime (CPU) and works out what the rest of srcompress needs to
know about it, reporting every guess as the foreign-checkpoint importer does:

- **colour**: the input's channel count (3 = RGB, 1 = Y); a graph whose channel axis is symbolic needs
  ``colour``;
- **input range**: [0, 1] or [0, 255]. An srcompress export is [0, 1] (our contract). Otherwise the first ops
  the input meets decide: a multiplication by 255 (after an optional mean shift) means the graph takes [0, 1]
  and works in 0–255 inside, a division by 255 (or a multiplication by 1/255) means it takes [0, 255]; a
  ``input_range`` / ``img_range`` / ``rgb_range`` metadata entry counts too. Failing those, a probe: a smooth
  image fed in [0, 1] and in [0, 255] must come back close to its bicubic upscale in exactly one of them
  (:func:`probe_range`). Anything else needs ``input_range``. The output is read in the input's range;
- **scale**: the ``scale`` metadata of an srcompress export, else measured by running the graph on a small
  input (two different sides, so an output of the wrong shape shows). An output of the input's size is a
  pre-upsampling net (VDSR-like: it takes the bicubic-upscaled image) whose scale must be given.

Refused with one line (:class:`CheckpointError`): a graph with several inputs or outputs, a fixed-size graph
(static height/width), a non-float32 or non-NCHW input, an output that is not an image of the input's channel
count at an integer multiple of its size.

The model (:class:`OnnxModel`) keeps the public contract of every :class:`~sr_compress.models.SRModel`
(float32 NCHW in [0, 1], RGB or Y) and returns a torch tensor on the input's device; it has no parameters and
no gradient (a teacher runs under ``no_grad`` anyway). It cannot be saved as a checkpoint, slimmed or trained.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, first_line
from ..fileio import file_sha256, require_file
from ..models import SCALES, SRModel
from .format import LoadedModel

RANGES = (1.0, 255.0)
COLOURS = {"rgb": 3, "y": 1}
ONNX_OVERRIDES = ("scale", "input_range", "colour")
PROBE_SIZE = (24, 32)  # (H, W) of the scale probe: two different sides, multiples of 8
RANGE_PROBE = (40, 48)  # (H, W) of the smooth image of the range probe
PROBE_CLOSE, PROBE_RATIO = 0.05, 4.0  # the range probe's decision rule (probe_range)
_FLOAT = 1  # onnx.TensorProto.FLOAT
_RANGE_META = ("input_range", "img_range", "rgb_range")
_NEAR = 4  # how many mean-shift / cast / identity ops may stand between the input and its range op


def is_onnx_file(path: str | os.PathLike) -> bool:
    """``.onnx`` files, and files that start like a serialized ONNX model (field 1, ``ir_version``, a varint:
    byte 0x08) rather than a torch zip (``PK``) or pickle (``0x80``)."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return True
    try:
        with open(p, "rb") as f:
            return f.read(1) == b"\x08"
    except OSError:
        return False


class OnnxModel(SRModel):
    """A read-only model backed by an onnxruntime session (see the module docstring).

    ``hparams``: ``scale``, ``channels``, ``input_range`` (1 or 255), ``pre_upsample``, ``source`` (the file)
    and ``sha256`` (its content). Calling it runs the graph on CPU under ``no_grad``; a graph whose batch axis
    is fixed to 1 is run row by row.
    """

    arch = "onnx"
    read_only = True

    def __init__(self, session: Any, graph: Any, *, scale: int, channels: int, input_range: float,
                 pre_upsample: bool, source: str, sha256: str, batch: int | None = None) -> None:
        super().__init__(scale=int(scale), channels=int(channels), input_range=float(input_range),
                         pre_upsample=bool(pre_upsample), source=str(source), sha256=sha256)
        self.pre_upsample = bool(pre_upsample)  # per instance (a ClassVar on trained families)
        self._session, self._graph, self._batch = session, graph, batch
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    def run_numpy(self, x: np.ndarray) -> np.ndarray:
        """The graph on a float32 NCHW array in [0, 1] → its output in [0, 1] (rows one by one if the graph's
        batch axis is fixed)."""
        r = self.hparams["input_range"]
        x = np.ascontiguousarray(x, dtype=np.float32)
        if r != 1.0:
            x = x * np.float32(r)
        if self._batch is not None and x.shape[0] != self._batch:
            ys = [self._session.run([self._output], {self._input: x[i:i + 1]})[0] for i in range(x.shape[0])]
            y = np.concatenate(ys, 0)
        else:
            y = self._session.run([self._output], {self._input: x})[0]
        y = np.asarray(y, dtype=np.float32)
        return y / np.float32(r) if r != 1.0 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = self.run_numpy(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)

    @property
    def onnx_graph(self) -> Any:
        """The ``onnx.ModelProto`` (what :func:`sr_compress.deploy.tiling.tile_profile` reads the receptive
        radius from, exactly, when the metadata of an srcompress export does not record it)."""
        return self._graph

    @property
    def onnx_metadata(self) -> dict[str, str]:
        return {m.key: m.value for m in self._graph.metadata_props}

    def describe(self) -> dict[str, Any]:
        return {"arch": self.arch, "hparams": dict(self.hparams), "params": 0}

    def fingerprint(self) -> str:
        """What the graph computes, as a string: its content and how we call it (range, colour, scale)."""
        h = self.hparams
        return f"onnx:{h['sha256']}:{h['input_range']:g}:{h['channels']}:{h['scale']}:{h['pre_upsample']}"

    def __deepcopy__(self, memo: dict) -> OnnxModel:  # the session is immutable and cannot be copied
        return self


# -- loading ----------------------------------------------------------------------------------------------------
def load_onnx_model(path: str | os.PathLike, *, overrides: dict[str, Any] | None = None,
                    need_range: bool = True) -> LoadedModel:
    """Open the ONNX graph at ``path`` as an :class:`OnnxModel` (see the module docstring for the detection).

    ``overrides``: ``scale`` (needed by pre-upsampling graphs; must agree with a measured scale),
    ``input_range`` (1 or 255) and ``colour`` (``rgb`` or ``y``) where the graph does not tell; None values
    are ignored. Raises :class:`CheckpointError` for graphs that are not single-input image-to-image nets.
    ``need_range=False`` (``info``) accepts an undetected input range (1 assumed, said in the guesses).
    """
    import onnx

    p = require_file(path, "ONNX model")
    where = str(path)
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(over) - set(ONNX_OVERRIDES))
    if unknown:
        raise ConfigError(f"{where}: {', '.join(unknown)} does not apply to an ONNX graph "
                          f"(it takes {', '.join(ONNX_OVERRIDES)})")
    try:
        graph = onnx.load(str(p))
    except Exception as e:  # protobuf DecodeError and friends
        raise CheckpointError(f"{where}: not a readable ONNX model ({first_line(e)})") from None
    session = _session(p, where)
    meta = {m.key: m.value for m in graph.metadata_props}
    guesses: list[str] = []
    batch, channels = _input_shape(graph, session, where, over, guesses)
    scale, pre = _scale(session, meta, channels, where, over, guesses)  # shapes only: any value range will do
    try:
        input_range = _input_range(graph, meta, where, over, guesses,
                                   lambda r: _range_probe(session, channels, scale, pre, r))
    except CheckpointError:
        if need_range:
            raise
        input_range = 1.0
        guesses.append("input range = unknown ([0, 1] assumed here; give --input-range 1 or 255 to run it)")
    model = OnnxModel(session, graph, scale=scale, channels=channels, input_range=input_range, pre_upsample=pre,
                      source=where, sha256=file_sha256(p), batch=batch)
    return LoadedModel(model, "onnx", guesses)


def _session(p: Path, where: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()  # as sr_compress.deploy.onnx.session_options: level ALL, sequential, no mem pattern
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = False
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's Fail / InvalidGraph / NotImplemented …
        raise CheckpointError(f"{where}: onnxruntime cannot load it ({first_line(e)})") from None


def _input_shape(graph: Any, session: Any, where: str, over: dict[str, Any],
                 guesses: list[str]) -> tuple[int | None, int]:
    """(fixed batch or None, channels) of the single float32 NCHW input with dynamic height and width."""
    inits = {t.name for t in graph.graph.initializer}
    inputs = [i for i in graph.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise CheckpointError(f"{where}: the graph has {len(inputs)} inputs ({names}); srcompress runs graphs "
                              "with one image input")
    outputs = session.get_outputs()
    if len(outputs) != 1:
        raise CheckpointError(f"{where}: the graph has {len(outputs)} outputs "
                              f"({', '.join(o.name for o in outputs)}); an SR net has one image output")
    t = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    shown = "x".join(str(d) if d is not None else "?" for d in dims)
    if t.elem_type != _FLOAT:
        name = onnx_type_name(t.elem_type)
        raise CheckpointError(f"{where}: input {inputs[0].name} is {name}; srcompress runs float32 graphs "
                              "(re-export it in float32)")
    if len(dims) != 4:
        raise CheckpointError(f"{where}: input {inputs[0].name} has shape [{shown}], not an NCHW image batch")
    if dims[2] is not None or dims[3] is not None:
        raise CheckpointError(f"{where}: a fixed-size graph (input [{shown}]); re-export it with dynamic "
                              "height and width axes (torch.onnx.export(..., dynamic_axes=...))")
    colour = over.get("colour")
    if colour is not None and str(colour).lower() not in COLOURS:
        raise ConfigError(f"colour must be rgb or y, got {colour!r}")
    if dims[1] is None:
        if colour is None:
            raise CheckpointError(f"{where}: the input's channel axis is symbolic; give the colour "
                                  "(--colour rgb or y)")
        channels = COLOURS[str(colour).lower()]
        guesses.append(f"colour = {str(colour).lower()} (set by override)")
    else:
        channels = int(dims[1])
        if channels not in (1, 3):
            raise CheckpointError(f"{where}: input with {channels} channels; SR nets take 3 (RGB) or 1 (Y)")
        if colour is not None and COLOURS[str(colour).lower()] != channels:
            raise CheckpointError(f"{where}: the graph takes {channels} channel(s); it cannot be used as "
                                  f"{str(colour).lower()}")
        guesses.append(f"colour = {'rgb' if channels == 3 else 'y'} (from the input's {channels} channel(s))")
    batch = dims[0]
    if batch is not None and batch != 1:
        raise CheckpointError(f"{where}: the graph's batch axis is fixed to {batch}; re-export it with a "
                              "dynamic or unit batch")
    return batch, channels


def onnx_type_name(elem_type: int) -> str:
    import onnx

    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # unknown enum values
        return f"element type {elem_type}"


def _const_value(graph: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for t in graph.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for n in graph.graph.node:
        if n.op_type == "Constant" and name in n.output:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name == "value_float":
                    return np.array(a.f, dtype=np.float32)
    return None


def _uniform(v: np.ndarray | None) -> float | None:
    if v is None or v.size == 0 or not np.issubdtype(v.dtype, np.floating):
        return None
    flat = v.astype(np.float64).ravel()
    return float(flat[0]) if np.allclose(flat, flat[0], rtol=1e-4, atol=0) else None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-3 * abs(b)


def detect_range(graph: Any) -> tuple[float | None, str]:
    """The input range the graph's first ops imply (see the module docstring): (1.0, 255.0 or None, why)."""
    inits = {t.name for t in graph.graph.initializer}
    name = next(i.name for i in graph.graph.input if i.name not in inits)
    frontier = {name}
    for _ in range(_NEAR):
        users = [n for n in graph.graph.node if any(i in frontier for i in n.input)]
        nxt: set[str] = set()
        for n in users:
            others = [i for i in n.input if i not in frontier]
            const = _const_value(graph, others[0]) if len(others) == 1 else None
            value = _uniform(const)
            if n.op_type in ("Mul", "Div") and value is not None and value != 0:
                factor = value if n.op_type == "Mul" else 1.0 / value
                first = n.input[0] in frontier
                if n.op_type == "Div" and not first:
                    continue  # c / x: not a range conversion
                if _close(factor, 255.0):
                    return 1.0, f"the graph multiplies its input by 255 ({n.op_type} {n.name or ''})".rstrip()
                if _close(factor, 1.0 / 255.0):
                    return 255.0, f"the graph divides its input by 255 ({n.op_type} {n.name or ''})".rstrip()
            if n.op_type in ("Cast", "Identity") or (n.op_type in ("Sub", "Add") and const is not None):
                nxt.update(n.output)
        if not nxt:
            break
        frontier = nxt
    return None, ""


def _input_range(graph: Any, meta: dict[str, str], where: str, over: dict[str, Any], guesses: list[str],
                 probe: Any) -> float:
    given = over.get("input_range")
    if given is not None:
        try:
            value = float(given)
        except (TypeError, ValueError):
            value = -1.0
        if value not in RANGES:
            raise ConfigError(f"input_range must be 1 or 255, got {given!r}")
        guesses.append(f"input range = [0, {value:g}] (set by override)")
        return value
    if "srcompress_version" in meta:
        guesses.append("input range = [0, 1] (an srcompress export)")
        return 1.0
    for key in _RANGE_META:
        if key in meta:
            try:
                value = float(meta[key])
            except ValueError:
                continue
            if value in RANGES:
                guesses.append(f"input range = [0, {value:g}] (metadata {key}; override with --input-range)")
                return value
    value, why = detect_range(graph)
    if value is None:
        value, why = probe_range(probe)
    if value is None:
        raise CheckpointError(f"{where}: cannot tell whether the graph takes [0, 1] or [0, 255] input; give "
                              "--input-range 1 or 255")
    guesses.append(f"input range = [0, {value:g}] ({why}; override with --input-range)")
    return value


def smooth_image(channels: int, h: int, w: int) -> np.ndarray:
    """A smooth, natural-looking (1, C, h, w) test image in [0.1, 0.9]: SR nets return it almost unchanged."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    chans = [0.5 + 0.25 * np.sin(2.1 * xx + 1.3 * yy + c) * np.cos(1.7 * yy - 0.9 * xx + 2 * c) + 0.1 * (xx - yy)
             for c in range(channels)]
    return np.stack(chans)[None].astype(np.float32)


def _range_probe(session: Any, channels: int, scale: int, pre: bool, r: float) -> tuple[np.ndarray, np.ndarray]:
    """(output ÷ r, bicubic upscale of the input), borders excluded, for a smooth image fed in [0, r]
    (output None when the graph fails on it)."""
    h, w = RANGE_PROBE
    t = torch.from_numpy(smooth_image(channels, h, w))
    up = torch.nn.functional.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False).numpy()
    x = up if pre else t.numpy()
    b = 4 * scale
    try:
        y = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x * np.float32(r))})[0]
    except Exception:  # noqa: BLE001 - a graph that fails on this range simply does not take it
        return None, up[..., b:-b, b:-b]
    return np.asarray(y, dtype=np.float64)[..., b:-b, b:-b] / r, up[..., b:-b, b:-b]


def probe_range(probe: Any) -> tuple[float | None, str]:
    """Decide the range from :func:`_range_probe` at [0, 1] and [0, 255]. The same output in both (≤ 1e-4: a
    homogeneous net — no biases, ReLU-like activations — for which the range does not matter) → 1. Else the
    range whose output stays close to the upscaled input (mean |·| < 0.05) while the other's is not (≥ 0.05 and
    ≥ 4× larger). Else undecided."""
    (y1, up), (y255, _) = probe(1.0), probe(255.0)
    if y1 is not None and y255 is not None and np.abs(y1 - y255).max() <= 1e-4:
        return 1.0, "probed: the graph gives the same output in [0, 1] and [0, 255], so the range does not matter"

    def err(y: np.ndarray | None) -> float:
        return float(np.abs(y - up).mean()) if y is not None and np.isfinite(y).all() else float("inf")

    e1, e255 = err(y1), err(y255)
    for value, mine, other in ((1.0, e1, e255), (255.0, e255, e1)):
        if mine < PROBE_CLOSE and other >= max(PROBE_CLOSE, PROBE_RATIO * mine):
            return value, (f"probed: a smooth image in [0, {value:g}] comes back within {mine:.3f} of its "
                           f"bicubic upscale, in the other range {other:.3g}")
    return None, ""


def _scale(session: Any, meta: dict[str, str], channels: int, where: str, over: dict[str, Any],
           guesses: list[str]) -> tuple[int, bool]:
    """(scale, pre_upsample) from a probe run, checked against metadata and the override."""
    h, w = PROBE_SIZE
    x = np.random.default_rng(0).random((1, channels, h, w), dtype=np.float32)
    try:
        y = session.run(None, {session.get_inputs()[0].name: x})[0]
    except Exception as e:  # the graph cannot run on a small input of this shape
        raise CheckpointError(f"{where}: onnxruntime cannot run the graph on a 1x{channels}x{h}x{w} input "
                              f"({first_line(e)}); not an image-to-image SR net?") from None
    y = np.asarray(y)
    if y.ndim != 4 or y.shape[:2] != (1, channels) or y.shape[2] % h or y.shape[3] % w \
            or y.shape[2] // h != y.shape[3] // w:
        raise CheckpointError(f"{where}: a 1x{channels}x{h}x{w} input gave an output of shape "
                              f"{list(y.shape)}; not an image-to-image SR net with an integer scale")
    ratio = y.shape[2] // h
    given = over.get("scale")
    if given is not None and (int(given) not in SCALES or int(given) != given):
        raise ConfigError(f"scale must be one of {SCALES}, got {given!r}")
    meta_pre = str(meta.get("pre_upsample", "")).lower() == "true"
    if ratio == 1:
        scale = given if given is not None else (int(meta["scale"]) if "scale" in meta and meta_pre else None)
        if scale is None:
            raise CheckpointError(f"{where}: the output has the input's size: a pre-upsampling net "
                                  "(VDSR-like, takes the bicubic-upscaled image); give its scale (--scale)")
        how = "set by override" if given is not None else "metadata"
        guesses.append(f"scale = {scale} (pre-upsampling: output size = input size; {how})")
        return int(scale), True
    if ratio not in SCALES:
        raise CheckpointError(f"{where}: the graph upscales ×{ratio}; srcompress works at {SCALES}")
    if given is not None and int(given) != ratio:
        raise CheckpointError(f"{where}: the graph upscales ×{ratio}; it cannot be used as ×{given}")
    guesses.append(f"scale = {ratio} (measured: a {w}x{h} input gives {y.shape[3]}x{y.shape[2]})")
    return ratio, False


def model_fingerprint(model: torch.nn.Module) -> str:
    """A content key of what ``model`` computes: the graph's file content for an ONNX model, else the sha256
    of arch, hparams and every state_dict tensor (in key order)."""
    fp = getattr(model, "fingerprint", None)
    if callable(fp):
        return str(fp())
    h = hashlib.sha256()
    h.update(json.dumps([getattr(model, "arch", type(model).__name__), getattr(model, "hparams", {})],
                        sort_keys=True, default=str).encode())
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().to("cpu").contiguous()
        h.update(f"{k}:{t.dtype}:{list(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "torch:" + h.hexdigest()
