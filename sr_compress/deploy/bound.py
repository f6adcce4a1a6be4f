"""What an ONNX graph costs at a given input size, from its shapes alone (nothing is executed).

* **Theoretical activation bound**: walk the nodes in graph order (a topological schedule); a tensor is
  alive from the node that produces it (graph inputs: from the start) to its last consumer (graph outputs: to
  the end). While node *i* runs, its inputs, its outputs and every tensor still needed later are held, so
  ``bound = max_i sum(bytes of tensors alive at i)``. Weights (initializers, ``Constant`` nodes and anything
  computed from them alone) are counted apart in ``weights_bytes``. For a plain conv chain the bound is the
  input plus the output of the widest layer; a residual block adds its skip tensor; an EDSR pixel-shuffle
  upsampler dominates everything.
* **FLOPs**: 2 · multiply-accumulates of ``Conv``, ``ConvTranspose``, ``Gemm`` and ``MatMul``.
* **Params**: elements of the initializers those ops and ``PRelu`` read, directly or through a
  ``DequantizeLinear`` (int8 weights of a QDQ graph), counted by element type in ``params_by_dtype``.
* **Quantised graphs** (QDQ form, :mod:`.quantize`): the bound is taken over the graph as onnxruntime runs it,
  where every ``DequantizeLinear → op → QuantizeLinear`` of a fusable op (Conv, Add, …) is one 8-bit op
  (QLinearConv, QLinearAdd): the float tensors inside such a group are never materialised, so each tensor
  is counted with its real element size (1 byte between the convs of an int8 graph, 2 in fp16).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper, shape_inference

from ..errors import ConfigError, InputError
from .tiling import constant_names

PRECISIONS = ("int8", "fp16", "bf16")
META_PRECISION = "precision"
#: metadata: parameter elements that are zeros added for a kernel's channel alignment (not the model's)
META_ALIGN_ZEROS = "alignment_zero_params"

MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
PARAM_OPS = MAC_OPS + ("PRelu",)


@dataclass
class GraphCost:
    """Shape-derived cost of one graph at one input shape (bytes, FLOPs, element counts)."""

    input_shape: list[int]
    output_shape: list[int]
    bound_bytes: int  # peak bytes of live activations (theoretical minimum for this schedule)
    peak_node: str  # "op_type name" of the node where the peak occurs
    weights_bytes: int
    params: int
    flops: int
    params_by_dtype: dict[str, int] | None = None  # parameter elements by element type (float32, int8, …)
    activation_dtypes: dict[str, int] | None = None  # bytes at the bound's peak, by element type


@dataclass
class _Tensor:
    nbytes: int
    born: int  # index of the producing node (-1: graph input)
    last: int  # index of the last consumer (len(nodes): a graph output)


def load_graph(model: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    """The model itself, or the model read from a file (weights included; clear error when unreadable)."""
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load(str(model))
    except Exception as e:  # onnx raises DecodeError, OSError, … depending on what is wrong
        raise InputError(f"{model}: not a readable ONNX model ({type(e).__name__})") from None


def runtime_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def with_input_shape(model: onnx.ModelProto, shape: Sequence[int]) -> onnx.ModelProto:
    """A copy of ``model`` whose (first) runtime input has the fixed ``shape``; shapes inferred throughout."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    inputs = runtime_inputs(fixed.graph)
    if not inputs:
        raise InputError("the ONNX graph has no runtime input")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ConfigError(f"input {inputs[0].name!r} has rank {len(dims)}, got shape {list(shape)}")
    for d, n in zip(dims, shape, strict=True):
        d.Clear()
        d.dim_value = int(n)
    del fixed.graph.value_info[:]
    for out in fixed.graph.output:  # re-inferred from the fixed input (stale declared dims would conflict)
        out.type.tensor_type.ClearField("shape")
    try:
        return shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception as e:  # onnx's InferenceError and friends
        raise InputError(f"ONNX shape inference failed for input shape {list(shape)}: {e}") from None


def tensor_infos(model: onnx.ModelProto) -> dict[str, tuple[list[int | None], int]]:
    """``name → (dims, bytes per element)`` for every typed value and initializer (None: unknown dim)."""
    g, info = model.graph, {}
    for v in (*g.input, *g.value_info, *g.output):
        tt = v.type.tensor_type
        if tt.elem_type and tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            info[v.name] = (dims, helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize)
    for t in g.initializer:
        info[t.name] = (list(t.dims), helper.tensor_dtype_to_np_dtype(t.data_type).itemsize)
    return info


