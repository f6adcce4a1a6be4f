"""ONNX export: dynamic N/H/W graph, simplified, checked, validated against PyTorch, deterministic bytes.

Guarantees of :func:`export_onnx` (docs/export.md):
- input ``"input"`` / output ``"output"``, float32 NCHW, batch, height and width dynamic; PixelShuffle becomes
  ``DepthToSpace`` (mode CRD); the model's contract is kept (RGB or Y in [0, 1] in, the same range out).
- ``onnx.checker`` passes; onnxruntime (CPU) agrees with PyTorch within ``tolerance`` on a random batch and on
  crops of a real photo at two sizes, or a :class:`VerificationError` is raised and no file is written.
- the same model exported twice gives byte-identical files (no timestamps, fixed producer, sorted metadata).
- metadata_props: arch, scale, channels, pre_upsample, hparams (JSON), provenance (JSON), srcompress_version,
  receptive_radius and act_bytes_per_px (what tiled inference needs, see :mod:`.tiling`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
import torch

from .. import __version__
from ..errors import ConfigError, InputError, VerificationError, first_line
from ..fileio import atomic_write, check_output, require_file
from ..infer import default_real_images, model_space_input
from ..models import SRModel
from ..validate import finite_float, within, worst_of
from . import tiling

DEFAULT_OPSET = 17
#: Absolute tolerance on the [0, 1] output: 1/40 of an 8-bit grey level. float32 reassociation between
#: PyTorch's and ORT's kernels measured ≤ 2.1e-6 on the tiny test models and ≤ 6e-7 on full-size EDSR
#: (r32f256, whose 0..255 internal range is divided by 255 before the output, shrinking its internal errors
#: alike), MSRResNet, VDSR, FSRCNN and a 35-layer plain chain: a margin of ≥ 50×.
DEFAULT_TOLERANCE = 1e-4
PRODUCER = "srcompress"
RANDOM_SHAPE = (2, 19, 23)  # batch 2 and odd sizes: exercises the dynamic N, H and W axes
PLAIN_OPS = frozenset({"Conv", "Relu", "DepthToSpace", "Identity"})
DECLARABLE = frozenset({"PRelu", "LeakyRelu", "global_residual"})
_AFFINE = frozenset({"Sub", "Mul", "Div", "Add"})


@dataclass
class ExportReport:
    """What :func:`export_onnx` did and measured. Errors are max |ORT − PyTorch| on the [0, 1] output."""

    path: str
    opset: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    nodes_before: int
    nodes_after: int
    simplified: bool
    max_err_random: float | None
    max_err_real: float | None
    tolerance: float
    validated_shapes: list[list[int]]
    is_plain: bool
    plain_reason: str
    receptive_radius: int
    act_bytes_per_px: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(model: SRModel, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                simplify: bool = True, validate: bool = True, tolerance: float | None = None,
                real_images: Sequence[torch.Tensor] | None = None, force: bool = False, inputs: Iterable = (),
                seed: int = 0, halo: int | None = None) -> ExportReport:
    """Export ``model`` to ``path`` as a validated ONNX graph; nothing is written unless every check passes.

    ``real_images``: LR RGB batches (NCHW float32 in [0, 1]) for validation, default two crops of skimage's
    astronaut. ``tolerance``: absolute, default :data:`DEFAULT_TOLERANCE`. Models with ``plain = True`` must
    pass :func:`check_plain`. ``halo``: the receptive radius (network-input px) to record for tiled inference
    instead of deriving it from the graph — for graphs the analysis cannot follow; a halo below the true radius
    makes tiled output differ from whole-image output. Raises VerificationError (mismatch, not plain,
    simplifier failure) and OutputExistsError.
    """
    t0 = time.perf_counter()
    out = check_output(path, inputs=inputs, force=force)
    tol = DEFAULT_TOLERANCE if tolerance is None else finite_float(tolerance, "tolerance", min=0)
    with _eval_mode(model):
        raw = to_onnx(model, opset)
        graph = constants_to_initializers(simplify_graph(raw) if simplify else raw)
        onnx.checker.check_model(graph, full_check=True)
        is_plain, reason = check_plain(graph, declared_ops(model))
        if model.plain and not is_plain:
            raise VerificationError(f"{model.arch} declares itself plain, but its graph is not: {reason}")
        net_scale = 1 if model.pre_upsample else model.scale
        if model.global_context and halo is None:  # recorded as such: the runner refuses to tile it
            profile = tiling.tile_profile(graph, halo=0, scale=net_scale)
            profile = tiling.TileProfile(tiling.NOT_TILEABLE, profile.bytes_per_px, net_scale)
        else:
            profile = tiling.tile_profile(graph, halo=halo, scale=net_scale)
        data = finalize(graph, model, profile)
        shapes, errors = ([], [None, None])
        if validate:
            shapes, errors = validate_onnx(model, data, real_images, seed=seed)
    _check_tolerance(errors, tol)
    atomic_write(out, lambda p: p.write_bytes(data), inputs=inputs, force=force)
    return ExportReport(str(out), opset, op_histogram(raw), op_histogram(graph), len(raw.graph.node),
                        len(graph.graph.node), simplify, errors[0], errors[1], tol, shapes, is_plain, reason,
                        profile.halo, profile.bytes_per_px, round(time.perf_counter() - t0, 3))


@contextlib.contextmanager
def _eval_mode(model: SRModel) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _check_tolerance(errors: Sequence[float | None], tol: float) -> None:
    worst = worst_of(errors)  # NaN if any error is NaN (max() would drop it)
    if not within(worst, tol):
        raise VerificationError(f"ONNX output differs from PyTorch by {worst:.3g} (tolerance {tol:.3g}); "
                                "nothing written — retry with --no-simplify, or raise --tolerance")


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """``{op_type: count}`` of the graph's nodes, sorted by op name."""
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


