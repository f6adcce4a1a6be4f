"""Exact tiled inference: overlapping tiles, one network run per tile, the tile centres stitched together.

A tile of the network's input, grown on every side by a halo of at least the receptive radius, holds
everything its centre's outputs depend on, so the stitched result equals whole-image inference up to
floating-point reassociation (a conv kernel may pick another algorithm per size; ≤ 1e-5 in practice). Peak
activation memory falls with the tile area (docs/benchmarks.md: 2×2 tiles of the plain ×4 chain, 49 MB instead of 67 MB,
at 1.46× the time).

Import policy: this module imports only numpy at module level, so the torch-free runner ``export/run.py``
loads this very file by path instead of keeping a copy of the tiling logic. The functions that inspect a
PyTorch model or an ONNX graph import torch / onnx when called; the runner never calls them (it reads the
radius and the activation profile from the ONNX metadata written by
:func:`sr_compress.deploy.onnx.export_onnx`).

Units: tiles, halos and radii are pixels of the network's *input* — LR pixels, or HR pixels for pre-upsampling
models such as VDSR, whose input is the bicubic-upscaled image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

try:  # part of the sr_compress package
    from ..errors import ConfigError
except ImportError:  # loaded by path from export/run.py: no package around, so a plain ValueError
    ConfigError = ValueError  # type: ignore[misc,assignment]

FLOAT_BYTES = 4
MIN_TILE = 8
PROBE = 16  # side of the probe input used to measure activation sizes (they grow with the area)
META_RADIUS = "receptive_radius"  # ONNX metadata keys written by export_onnx, read by the runner
META_BYTES = "act_bytes_per_px"
_UNTILED = 1 << 30
#: ``receptive_radius`` metadata of a network that cannot be tiled exactly (global pooling, a pooling grid tied
#: to the image size): its SRModel declares ``global_context``; whole-image inference only.
NOT_TILEABLE = -1

# ONNX ops that map each pixel to the same pixel (they do not widen the receptive field)
_POINTWISE = frozenset(
    "Relu PRelu LeakyRelu Sigmoid Tanh Clip Add Sub Mul Div Identity Cast Sum Max Min Neg Abs Elu Selu "
    "HardSigmoid HardSwish Softplus Erf Sqrt Pow Exp BatchNormalization Dropout".split()
)
_RESIZE_REACH = 3  # input pixels a Resize output may reach (cubic: 2 taps + half-pixel offset; linear: 2)


@dataclass(frozen=True)
class TileProfile:
    """What tiling needs to know about a network.

    ``halo``: receptive radius in input pixels (exact for ONNX graphs, an upper bound for PyTorch modules, or
    what the user gave); ``bytes_per_px``: estimated activation
    memory per input pixel at batch 1 in float32 (the widest layer's input + output); ``scale``: output
    pixels per input pixel of the network itself (1 for pre-upsampling models).
    """

    halo: int
    bytes_per_px: float
    scale: int


# -- the tiling itself (numpy or torch batches) ----------------------------------------------------------


def tile_spans(size: int, tile: int) -> list[tuple[int, int]]:
    """Split ``range(size)`` into ``ceil(size / tile)`` consecutive spans of near-equal length ≤ ``tile``."""
    n = -(-size // tile)
    bounds = [size * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def tiled_forward(fn: Callable[[Any], Any], x: Any, scale: int, tile: int, halo: int) -> Any:
    """Run ``fn`` on overlapping tiles of ``x``, stitch the centres: equals ``fn(x)`` when ``halo`` ≥ radius.

    ``x``: NCHW batch (numpy array or torch tensor); ``fn`` maps an NCHW crop of h×w pixels to
    ``scale·h × scale·w`` (call it under ``torch.no_grad()`` for torch models). Tiles are at most ``tile``
    input pixels square, grown by ``halo`` pixels inside the image. Returns an array of ``fn``'s type,
    ``(N, C_out, scale·H, scale·W)``.
    """
    if tile < 1 or halo < 0 or scale < 1:
        raise ConfigError(f"tile must be ≥ 1, halo ≥ 0, scale ≥ 1 (got {tile}, {halo}, {scale})")
    n, _, h, w = x.shape
    out = None
    for y0, y1 in tile_spans(h, tile):
        for x0, x1 in tile_spans(w, tile):
            cy0, cy1, cx0, cx1 = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
            y = fn(x[:, :, cy0:cy1, cx0:cx1])
            _check_tile_output(y, (cy1 - cy0) * scale, (cx1 - cx0) * scale)
            if out is None:
                out = _new_batch(y, (n, y.shape[1], h * scale, w * scale))
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = y[
                :, :, (y0 - cy0) * scale:(y1 - cy0) * scale, (x0 - cx0) * scale:(x1 - cx0) * scale]
    return out


def _check_tile_output(y: Any, h: int, w: int) -> None:
    if tuple(y.shape[-2:]) != (h, w):
        raise ConfigError(f"the network returned a {tuple(y.shape[-2:])} tile; the scale implies {(h, w)}")


def _new_batch(like: Any, shape: tuple[int, ...]) -> Any:
    if hasattr(like, "new_empty"):  # a torch tensor (duck-typed: this module does not import torch)
        return like.new_empty(shape)
    return np.empty(shape, dtype=like.dtype)


# -- choosing the tile ----------------------------------------------------------------------------------


def tile_for_memory(model_or_graph: Any, max_bytes: float) -> int:
    """Largest square tile (input px) whose estimated activation memory, halo included, fits ``max_bytes``.

    Estimate: ``(tile + 2·halo)² · bytes_per_px`` — the widest layer's input + output in float32 at batch 1.
    Weights and the runtime's own overhead (ORT arena, allocator slack; docs/benchmarks.md) are not included:
    leave room.
    ``model_or_graph``: SRModel, ONNX ModelProto, onnxruntime session of an srcompress export, or TileProfile.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, float)) or not math.isfinite(max_bytes) \
            or max_bytes <= 0:
        raise ConfigError(f"the memory cap must be a finite number > 0, got {max_bytes!r}")
    prof = check_profile(tile_profile(model_or_graph))
    side = min(math.isqrt(int(max_bytes // prof.bytes_per_px)), MAX_TILE + 2 * prof.halo)
    tile = side - 2 * prof.halo
    if tile < MIN_TILE:
        need = prof.bytes_per_px * (MIN_TILE + 2 * prof.halo) ** 2
        raise ConfigError(f"a memory cap of {max_bytes / 2**20:.3g} MiB is too small for this network: "
                          f"{MIN_TILE}-px tiles with a {prof.halo}-px halo need {need / 2**20:.3g} MiB")
    return tile


#: The largest tile side (input px) a memory cap may pick, and the largest halo a file may record.
MAX_TILE = 1 << 16
MAX_HALO = 1 << 12


def check_profile(prof: TileProfile) -> TileProfile:
    """A profile's numbers are finite and in range (they may come from a stranger's ONNX metadata); numpy-only,
    like the rest of this module."""
    checks = ((_int_in(prof.halo, 0, MAX_HALO), f"receptive radius (halo) must be in [0, {MAX_HALO}]"),
              (_finite_in(prof.bytes_per_px, 0.0, 1e12) and prof.bytes_per_px > 0,
               "activation bytes per pixel must be a finite number > 0"),
              (_int_in(prof.scale, 1, 16), "scale must be in [1, 16]"))
    for ok, msg in checks:
        if not ok:
            raise ConfigError(f"{msg}, got {prof}")
    return prof


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and lo <= v <= hi


def _finite_in(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def tile_profile(obj: Any, *, halo: int | None = None, scale: int | None = None) -> TileProfile:
    """Radius, activation bytes per input pixel and scale of an SRModel, ONNX ModelProto or ORT session.

    ``halo`` (with the network's ``scale``) replaces the structural analysis, for graphs it cannot follow."""
    if isinstance(obj, TileProfile):
        return obj
    if hasattr(obj, "onnx_graph"):  # an ONNX-backed model (sr_compress.checkpoint.onnx_model.OnnxModel)
        return _onnx_model_profile(obj, halo)
    if hasattr(obj, "get_modelmeta"):
        return profile_from_metadata(obj.get_modelmeta().custom_metadata_map)
    if halo is not None:
        if int(halo) < 0 or scale is None:
            raise ConfigError(f"a given halo needs to be >= 0 and come with the network's scale (got {halo})")
        per_px = _graph_bytes_per_px(obj) if hasattr(obj, "graph") else _module_bytes_per_px(obj)
        return TileProfile(int(halo), per_px, int(scale))
    radius, scale = _walk(obj)
    per_px = _graph_bytes_per_px(obj) if hasattr(obj, "graph") else _module_bytes_per_px(obj)
    return TileProfile(math.ceil(radius), per_px, _integer_scale(scale))


def _onnx_model_profile(model: Any, halo: int | None) -> TileProfile:
    """An ONNX-backed model's profile: its srcompress metadata, else the graph's structure (exact); a given
    ``halo`` replaces the radius (and stands in for it when the structure cannot be followed)."""
    meta = model.onnx_metadata
    if META_RADIUS in meta:
        prof = profile_from_metadata(meta)
    else:
        try:
            prof = tile_profile(model.onnx_graph)
        except ConfigError:
            if halo is None:
                raise
            net_scale = 1 if model.pre_upsample else model.scale
            prof = TileProfile(int(halo), _graph_bytes_per_px(model.onnx_graph), net_scale)
    return prof if halo is None else replace(prof, halo=int(halo))


def profile_from_metadata(meta: dict[str, str]) -> TileProfile:
    """The profile an srcompress ONNX export records in its metadata (see :data:`META_RADIUS`)."""
    try:
        pre = str(meta.get("pre_upsample", "false")).lower() in ("true", "1")
        prof = TileProfile(int(meta[META_RADIUS]), float(meta[META_BYTES]), 1 if pre else int(meta["scale"]))
    except (KeyError, ValueError) as e:
        raise ConfigError(f"the ONNX metadata has no valid {e} entry: re-export the model with srcompress, "
                          "or give the halo and the tile explicitly") from None
    if prof.halo == NOT_TILEABLE:
        raise ConfigError(f"{meta.get('arch', 'this network')}: its output depends on the whole image (its export "
                          "says so), so it cannot be tiled exactly; run it on whole images")
    return prof


def receptive_radius(model: Any) -> int:
    """Receptive radius in input pixels of an SRModel (an upper bound) or ONNX ModelProto (exact), from its
    structure: the largest |X − ⌊Y / scale⌋| over input pixels X that output pixel Y depends on.

    ONNX graphs: the exact dependence-interval walk described above ``_graph_walk`` (follows convolutions,
    transposed convolutions, depth-to-space, resize, pointwise ops, joins and channel-only ops such as Split,
    Slice, Concat, Reshape and Transpose of a channel shuffle); an op it cannot follow raises
    :class:`ConfigError` asking for the halo. PyTorch models: each conv adds ``max(pad, dilation·(k−1) − pad)``
    pixels at its own resolution ÷ the scale reached so far, a transposed conv of stride s that reach ÷ s, a
    Resize 3 input pixels, summed in module order (a skip path is never longer than the path it skips, so the
    sum bounds the longest path).
    """
    return math.ceil(_walk(model)[0])


def _integer_scale(scale: Fraction) -> int:
    if scale.denominator != 1 or scale < 1:
        raise ConfigError(f"the network's scale {scale} is not a whole number ≥ 1; exact tiling needs one")
    return int(scale)


def _reach(kernel: Sequence[int], dilation: Sequence[int], pad_begin: Sequence[int]) -> Fraction:
    """How far (pixels at the layer's input) an output pixel's inputs lie from its own position."""
    triples = zip(kernel, dilation, pad_begin, strict=False)
    return Fraction(max(max(p, d * (k - 1) - p) for k, d, p in triples))


def _walk(obj: Any) -> tuple[Fraction, Fraction]:
    reason = getattr(obj, "global_context", None)
    if reason:
        raise ConfigError(f"{getattr(obj, 'arch', type(obj).__name__)} cannot be tiled exactly: {reason}; "
                          "run it on whole images")
    radius, scale = _graph_walk(obj) if hasattr(obj, "graph") else _module_walk(obj)
    return max(radius, Fraction(1)), scale  # ≥ 1: room for a functional resampling (MSRResNet's bilinear)


# -- PyTorch models -------------------------------------------------------------------------------------


def _module_walk(model: Any) -> tuple[Fraction, Fraction]:
    from torch import nn

    radius, scale = Fraction(0), Fraction(1)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            _no_stride(m.stride, type(m).__name__)
            radius += _reach(m.kernel_size, m.dilation, _torch_padding(m)) / scale
        elif isinstance(m, nn.ConvTranspose2d):
            radius += _reach(m.kernel_size, m.dilation, m.padding) / m.stride[0] / scale
            scale *= m.stride[0]
        elif isinstance(m, nn.PixelShuffle):
            scale *= m.upscale_factor
        elif isinstance(m, nn.Upsample):
            radius += _RESIZE_REACH / scale
            factor = m.scale_factor[0] if isinstance(m.scale_factor, tuple) else m.scale_factor
            scale *= Fraction(float(factor))
    return radius, scale


def _torch_padding(conv: Any) -> tuple[int, ...]:
    if conv.padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    return (0,) * len(conv.kernel_size) if conv.padding == "valid" else conv.padding


def _no_stride(stride: Sequence[int], what: str) -> None:
    if any(s != 1 for s in stride):
        raise ConfigError(f"{what} has stride {tuple(stride)}: exact tiling supports stride-1 convs only")


def _module_bytes_per_px(model: Any) -> float:
    import torch

    sizes: list[int] = []

    def hook(_mod: Any, inputs: tuple, output: Any) -> None:
        sizes.append(sum(t.numel() for t in inputs if torch.is_tensor(t)) + output.numel())

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.channels, PROBE, PROBE, device=_device(model)))
    finally:
        for h in handles:
            h.remove()
    return FLOAT_BYTES * max(sizes) / PROBE**2


def _device(model: Any) -> Any:
    return next(model.parameters()).device


# -- ONNX graphs ----------------------------------------------------------------------------------------
#
# The graph walk is exact. Each tensor that carries pixels has a state (deps, scale, axes, rank): ``scale`` is the
# integer scale reached so far and ``deps[axis][ρ]`` the interval [lo, hi] of network-input pixels (offsets from
# ⌊Y / scale⌋) that an output position Y with Y mod scale = ρ depends on — translation invariant per residue, so
# one interval per residue describes the whole tensor. Convolutions, transposed convolutions, depth-to-space
# and resizes compose these intervals exactly (Resize: the taps of its mode, an upper bound for nearest);
# joins (Add, Concat, ...) take the union of their inputs' intervals; ops that only move channels (Concat /
# Split / Slice / Gather on a non-spatial axis, Transpose, Reshape-like ops keeping the trailing spatial dims)
# carry the state over. Anything else stops the analysis with a message asking for the halo.

_Deps = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]  # per spatial axis, per residue
_State = tuple[_Deps, int, tuple[int, int], int]
_RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
_AXIS_OPS = frozenset({"Concat", "Split", "Gather", "Softmax", "LogSoftmax"})
_RESIZE_TAPS = {"nearest": (0, 1), "linear": (0, 1), "cubic": (-1, 2)}  # around ⌊(Y + ½) / f − ½⌋


def _graph_walk(model: Any) -> tuple[Fraction, Fraction]:
    graph = model.graph
    consts = _constants(graph)
    shapes = _ProbeShapes(model)
    start: _Deps = (((0, 0),), ((0, 0),))
    state: dict[str, _State] = {i.name: (start, 1, (2, 3), 4) for i in graph.input if i.name not in consts}
    for node in graph.node:
        ins = [state[t] for t in node.input if t in state]
        if not ins or node.op_type in ("Shape", "Size"):
            continue  # constants and shape arithmetic carry no pixels
        step = _node_step(node, ins, consts, shapes)
        state.update({o: step for o in node.output if o})
    deps, scale = state[graph.output[0].name][:2]
    return Fraction(max(max(-lo, hi, 0) for axis in deps for lo, hi in axis)), Fraction(scale)


def _node_step(node: Any, ins: list[_State], consts: dict, shapes: _ProbeShapes) -> _State:
    op, a = node.op_type, _attributes(node)
    deps, scale, axes, rank = _join(node, ins)
    if op in ("Conv", "ConvTranspose", "DepthToSpace", "Resize"):
        _require_nchw(node, axes, rank)
        d, sc = _spatial_step(node, a, deps, scale, consts)
        return d, sc, axes, rank
    if op in _POINTWISE:
        return deps, scale, axes, rank
    if op in _AXIS_OPS:
        _off_spatial(node, [a.get("axis", 1 if op in ("Softmax", "LogSoftmax") else 0)], axes, rank)
        return deps, scale, axes, rank
    if op == "Slice":
        if len(node.input) < 4 or node.input[3] not in consts:
            raise ConfigError(f"Slice {node.name!r} has no constant axes; give the halo")
        _off_spatial(node, [int(v) for v in np.atleast_1d(consts[node.input[3]])], axes, rank)
        return deps, scale, axes, rank
    if op == "Transpose":
        perm = list(a.get("perm", range(rank - 1, -1, -1)))
        return deps, scale, (perm.index(axes[0]), perm.index(axes[1])), rank
    if op in _RESHAPES:
        return deps, scale, *_reshaped(node, axes, rank, shapes)
    raise ConfigError(f"cannot derive the receptive field through op {op} ({node.name!r}); give the halo "
                      "(export --halo N)")


def _join(node: Any, ins: list[_State]) -> _State:
    """One state for a node's pixel inputs: the union of their dependence intervals (same scale and layout)."""
    if any(s[1:] != ins[0][1:] for s in ins):
        raise ConfigError(f"{node.op_type} {node.name!r} joins tensors of different layouts or scales; "
                          "give the halo")
    deps = tuple(tuple((min(s[0][ax][r][0] for s in ins), max(s[0][ax][r][1] for s in ins))
                       for r in range(ins[0][1])) for ax in (0, 1))
    return deps, *ins[0][1:]  # type: ignore[return-value]


def _spatial_step(node: Any, a: dict, deps: _Deps, scale: int, consts: dict) -> tuple[_Deps, int]:
    """The exact dependence intervals after a Conv / ConvTranspose / DepthToSpace / Resize node."""
    op = node.op_type
    if op == "DepthToSpace":
        b = int(a["blocksize"])
        return tuple(_compose(d, scale, scale * b, lambda z, b=b: [z // b]) for d in deps), scale * b
    if op == "Resize":
        f = _resize_factor(node, consts)
        if f.denominator != 1:
            raise ConfigError(f"Resize {node.name!r} has a non-integer scale {f}; give the halo")
        lo, hi = _RESIZE_TAPS.get(str(a.get("mode", b"nearest"), "utf-8") if isinstance(a.get("mode"), bytes)
                                  else str(a.get("mode", "nearest")), (-1, 2))
        f = int(f)

        def taps(z: int, f: int = f) -> list[int]:
            centre = math.floor((z + 0.5) / f - 0.5)
            return list(range(centre + lo, centre + hi + 1))

        return tuple(_compose(d, scale, scale * f, taps) for d in deps), scale * f
    k = list(a.get("kernel_shape") or consts[node.input[1]].shape[2:])
    dil = list(a.get("dilations", [1] * len(k)))
    pads = list(a.get("pads", [0] * 2 * len(k)))
    stride = list(a.get("strides", [1] * len(k)))
    if op == "Conv":
        _no_stride(stride, f"Conv {node.name!r}")
        return tuple(_compose(deps[i], scale, scale, lambda z, i=i: [z - pads[i] + j * dil[i] for j in range(k[i])])
                     for i in range(2)), scale
    if stride[0] != stride[1]:
        raise ConfigError(f"ConvTranspose {node.name!r} has unequal strides {stride}; give the halo")
    t = int(stride[0])

    def sources(z: int, i: int) -> list[int]:  # deconv inputs that output z reads: z = t·src − pad + j·dil
        return [(z + pads[i] - j * dil[i]) // t for j in range(k[i]) if (z + pads[i] - j * dil[i]) % t == 0]

    return tuple(_compose(deps[i], scale, scale * t, lambda z, i=i: sources(z, i)) for i in range(2)), scale * t


def _compose(deps: Sequence[tuple[int, int]], s_in: int, s_out: int,
             sources: Callable[[int], list[int]]) -> tuple[tuple[int, int], ...]:
    """Intervals of a tensor at scale ``s_out`` whose position z reads positions ``sources(z)`` of a tensor at
    scale ``s_in`` with intervals ``deps`` (offsets from ⌊position / scale⌋)."""
    out = []
    for rho in range(s_out):  # z = rho, so ⌊z / s_out⌋ = 0
        spans = [(src // s_in + deps[src % s_in][0], src // s_in + deps[src % s_in][1]) for src in sources(rho)]
        out.append((min(lo for lo, _ in spans), max(hi for _, hi in spans)) if spans else (0, 0))
    return tuple(out)


def _require_nchw(node: Any, axes: tuple[int, int], rank: int) -> None:
    if (axes, rank) != ((2, 3), 4):
        raise ConfigError(f"{node.op_type} {node.name!r} runs on a tensor whose spatial axes are {axes} of {rank}; "
                          "give the halo")


def _off_spatial(node: Any, along: Sequence[int], axes: tuple[int, int], rank: int) -> None:
    """``node`` works along ``along`` (may be negative): fine unless that touches a spatial axis."""
    if any((x % rank) in axes for x in along):
        raise ConfigError(f"{node.op_type} {node.name!r} works along a spatial axis; the receptive field "
                          "analysis cannot follow it: give the halo")


def _reshaped(node: Any, axes: tuple[int, int], rank: int, shapes: _ProbeShapes) -> tuple[tuple[int, int], int]:
    """A reshape-like op keeps the pixels in place when the spatial axes are the trailing two before and after
    and keep their sizes (checked on a probe input of odd, unequal sides)."""
    src, dst = shapes.get(node.input[0]), shapes.get(node.output[0])
    if axes == (rank - 2, rank - 1) and src and dst and len(dst) >= 2 and dst[-2:] == src[-2:]:
        return (len(dst) - 2, len(dst) - 1), len(dst)
    raise ConfigError(f"{node.op_type} {node.name!r} may move pixels between positions; give the halo")


class _ProbeShapes:
    """Static shapes of every tensor for a 1×C×13×17 input (ONNX shape inference with data propagation),
    computed on first use."""

    H, W = 13, 17

    def __init__(self, model: Any) -> None:
        self.model, self._shapes = model, None

    def get(self, name: str) -> list[int] | None:
        if self._shapes is None:
            self._shapes = _infer_shapes(self.model, self.H, self.W)
        return self._shapes.get(name)


def _infer_shapes(model: Any, h: int, w: int) -> dict[str, list[int]]:
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for i, value in ((0, 1), (2, h), (3, w)):
        dims[i].Clear()
        dims[i].dim_value = value
    g = onnx.shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True).graph
    out = {}
    for v in (*g.input, *g.value_info, *g.output):
        d = [x.dim_value if x.HasField("dim_value") else 0 for x in v.type.tensor_type.shape.dim]
        out[v.name] = d
    return out


def _resize_factor(node: Any, consts: dict) -> Fraction:
    scales = consts.get(node.input[2]) if len(node.input) > 2 else None
    if scales is None or len(scales) < 4:
        raise ConfigError(f"Resize {node.name!r} has no constant scales; give the halo explicitly")
    return Fraction(float(scales[2])).limit_denominator(1000)


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs by name, as numpy arrays."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def constant_names(graph: Any) -> set[str]:
    """Initializers and every tensor computed from constants alone (Constant nodes, Identity of a weight, ...)."""
    names = {t.name for t in graph.initializer}
    for node in graph.node:
        if all(t in names for t in node.input if t):
            names.update(node.output)
    return names


def _graph_bytes_per_px(model: Any) -> float:
    """Widest node's non-constant inputs + outputs (float32 bytes) per input pixel (shapes at PROBE²)."""
    numel = {k: math.prod(v) for k, v in _infer_shapes(model, PROBE, PROBE).items()}
    consts = constant_names(model.graph)
    per_node = [sum(numel.get(t, 0) for t in (*n.input, *n.output) if t and t not in consts) for n in model.graph.node]
    return FLOAT_BYTES * max(per_node) / PROBE**2


# -- RGB images through PyTorch models and ORT sessions ------------------------------------------------


def onnx_fn(session: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``fn`` for :func:`tiled_forward` from an onnxruntime session: float32 NCHW numpy in, numpy out."""
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


class TiledNet:
    """Stands in for an SRModel (``scale``, ``channels``, ``pre_upsample``, call); runs tile by tile.

    ``profile`` None: one whole-image call. ``tile`` is in network-input pixels.
    """

    def __init__(self, fn: Callable, attrs: tuple[int, int, bool], profile: TileProfile | None,
                 tile: int) -> None:
        self.fn, self.profile, self.tile = fn, profile, tile
        self.scale, self.channels, self.pre_upsample = attrs

    def eval(self) -> TiledNet:
        return self

    def __call__(self, x: Any) -> Any:
        if self.profile is None:
            return self.fn(x)
        return tiled_forward(self.fn, x, self.profile.scale, self.tile, self.profile.halo)


def tiled_network(model: Any, *, tile: int | None = None, max_bytes: float | None = None,
                  halo: int | None = None) -> TiledNet:
    """Wrap an SRModel or ORT session so that calling it runs tile by tile (torch NCHW in and out).

    ``tile``: LR pixels (×scale for pre-upsampling models, whose input is HR) and/or ``max_bytes``
    (:func:`tile_for_memory`) bound the tile, the smaller wins; neither → one whole-image call.
    ``halo`` overrides the derived receptive radius (a smaller one breaks exactness).
    """
    fn, attrs = _callable(model)
    if tile is None and max_bytes is None:
        return TiledNet(fn, attrs, None, _UNTILED)
    if halo is not None and not hasattr(model, "get_modelmeta"):
        prof = tile_profile(model, halo=halo, scale=1 if attrs[2] else attrs[0])
    else:
        prof = tile_profile(model)
        prof = prof if halo is None else replace(prof, halo=int(halo))
    check_profile(prof)
    if tile is not None and not _int_in(tile, MIN_TILE, MAX_TILE):
        raise ConfigError(f"tile must be an integer in [{MIN_TILE}, {MAX_TILE}], got {tile!r}")
    limits = [tile * (attrs[0] if attrs[2] else 1)] if tile else []
    if max_bytes is not None:
        limits.append(tile_for_memory(prof, max_bytes))
    return TiledNet(fn, attrs, prof, min(limits))


def _callable(model: Any) -> tuple[Callable, tuple[int, int, bool]]:
    """A torch-in/torch-out callable and (scale, channels, pre_upsample) of an SRModel or ORT session."""
    if not hasattr(model, "get_modelmeta"):
        return model, (model.scale, model.channels, bool(model.pre_upsample))
    import torch

    meta = model.get_modelmeta().custom_metadata_map
    try:
        attrs = (int(meta["scale"]), int(meta["channels"]), meta.get("pre_upsample", "false") == "true")
    except (KeyError, ValueError):
        msg = "the ONNX graph has no scale/channels metadata: re-export it with srcompress"
        raise ConfigError(msg) from None
    run = onnx_fn(model)
    return (lambda x: torch.from_numpy(run(x.detach().cpu().numpy()))), attrs


def upscale_tiled(model: Any, lr_rgb: Any, *, tile: int | None = None, max_bytes: float | None = None,
                  halo: int | None = None) -> Any:
    """Super-resolve an RGB batch tile by tile: NCHW float32 in [0, 1] → scale× larger, clipped to [0, 1].

    ``model``: an SRModel or an onnxruntime session of an srcompress export. Colour handling (Y models,
    VDSR's bicubic-upscaled input) is :func:`sr_compress.infer.super_resolve`'s; only the network runs per
    tile, so the result equals untiled ``super_resolve`` to ≤ 1e-5. Tile options as in :func:`tiled_network`.
    """
    from ..infer import super_resolve

    return super_resolve(tiled_network(model, tile=tile, max_bytes=max_bytes, halo=halo), lr_rgb)