def _shape(name: str, infos: dict) -> list[int]:
    dims = infos[name][0] if name in infos else [None]
    if None in dims:
        raise InputError(f"cannot infer the shape of tensor {name!r}; export with static or inferable shapes")
    return dims


def _nbytes(name: str, infos: dict) -> int:
    return math.prod(_shape(name, infos)) * infos[name][1]


def weights_bytes(graph: onnx.GraphProto) -> int:
    """Bytes of the initializers and ``Constant`` node values."""
    total = sum(_tensor_bytes(t) for t in graph.initializer)
    for node in graph.node:
        for a in node.attribute:
            if node.op_type == "Constant" and a.type == onnx.AttributeProto.TENSOR:
                total += _tensor_bytes(a.t)
    return total


def _tensor_bytes(t: onnx.TensorProto) -> int:
    return math.prod(t.dims) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


#: ops onnxruntime runs on 8-bit tensors when they sit between DequantizeLinear and QuantizeLinear
QDQ_FUSABLE = frozenset({"Conv", "ConvTranspose", "Add", "Mul", "MatMul", "Gemm", "Concat", "Relu", "Clip",
                         "LeakyRelu", "Sigmoid", "AveragePool", "GlobalAveragePool", "MaxPool", "Transpose",
                         "Reshape", "Resize", "Slice"})