# -- export, simplify, finalize -----------------------------------------------------------------------------


def to_onnx(model: SRModel, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """TorchScript-based export (``dynamo=False``), dynamic batch/height/width; "input" → "output"."""
    dummy = torch.rand(1, model.channels, 16, 16, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, dummy.to(_device(model)), buf, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"], do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                        "output": {0: "batch", 2: "out_height", 3: "out_width"}})
    return onnx.load_from_string(buf.getvalue())


def _device(model: SRModel) -> torch.device:
    return next(iter(model.parameters()), torch.zeros(())).device


def simplify_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim keeping the symbolic input shape (no shape overwrite), then a check that it stayed dynamic."""
    import onnxsim

    try:
        simplified, ok = onnxsim.simplify(model, check_n=0)
    except Exception as e:  # onnxsim raises plain exceptions of many kinds
        msg = f"onnxsim failed ({type(e).__name__}: {e}); retry with --no-simplify"
        raise VerificationError(msg) from None
    if not ok:
        raise VerificationError("onnxsim could not verify its result; retry with --no-simplify")
    dims = simplified.graph.input[0].type.tensor_type.shape.dim
    if not all(dims[i].dim_param for i in (0, 2, 3)):
        raise VerificationError("simplification fixed the input shape; retry with --no-simplify")
    return simplified


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Move tensor-valued Constant nodes into initializers (onnxsim leaves folded weights as Constants)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = []
    for node in out.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            out.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del out.graph.node[:]
    out.graph.node.extend(keep)
    return out


def metadata(model: SRModel, profile: tiling.TileProfile) -> dict[str, str]:
    """The metadata_props an export carries (all strings; JSON where structured)."""
    return {
        "arch": model.arch, "scale": str(model.scale), "channels": str(model.channels),
        "pre_upsample": json.dumps(bool(model.pre_upsample)), "plain": json.dumps(bool(model.plain)),
        "hparams": json.dumps(model.hparams, sort_keys=True),
        "provenance": json.dumps(list(getattr(model, "provenance", [])), sort_keys=True, default=str),
        "srcompress_version": __version__,
        tiling.META_RADIUS: str(profile.halo), tiling.META_BYTES: repr(float(profile.bytes_per_px)),
    }


def finalize(graph: onnx.ModelProto, model: SRModel, profile: tiling.TileProfile) -> bytes:
    """Fixed producer, no doc strings, our metadata only (sorted): deterministic serialized bytes."""
    graph.producer_name, graph.producer_version, graph.doc_string = PRODUCER, __version__, ""
    graph.graph.doc_string = ""
    for node in graph.graph.node:
        node.doc_string = ""
    del graph.metadata_props[:]
    for key, value in sorted(metadata(model, profile).items()):
        graph.metadata_props.add(key=key, value=value)
    return graph.SerializeToString(deterministic=True)


# -- validation ---------------------------------------------------------------------------------------------


OPT_LEVEL = "ORT_ENABLE_ALL"  # blocked channel layout: 1.7× faster than BASIC/EXTENDED on CPU (docs/benchmarks.md)


def session_options(threads: int | None = None, *, arena: bool = True, mem_pattern: bool = False,
                    level: str | None = None) -> Any:
    """onnxruntime SessionOptions as this project runs every graph: optimisation level ALL (or ``level``, a
    ``GraphOptimizationLevel`` name), sequential, one inter-op thread, ``threads`` intra-op threads (None =
    onnxruntime's choice); arena and memory pattern as given (the memory pattern makes a second run allocate
    on top of the first, hence off by default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level or OPT_LEVEL)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_cpu_mem_arena = bool(arena)
    opts.enable_mem_pattern = bool(mem_pattern)
    opts.intra_op_num_threads = int(threads or 0)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def ort_session(model: bytes | str | os.PathLike, *, threads: int | None = None,
                low_memory: bool = False) -> Any:
    """An onnxruntime CPU session with this project's settings (docs/benchmarks.md): optimisation level ALL, memory
    pattern off (it makes the second run allocate on top of the first); ``low_memory`` turns the arena off."""
    import onnxruntime as ort

    opts = session_options(threads, arena=not low_memory)
    if not isinstance(model, bytes):
        check_sr_onnx(model)  # before onnxruntime allocates anything
    source = model if isinstance(model, bytes) else str(require_file(model, "ONNX model"))
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf / … classes
        where = "the exported graph" if isinstance(model, bytes) else str(model)
        raise InputError(f"{where}: onnxruntime cannot load it ({first_line(e)})") from None


#: Bounds on an ONNX file's declared shapes, checked before onnxruntime sees it: each static dimension, the
#: input's element count, and the values its initializers (weights) declare.
MAX_ONNX_DIM = 1 << 16
MAX_ONNX_INPUT_NUMEL = 1 << 28
MAX_ONNX_WEIGHTS = 1 << 28
_FLOAT_TYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}


@dataclass
class SrSignature:
    """The image-to-image signature of an ONNX super-resolution graph: one 4-D float input, one 4-D output."""

    input_name: str
    output_name: str
    channels: int | None  # None: a symbolic channel dimension
    input_dims: list[int | str]
    output_dims: list[int | str]


def _dims(vi: Any) -> list[int | str] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def check_sr_onnx(model: onnx.ModelProto | str | os.PathLike, where: str | None = None) -> SrSignature:
    """Check that an ONNX file or model is an image-to-image SR graph with sane shapes, from its metadata
    alone (no weights loaded, no session made): one runtime input, 4-D, float32/float16, 1 or 3 channels;
    one 4-D output; static dimensions ≤ 2^16, the input ≤ 2^28 values, the initializers ≤ 2^28 values.
    An empty, unreadable or non-SR file → one InputError line."""
    if not isinstance(model, onnx.ModelProto):
        p = require_file(model, "ONNX model")
        where = where or str(p)
        try:
            model = onnx.load(str(p), load_external_data=False)
        except Exception as e:  # DecodeError, OSError, …
            raise InputError(f"{where}: not a readable ONNX model ({type(e).__name__})") from None
    where = where or "ONNX model"
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if not graph.node or not inputs or not graph.output:
        raise InputError(f"{where}: not an image-to-image ONNX model (empty graph: {len(graph.node)} nodes, "
                         f"{len(inputs)} inputs, {len(graph.output)} outputs)")
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InputError(f"{where}: not an image-to-image ONNX model ({len(inputs)} inputs and "
                         f"{len(graph.output)} outputs; expected one image in, one image out)")
    x, y = inputs[0], graph.output[0]
    if not x.type.HasField("tensor_type") or x.type.tensor_type.elem_type not in _FLOAT_TYPES:
        kind = onnx.TensorProto.DataType.Name(x.type.tensor_type.elem_type) if x.type.HasField("tensor_type") \
            else x.type.WhichOneof("value")
        raise InputError(f"{where}: input {x.name!r} is {kind}, not a float image tensor")
    xd, yd = _dims(x), _dims(y)
    if xd is None or len(xd) != 4:
        raise InputError(f"{where}: input {x.name!r} has rank {len(xd) if xd is not None else '?'}; "
                         "an image batch is 4-D (N, C, H, W)")
    if yd is not None and len(yd) != 4:
        raise InputError(f"{where}: output {y.name!r} has rank {len(yd)}; an image batch is 4-D (N, C, H, W)")
    channels = xd[1] if isinstance(xd[1], int) and xd[1] > 0 else None
    if channels is not None and channels not in (1, 3):
        raise InputError(f"{where}: input {x.name!r} has {channels} channels; an SR model takes 1 (Y) or 3 (RGB)")
    for name, dims in ((x.name, xd), (y.name, yd or [])):
        if any(isinstance(d, int) and d > MAX_ONNX_DIM for d in dims):
            raise InputError(f"{where}: {name!r} declares shape {dims} (a dimension over {MAX_ONNX_DIM})")
    static = [d for d in xd if isinstance(d, int) and d > 0]
    if math.prod(static) > MAX_ONNX_INPUT_NUMEL:
        raise InputError(f"{where}: input {x.name!r} declares {xd}: more than {MAX_ONNX_INPUT_NUMEL:,} values")
    weights = 0
    for t in graph.initializer:
        if any(d < 0 or d > (1 << 40) for d in t.dims):
            raise InputError(f"{where}: initializer {t.name!r} declares shape {list(t.dims)}")
        weights += math.prod(t.dims)
    if weights > MAX_ONNX_WEIGHTS:
        raise InputError(f"{where}: initializers declare {weights:,} values (at most {MAX_ONNX_WEIGHTS:,})")
    return SrSignature(x.name, y.name, channels, xd, yd or [])


def validate_onnx(model: SRModel, data: bytes, real_images: Sequence[torch.Tensor] | None = None, *,
                  seed: int = 0) -> tuple[list[list[int]], list[float]]:
    """Run ORT and PyTorch on a random batch and on real images → (input shapes, [max err random, real])."""
    session = ort_session(data)
    rand = torch.rand(RANDOM_SHAPE[0], model.channels, *RANDOM_SHAPE[1:],
                      generator=torch.Generator().manual_seed(seed))
    real = [model_space_input(model, img) for img in (real_images or default_real_images())]
    errors = [_max_error(model, session, [rand]), _max_error(model, session, real)]
    return [list(x.shape) for x in (rand, *real)], errors


@torch.no_grad()
def _max_error(model: SRModel, session: Any, batches: Sequence[torch.Tensor]) -> float:
    worst = 0.0
    for x in batches:
        ref = model(x.to(_device(model))).cpu().double().numpy()
        got = run_session(session, x.cpu().numpy())
        if got.shape != ref.shape:
            raise VerificationError(f"ONNX output shape {got.shape} differs from PyTorch's {ref.shape}")
        worst = worst_of([worst, float(np.abs(got.astype(np.float64) - ref).max())])
    return worst


def run_session(session: Any, x: np.ndarray) -> np.ndarray:
    """One ORT run: float32 NCHW in, the "output" tensor out."""
    return session.run(["output"], {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


# -- the plain-graph check ----------------------------------------------------------------------------------


def declared_ops(model: SRModel) -> set[str]:
    """What a model declares beyond Conv/Relu/DepthToSpace: PReLU / LeakyReLU activations, global residual."""
    kinds = {type(m).__name__ for m in model.modules()}
    ops = {op for name, op in (("PReLU", "PRelu"), ("LeakyReLU", "LeakyRelu")) if name in kinds}
    if model.hparams.get("global_residual"):
        ops.add("global_residual")
    return ops


def check_plain(onnx_model: onnx.ModelProto, declared: Iterable[str] = frozenset()) -> tuple[bool, str]:
    """Is the graph a plain chain? Returns (verdict, one-line reason).

    Plain: only Conv, Relu, DepthToSpace, Identity and the ``declared`` activations (PRelu, LeakyRelu), each
    tensor consumed once, plus mean-shift ops (Sub/Mul/Div/Add with a constant operand) before the first or
    after the last Conv; with ``"global_residual"`` declared, one Add joining the (mean-shifted) input to the
    chain's end.
    An Add of two computed tensors anywhere else is a skip connection, and a skip is what makes it not plain.
    """
    declared = set(declared)
    unknown = declared - DECLARABLE
    if unknown:
        raise ConfigError(f"unknown plain declaration(s) {sorted(unknown)}; choose from {sorted(DECLARABLE)}")
    g = _GraphView(onnx_model.graph)
    problem = g.skip_problem("global_residual" in declared) or g.op_problem(PLAIN_OPS | declared)
    if problem:
        return False, problem
    kinds = sorted({n.op_type for n in g.nodes})
    return True, f"a chain of {', '.join(kinds)} ({len(g.nodes)} nodes), no skip connection"


class _GraphView:
    """A graph's computing nodes (not those that only fold constants), consumers and 'prefix' tensors."""

    def __init__(self, graph: Any) -> None:
        self.consts = tiling.constant_names(graph)
        self.nodes = [n for n in graph.node if not self.consts.issuperset(n.output)]
        self.inputs = [i.name for i in graph.input if i.name not in self.consts]
        self.consumers: Counter[str] = Counter(t for n in self.nodes for t in self.data_inputs(n))
        self.consumers.update(o.name for o in graph.output)
        self.prefix = self._prefix()
        self.feeds_conv = self._feeds_conv()

    def data_inputs(self, node: Any) -> list[str]:
        return [t for t in node.input if t and t not in self.consts]

    def _prefix(self) -> set[str]:
        """The graph input and what the leading constant-operand ops (a mean shift) compute from it."""
        prefix = set(self.inputs)
        for n in self.nodes:
            ins = self.data_inputs(n)
            if n.op_type in _AFFINE and len(ins) == 1 and ins[0] in prefix:
                prefix.update(n.output)
        return prefix

    def _feeds_conv(self) -> set[str]:
        """Tensors from which some Conv is reachable downstream."""
        feeds: set[str] = set()
        for n in reversed(self.nodes):
            if n.op_type in ("Conv", "ConvTranspose") or feeds.intersection(n.output):
                feeds.update(self.data_inputs(n))
        return feeds

    def skip_problem(self, residual: bool) -> str | None:
        joins = 0
        for n in self.nodes:
            ins = self.data_inputs(n)
            if len(ins) < 2:
                continue
            joins += 1
            if not self._joins_input_to_end(n, ins):
                return f"{n.op_type} {n.name!r} joins two computed tensors (a skip connection)"
            if not residual or joins > 1:
                why = "not declared" if not residual else "a second join"
                return f"Add {n.name!r} adds the input to the chain's end (a global residual, {why})"
        for t, k in self.consumers.items():
            limit = 2 if residual and t in self.prefix else 1
            if k > limit:
                what = "the graph input" if t in self.inputs else f"tensor {t!r}"
                return f"{what} feeds {k} nodes (a skip connection)"
        return None

    def _joins_input_to_end(self, node: Any, ins: list[str]) -> bool:
        return bool(node.op_type == "Add" and self.prefix.intersection(ins)
                    and not self.feeds_conv.intersection(node.output))

    def op_problem(self, allowed: set[str] | frozenset[str]) -> str | None:
        for n in self.nodes:
            ins = self.data_inputs(n)
            if n.op_type in _AFFINE and len(ins) == 1:
                if ins[0] not in self.prefix and self.feeds_conv.intersection(n.output):
                    return f"{n.op_type} {n.name!r} with a constant sits between convolutions (no mean shift)"
            elif n.op_type not in allowed and not (n.op_type == "Add" and len(ins) == 2):
                return f"op {n.op_type} ({n.name!r}) is not allowed in a plain graph"
        return None


# -- reading exports back ----------------------------------------------------------------------------------


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The metadata_props of an ONNX model as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def meta_json(meta: dict[str, str], key: str, default: Any, where: str) -> Any:
    """A JSON metadata entry of an ONNX file (hparams, provenance), bounded like a checkpoint's; InputError if
    it is not JSON, too deep or too large."""
    from ..validate import check_json_data

    text = meta.get(key)
    if text is None:
        return default
    if len(text) > 1 << 22:
        raise InputError(f"{where}: metadata {key!r} is {len(text):,} characters (at most {1 << 22:,})")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InputError(f"{where}: metadata {key!r} is not valid JSON (or nested too deeply)") from None
    check_json_data(value, f"{where}: metadata {key!r}", max_depth=16, error=InputError, allow_nonfinite=True)
    if type(value) is not type(default):
        raise InputError(f"{where}: metadata {key!r} is a {type(value).__name__}, not a {type(default).__name__}")
    return value


def meta_int(meta: dict[str, str], key: str, default: int, lo: int, hi: int, where: str) -> int:
    """An integer metadata entry (scale, channels) within ``[lo, hi]``; InputError otherwise."""
    text = meta.get(key)
    if not text:
        return default
    try:
        v = int(text)
    except ValueError:
        raise InputError(f"{where}: metadata {key!r} = {text[:40]!r} is not an integer") from None
    if not lo <= v <= hi:
        raise InputError(f"{where}: metadata {key!r} = {v} is out of range [{lo}, {hi}]")
    return v


def onnx_info(path: str | os.PathLike, *, size: tuple[int, int] = (320, 180),
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``srcompress info M.onnx``: arch, hparams, params, MACs/FLOPs at LR size ``size`` (W×H), ops, plain
    verdict, receptive radius and provenance, the same keys as ``workflows.model_info`` where they apply."""
    from ..checkpoint.onnx_model import load_onnx_model
    from .bound import graph_cost, load_graph

    check_sr_onnx(path)
    where = str(path)
    model = load_graph(require_file(path, "ONNX model"))
    meta = read_metadata(model)
    # colour, scale and range as eval / upscale / --teacher see them
    loaded = load_onnx_model(path, overrides=overrides, need_range=False)
    om = loaded.model
    channels, scale, pre = om.channels, om.scale, om.pre_upsample
    (w, h), k = size, (scale if pre else 1)
    cost = graph_cost(model, (1, channels, h * k, w * k))
    plain, reason = check_plain(model, _declared_from_graph(model))
    return {"path": str(path), "format": "onnx", "arch": meta.get("arch", "unknown")[:200],
            "hparams": meta_json(meta, "hparams", {}, where) if "hparams" in meta else om.hparams,
            "params": cost.params,
            "input_size": f"{w}x{h} LR ({w * k}x{h * k} model input)", "macs": cost.flops // 2,
            "gflops": cost.flops / 1e9, "opset": _opset(model), "ops": op_histogram(model),
            "plain": plain, "plain_reason": reason, tiling.META_RADIUS: meta.get(tiling.META_RADIUS),
            "srcompress_version": meta.get("srcompress_version"), "guesses": loaded.guesses,
            "provenance": meta_json(meta, "provenance", [], where)}


def _declared_from_graph(model: onnx.ModelProto) -> set[str]:
    hparams = meta_json(read_metadata(model), "hparams", {}, "ONNX model")
    ops = {n.op_type for n in model.graph.node} & {"PRelu", "LeakyRelu"}
    return ops | ({"global_residual"} if hparams.get("global_residual") else set())


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