def fused_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph as onnxruntime executes a QDQ graph: each activation ``DequantizeLinear`` whose consumers are
    all :data:`QDQ_FUSABLE` ops is dropped (they read its 8-bit input), and a fusable op whose output only
    feeds one ``QuantizeLinear`` writes that 8-bit tensor itself. Graphs without QDQ nodes come back as
    they are. Shapes must already be inferred (value_info is reused)."""
    g = model.graph
    if not any(n.op_type == "DequantizeLinear" for n in g.node):
        return model
    const = constant_names(g)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    outputs = {o.name for o in g.output}
    alias: dict[str, str] = {}
    dropped: set[int] = set()
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] not in const and n.output[0] not in outputs:
            users = consumers.get(n.output[0], [])
            if users and all(u.op_type in QDQ_FUSABLE for u in users):
                alias[n.output[0]] = n.input[0]
                dropped.add(id(n))
    renamed: dict[str, str] = {}
    for n in g.node:
        if n.op_type in QDQ_FUSABLE and len(n.output) == 1 and any(alias.get(t) for t in n.input):
            users = consumers.get(n.output[0], [])
            if len(users) == 1 and users[0].op_type == "QuantizeLinear" and n.output[0] not in outputs:
                renamed[n.output[0]] = users[0].output[0]
                dropped.add(id(users[0]))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for n in g.node:
        if id(n) in dropped:
            continue
        m = onnx.NodeProto()
        m.CopyFrom(n)
        for k, t in enumerate(m.input):
            m.input[k] = alias.get(t, t)
        for k, t in enumerate(m.output):
            m.output[k] = renamed.get(t, t)
        out.graph.node.append(m)
    return out


def lifetimes(model: onnx.ModelProto) -> dict[str, _Tensor]:
    """Every activation tensor with its size and [producer, last consumer] interval in node order."""
    g, infos = model.graph, tensor_infos(model)
    const, n = constant_names(g), len(g.node)
    live = {i.name: _Tensor(_nbytes(i.name, infos), -1, -1) for i in runtime_inputs(g)}
    for idx, node in enumerate(g.node):
        for name in node.input:
            if name in live:
                live[name].last = idx
        for name in node.output:
            if name and name not in const:
                live[name] = _Tensor(_nbytes(name, infos), idx, idx)
    for o in g.output:
        if o.name in live:
            live[o.name].last = n
    return live


def activation_bound(model: onnx.ModelProto) -> tuple[int, int]:
    """``(peak bytes, node index)`` of live activations over the graph-order schedule (shapes inferred)."""
    tensors = lifetimes(model).values()
    best, at = 0, -1
    for idx in range(len(model.graph.node)):
        alive = sum(t.nbytes for t in tensors if t.born <= idx <= t.last)
        if alive > best:
            best, at = alive, idx
    return best, at


def node_flops(node: onnx.NodeProto, infos: dict) -> int:
    """2 · MACs of one Conv / ConvTranspose / Gemm / MatMul node (0 for any other op)."""
    if node.op_type not in MAC_OPS:
        return 0
    if node.op_type in ("Gemm", "MatMul"):
        a, out = _shape(node.input[0], infos), _shape(node.output[0], infos)
        k = a[-1] if not _attr(node, "transA", 0) else a[-2]
        return 2 * math.prod(out) * k
    w = _shape(node.input[1], infos)  # Conv: [C_out, C_in/g, k…]; ConvTranspose: [C_in, C_out/g, k…]
    if node.op_type == "Conv":
        return 2 * math.prod(_shape(node.output[0], infos)) * math.prod(w[1:])
    return 2 * math.prod(_shape(node.input[0], infos)) * math.prod(w[1:])


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def count_params(graph: onnx.GraphProto) -> int:
    """Elements of the parameter initializers (see :func:`params_by_dtype`)."""
    return sum(params_by_dtype(graph).values())


def model_params(model: onnx.ModelProto) -> int:
    """The model's parameters: :func:`count_params` less the zeros added for channel alignment (metadata
    ``alignment_zero_params``, written by ``quantize``); ``params_by_dtype`` still counts what is stored."""
    meta = {p.key: p.value for p in model.metadata_props}
    return count_params(model.graph) - int(meta.get(META_ALIGN_ZEROS, 0))


def _dtype_name(data_type: int) -> str:
    if data_type == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    return helper.tensor_dtype_to_np_dtype(data_type).name


def params_by_dtype(graph: onnx.GraphProto) -> dict[str, int]:
    """Elements of the initializers read by Conv/ConvTranspose/Gemm/MatMul/PRelu — directly (floating-point)
    or through a ``DequantizeLinear`` (the int8 weights and int32 biases of a QDQ graph) — by element type."""
    inits = {t.name: t for t in graph.initializer}
    dq = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    casts = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast" and n.input[0] in inits}
    used = set()
    for node in graph.node:
        if node.op_type not in PARAM_OPS:
            continue
        for name in node.input:
            src = dq.get(name) or casts.get(name) or name
            if src in inits and (src != name or helper.tensor_dtype_to_np_dtype(inits[src].data_type).kind == "f"):
                used.add(src)
    out: dict[str, int] = {}
    for name in sorted(used):
        key = _dtype_name(inits[name].data_type)
        out[key] = out.get(key, 0) + math.prod(inits[name].dims)
    return dict(sorted(out.items()))


def graph_cost(model: onnx.ModelProto | str | Path, input_shape: Sequence[int]) -> GraphCost:
    """Bound, weights, params and FLOPs of ``model`` for a runtime input of ``input_shape`` (e.g. NCHW)."""
    fixed = with_input_shape(load_graph(model), input_shape)
    infos = tensor_infos(fixed)
    runtime = fused_view(fixed)
    peak, at = activation_bound(runtime)
    node = runtime.graph.node[at] if at >= 0 else None
    return GraphCost(
        input_shape=[int(s) for s in input_shape],
        output_shape=_shape(fixed.graph.output[0].name, infos),
        bound_bytes=peak,
        peak_node=f"{node.op_type} {node.name}".strip() if node is not None else "",
        weights_bytes=weights_bytes(fixed.graph),
        params=model_params(fixed),
        flops=sum(node_flops(n, infos) for n in fixed.graph.node),
        params_by_dtype=params_by_dtype(fixed.graph),
        activation_dtypes=_peak_dtypes(runtime, at),
    )


def _peak_dtypes(model: onnx.ModelProto, at: int) -> dict[str, int]:
    """Bytes of the tensors alive at node ``at``, by element type."""
    infos, out = tensor_infos(model), {}
    if at < 0:
        return out
    elem = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.value_info,
                                                           *model.graph.output)}
    for name, t in lifetimes(model).items():
        if t.born <= at <= t.last and name in elem:
            key = _dtype_name(elem[name])
            out[key] = out.get(key, 0) + t.nbytes
    del infos
    return dict(sorted(out.items()))


def graph_precision(model: onnx.ModelProto) -> str:
    """``int8`` (QDQ or QLinear ops), ``fp16``, ``bf16`` or ``float32``: recorded metadata first, else by
    the graph's content."""
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(META_PRECISION) in PRECISIONS:
        return meta[META_PRECISION]
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger"}:
        return "int8"
    types = {t.data_type for t in model.graph.initializer}
    if onnx.TensorProto.FLOAT16 in types:
        return "fp16"
    if onnx.TensorProto.BFLOAT16 in types:
        return "bf16"
    return "float32"
