"""Quantise an SR model's ONNX graph to int8 (static QDQ) or half precision, calibrated and scored on images.

:func:`quantize` is a pure stage: a float model (our ``.pt`` checkpoint, an :class:`SRModel` or a float32
ONNX file) in, a quantised ONNX file and a :class:`QuantReport` out. Docs: docs/quantize.md.

* **int8**: onnxruntime's static quantiser in QDQ form — ``QuantizeLinear → DequantizeLinear`` pairs around
  every quantisable op, unsigned 8-bit activations (asymmetric, one scale per tensor), signed 8-bit weights
  (symmetric, per output channel with ``per_channel``), int32 biases. Activation ranges are calibrated on
  random LR patches of the calibration images (``minmax``, ``percentile`` = 99.999th percentile of |x|, or
  ``entropy`` = KL-divergence thresholds). onnxruntime fuses each ``DQ → Conv → Q`` into ``QLinearConv`` with
  8-bit tensors between the convs (see :mod:`.bench` for the settings that keep it so).
* **fp16 / bf16**: every float32 initializer and tensor becomes 16-bit; ``Cast`` nodes at the graph boundary
  keep the input and output float32, so callers feed and read the same tensors as before.
* **Plain students** (``arch = plain`` checkpoints) get the exact rewrites of
  :mod:`sr_compress.compress.equalize` first (offset folding, cross-layer range equalisation): without them
  the channel offsets of plainify's mean shift use up the 8-bit range of a per-tensor activation scale.
* **Scoring**: float and quantised graphs run (onnxruntime) on held-out images; the report gives each one's
  Y-PSNR against HR and the largest per-pixel difference between the two outputs (8-bit levels). A drop of the
  mean Y-PSNR above ``max_drop`` dB is a :class:`~sr_compress.errors.VerificationError`; nothing is written.

Inputs and outputs stay float32 NCHW at the graph boundary in every precision.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..checkpoint import load_checkpoint
from ..color import rgb_to_ycbcr, ycbcr_to_rgb
from ..compress.equalize import equalize_plain
from ..data.datasets import EvalPair, default_images, load_dataset, load_images
from ..errors import ConfigError, DataError, InputError, VerificationError, first_line
from ..fileio import atomic_write, check_output, require_file
from ..imresize import imresize
from ..metrics import psnr
from ..models import SRModel
from ..validate import finite_float, within
from .bench import inspect_model
from .bound import META_ALIGN_ZEROS, META_PRECISION, PRECISIONS, graph_precision
from .onnx import export_onnx, ort_session, run_session, session_options

METHODS = ("minmax", "percentile", "entropy")
#: default calibration: 48 random LR patches of 64×64 from the bundled training photos (the issue's setting)
DEFAULT_PATCHES = 48
DEFAULT_PATCH = 64
#: default allowed Y-PSNR drop (dB) per precision
DEFAULT_MAX_DROP = {"int8": 0.1, "fp16": 0.02, "bf16": 0.02}
#: ops a quantised SR graph may hold (anything else is refused with its name: we cannot vouch for it)
SUPPORTED_OPS = frozenset({
    "Conv", "ConvTranspose", "Relu", "PRelu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "DepthToSpace",
    "SpaceToDepth", "Add", "Sub", "Mul", "Div", "Concat", "Identity", "Reshape", "Transpose", "Resize", "Pad",
    "Slice", "Split", "Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Cast", "ReduceMean", "MatMul",
    "Gemm", "GlobalAveragePool", "AveragePool", "MaxPool", "Softmax", "Sqrt", "Pow", "Exp", "Neg", "Abs",
    "QuantizeLinear", "DequantizeLinear",
})
#: float inputs that must stay float32 in a 16-bit graph: (op, input index)
_KEEP_FLOAT32 = frozenset({("Resize", 1), ("Resize", 2), ("Pad", 2), ("Clip", 1), ("Clip", 2)})
META_QUANT = "quantization"


@dataclass
class ImageDelta:
    """One held-out image: Y-PSNR (dB, ``scale`` px cropped) of each graph against HR, and the largest
    |float − quantised| output difference in 8-bit levels."""

    name: str
    float_psnr_y: float
    quant_psnr_y: float
    max_diff_levels: float


@dataclass
class QuantReport:
    """What :func:`quantize` did and measured."""

    path: str
    source: str
    precision: str
    method: str | None
    per_channel: bool | None
    excluded: list[str]
    calibration: str
    patches: int
    patch_size: int
    evaluation: str
    images: list[ImageDelta]
    float_psnr_y: float
    quant_psnr_y: float
    drop_db: float
    max_drop_db: float
    max_diff_levels: float
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    weights_by_dtype: dict[str, int]  # bytes of initializers by element type
    rewrites: dict[str, Any] = field(default_factory=dict)  # plain-student rewrites (compress.equalize)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the stage -----------------------------------------------------------------------------------------------
def quantize(model: Any, out: str | os.PathLike, *, precision: str = "int8", calib: str | os.PathLike | None = None,
             method: str = "minmax", per_channel: bool = True, exclude: Sequence[str] = (),
             max_drop: float | None = None, eval_data: str | os.PathLike | None = None,
             patches: int = DEFAULT_PATCHES, patch_size: int = DEFAULT_PATCH, rewrite: bool = True,
             eval_max_side: int | None = 256, force: bool = False, seed: int = 0,
             rewrite_options: dict[str, Any] | None = None, align: bool = True) -> tuple[Path, QuantReport]:
    """Quantise ``model`` (``.pt``/``.onnx`` path or an :class:`SRModel`) to ``out`` in ``precision``.

    ``calib``: an image folder, or None/"default" for the bundled training photos; ``eval_data``: held-out
    images (folder, or None/"default" = the bundled validation photos), LR made by bicubic downscaling unless
    the folder holds HR/LR pairs. ``eval_max_side``: held-out HR images are centre-cropped to at most this
    side (speed; None = whole images). ``exclude``: node names kept in float (int8 only). ``rewrite``: apply
    the exact plain-student rewrites (plain checkpoints only). ``align``: pad convs with zero channels so
    onnxruntime runs each as its fused int8 kernel (:func:`align_channels`; exact; int8 only). Raises
    ConfigError / DataError / InputError for bad inputs, VerificationError when the Y-PSNR drop exceeds
    ``max_drop`` (default per precision: :data:`DEFAULT_MAX_DROP`); nothing is written then.
    """
    t0 = time.perf_counter()
    precision, method = _check_choice(precision, PRECISIONS, "precision"), _check_choice(method, METHODS, "method")
    if patches < 1 or patch_size < 8:
        raise ConfigError("need patches ≥ 1 and patch_size ≥ 8")
    limit = DEFAULT_MAX_DROP[precision] if max_drop is None else finite_float(max_drop, "max_drop")  # nan: no gate
    inputs = [model, *([calib] if calib is not None and str(calib) != "default" else []),
              *([eval_data] if eval_data is not None and str(eval_data) != "default" else [])] \
        if isinstance(model, str | os.PathLike) else []
    dest = check_output(out, inputs=inputs, force=force)
    float_bytes, info, rewrites, reference = float_graph(model, calib=calib, seed=seed, options=rewrite_options,
                                                         rewrite=rewrite and precision == "int8")
    graph = onnx.load_from_string(float_bytes)
    check_supported(graph)
    folded_graph, n_affine = fold_output_affine(graph)
    if n_affine:
        float_bytes = folded_graph.SerializeToString()
        rewrites = {**rewrites, "output_affine_folded": n_affine}
    if precision == "int8":
        missing = sorted(set(exclude) - {n.name for n in graph.graph.node})
        if missing:
            raise ConfigError(f"--exclude: no node named {', '.join(map(repr, missing))} in the graph "
                              f"(names: {', '.join(n.name for n in graph.graph.node[:6])}, …)")
        if align:
            aligned, report_align = align_channels(onnx.load_from_string(float_bytes))
            if report_align["convs"] or report_align["pads"]:
                float_bytes = aligned.SerializeToString()
                rewrites = {**rewrites, "channels_aligned": report_align}
        lr = calibration_patches(calib, info, patches, patch_size, seed)
        qbytes = quantize_int8(float_bytes, lr, method=method, per_channel=per_channel, exclude=exclude)
        moved_graph, n_moved = dequantize_after_shuffle(onnx.load_from_string(qbytes))
        if n_moved:
            qbytes = moved_graph.SerializeToString()
            rewrites = {**rewrites, "dequantize_after_shuffle": n_moved}
    else:
        if exclude:
            raise ConfigError("--exclude applies to int8 only")
        qbytes = to_half(graph, precision).SerializeToString()
    qmodel = _with_metadata(onnx.load_from_string(qbytes), precision, method, per_channel, exclude, calib,
                            rewrites.get("channels_aligned", {}).get("params", 0))
    qbytes = qmodel.SerializeToString(deterministic=True)
    session = _session(qbytes, precision)
    pairs = held_out_pairs(eval_data, info["scale"], eval_max_side)
    images = score_pairs(_session(reference, "float32"), session, pairs, info)
    fl = float(np.mean([i.float_psnr_y for i in images]))
    q = float(np.mean([i.quant_psnr_y for i in images]))
    report = QuantReport(
        path=str(dest), source=_describe(model), precision=precision,
        method=method if precision == "int8" else None, per_channel=per_channel if precision == "int8" else None,
        excluded=list(exclude), calibration=_calib_name(calib), patches=patches, patch_size=patch_size,
        evaluation=_calib_name(eval_data, "validation"), images=images, float_psnr_y=fl, quant_psnr_y=q,
        drop_db=fl - q, max_drop_db=limit, max_diff_levels=max(i.max_diff_levels for i in images),
        ops_before=_ops(graph), ops_after=_ops(qmodel), weights_by_dtype=weights_by_dtype(qmodel.graph),
        rewrites=rewrites, warnings=_warnings(graph, precision, rewrite, rewrites))
    if not np.isfinite(q) or not within(fl - q, limit):
        raise VerificationError(f"{precision} loses {fl - q:.3f} dB Y-PSNR (float {fl:.2f}, {precision} {q:.2f} dB "
                                f"on {report.evaluation}) > max drop {limit:g} dB; nothing written — try "
                                "--method percentile, --exclude the first/last conv, or a higher --max-drop")
    atomic_write(dest, lambda p: p.write_bytes(qbytes), inputs=inputs, force=force)
    report.seconds = round(time.perf_counter() - t0, 2)
    return dest, report


def _warnings(graph: onnx.ModelProto, precision: str, rewrite: bool, rewrites: dict[str, Any]) -> list[str]:
    meta = {p.key: p.value for p in graph.metadata_props}
    if precision == "int8" and rewrite and meta.get("arch") == "plain" and "layers" not in rewrites:
        return ["a plain student given as ONNX is quantised without the offset-folding rewrites (they need the "
                ".pt checkpoint); quantise the checkpoint for the best int8 quality"]
    return []


def _check_choice(value: str, choices: Sequence[str], what: str) -> str:
    v = str(value).lower()
    if v not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return v


def _describe(model: Any) -> str:
    return str(model) if isinstance(model, str | os.PathLike) else getattr(model, "arch", type(model).__name__)


def _calib_name(source: Any, split: str = "training") -> str:
    return f"bundled {split} photos" if source is None or str(source) == "default" else str(source)


def _ops(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


# -- the float graph -----------------------------------------------------------------------------------------
def float_graph(model: Any, *, calib: Any = None, rewrite: bool = True, seed: int = 0,
                options: dict[str, Any] | None = None) -> tuple[bytes, dict[str, Any], dict[str, Any], bytes]:
    """(float32 ONNX bytes, {scale, channels, pre_upsample}, rewrites report, the reference float32 bytes) of
    a model or model file: the reference is the model as given, before any rewrite (what quality is scored
    against).

    Plain checkpoints get :func:`sr_compress.compress.equalize.equalize_plain` (calibrated on ``calib``)
    before export when ``rewrite``; ONNX files are taken as they are (the rewrites need the checkpoint).
    """

    if isinstance(model, str | os.PathLike):
        path = require_file(model, "model")
        if path.suffix.lower() == ".onnx":
            data, info, rep = _onnx_float(path)
            return data, info, rep, data
        if path.suffix.lower() not in (".pt", ".pth"):
            raise InputError(f"{path}: give a .pt checkpoint or a float32 .onnx graph")

        model = load_checkpoint(path).model
    if not isinstance(model, SRModel):
        raise InputError(f"cannot quantise a {type(model).__name__}; give a .pt/.onnx path or an SRModel")
    rewrites: dict[str, Any] = {}
    model = model.eval()
    reference = _export_bytes(model)
    if not (rewrite and model.arch == "plain"):
        return reference, model_info(model), rewrites, reference

    lr = calibration_patches(calib, model_info(model), 16, DEFAULT_PATCH, seed)
    model, rep = equalize_plain(model, torch.from_numpy(lr), **(options or {}))
    return _export_bytes(model), model_info(model), rep.to_dict(), reference


def model_info(model: Any) -> dict[str, Any]:
    """What calibration and scoring need of an :class:`SRModel`: scale, channels, pre-upsampling."""
    return {"scale": int(model.scale), "channels": int(model.channels), "pre_upsample": bool(model.pre_upsample)}


def _export_bytes(model: Any) -> bytes:

    with tempfile.TemporaryDirectory(prefix="srq_") as tmp:
        path = Path(tmp) / "float.onnx"
        export_onnx(model, path)
        return path.read_bytes()


def _onnx_float(path: Path) -> tuple[bytes, dict[str, Any], dict[str, Any]]:

    data = path.read_bytes()
    try:
        graph = onnx.load_from_string(data).graph
    except Exception as e:  # DecodeError and friends
        raise InputError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    already = {n.op_type for n in graph.node} & {"QuantizeLinear", "DequantizeLinear", "QLinearConv"}
    inp = graph.input[0].type.tensor_type.elem_type if graph.input else 0
    half = any(t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16) for t in graph.initializer)
    if already or half or inp != TensorProto.FLOAT:
        raise InputError(f"{path}: already quantised or not float32; quantise the float model")
    check_supported(onnx.load_from_string(data))
    spec = inspect_model(path)
    return data, {"scale": spec.scale, "channels": spec.channels, "pre_upsample": spec.pre_upsample}, {}


def check_supported(model: onnx.ModelProto) -> None:
    """An :class:`InputError` naming the first op outside :data:`SUPPORTED_OPS`."""
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED_OPS:
            raise InputError(f"op {n.op_type} ({n.name!r}, domain {n.domain or 'ai.onnx'!r}) is not supported "
                             "by srcompress quantize")


# -- data ----------------------------------------------------------------------------------------------------
def _model_space(x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
    """RGB LR batch → what the network takes (Y for 1-channel models, bicubic-upscaled for pre-upsampling)."""

    if info["channels"] == 1:
        x = rgb_to_ycbcr(x)[:, :1]
    if info["pre_upsample"]:
        x = imresize(x, info["scale"])
    return x.float()


def calibration_patches(source: Any, info: dict[str, Any], patches: int, patch_size: int,
                        seed: int = 0) -> np.ndarray:
    """``patches`` random LR crops (N, C, p, p) float32 of the images of ``source`` (None/"default": the bundled
    training photos), each HR image bicubic-downscaled by the model's scale. DataError for a folder without
    images or images smaller than a patch."""

    images = default_images("train") if source is None or str(source) == "default" else load_images(source)
    scale, hp = info["scale"], patch_size * info["scale"]
    hrs = [im.hr for im in images if im.hr.shape[1] >= hp and im.hr.shape[2] >= hp]
    if not hrs:
        raise DataError(f"no calibration image is large enough for {patch_size}×{patch_size} LR patches at "
                        f"×{scale} in {_calib_name(source)}; pass a smaller patch size")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(patches):  # an HR crop, bicubic-downscaled: LR patches as training makes them
        hr = hrs[i % len(hrs)]
        top = int(torch.randint(0, hr.shape[1] - hp + 1, (1,), generator=gen))
        left = int(torch.randint(0, hr.shape[2] - hp + 1, (1,), generator=gen))
        lr = imresize(hr[None, :, top:top + hp, left:left + hp], 1 / scale).clamp(0, 1)
        out.append(_model_space(lr, info))
    return torch.cat(out).numpy()


def held_out_pairs(source: Any, scale: int, max_side: int | None = 256) -> list[Any]:
    """Evaluation pairs (bundled validation photos by default): HR centre-cropped to ``max_side`` (None: whole)
    and mod-cropped, LR by MATLAB-compatible bicubic downscaling — or a folder's stored HR/LR pairs, cropped
    alike."""

    items = load_dataset(None if source is None or str(source) == "default" else source, scale, "bi", "val")
    out = []
    for it in items:
        hr = it.hr
        hs, ws = (min(hr.shape[1], max_side or hr.shape[1]) // scale, min(hr.shape[2], max_side or hr.shape[2])
                  // scale)
        top, left = (hr.shape[1] // scale - hs) // 2, (hr.shape[2] // scale - ws) // 2
        hr_c = hr[:, top * scale:(top + hs) * scale, left * scale:(left + ws) * scale]
        if isinstance(it, EvalPair):
            lr = it.lr[:, top:top + hs, left:left + ws]
        else:
            lr = imresize(hr_c[None], 1 / scale)[0].clamp(0, 1)
        out.append(EvalPair(it.name, lr, hr_c))
    return out


def score_pairs(float_session: Any, quant_session: Any, pairs: Sequence[Any],
                info: dict[str, Any]) -> list[ImageDelta]:
    """Run both sessions on each pair: Y-PSNR against HR and the max output difference (8-bit levels)."""

    out = []
    for p in pairs:
        a, b = (_upscale(s, p.lr[None], info) for s in (float_session, quant_session))
        diff = float((a - b).abs().max()) * 255.0
        out.append(ImageDelta(p.name, psnr(a, p.hr, crop=info["scale"]), psnr(b, p.hr, crop=info["scale"]), diff))
    return out


def _upscale(session: Any, lr_rgb: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
    """RGB LR → RGB SR in [0, 1] through an ORT session (Y models: Cb/Cr bicubic, as :func:`super_resolve`)."""

    y = torch.from_numpy(run_session(session, _model_space(lr_rgb, info).numpy()).astype(np.float32))
    if info["channels"] == 1:
        cbcr = imresize(rgb_to_ycbcr(lr_rgb)[:, 1:], info["scale"])
        y = ycbcr_to_rgb(torch.cat([y, cbcr], 1))
    return y.clamp(0, 1)


def onnx_upscaler(path: str | os.PathLike, *, threads: int | None = None) -> tuple[Any, int, str]:
    """``(upscale, scale, precision)`` for an ONNX file (float32, int8 or fp16 alike): ``upscale`` maps an RGB LR
    batch (NCHW, [0, 1]) to the RGB SR batch in [0, 1] through onnxruntime, as :func:`infer.super_resolve` does
    for a checkpoint (Y models: Cb/Cr bicubic). For ``eval`` of ONNX files."""

    spec = inspect_model(path)
    session = ort_session(path, threads=threads)
    info = {"scale": spec.scale, "channels": spec.channels, "pre_upsample": spec.pre_upsample}

    def upscale(lr_rgb: torch.Tensor) -> torch.Tensor:
        return _upscale(session, lr_rgb, info)

    return upscale, spec.scale, graph_precision(onnx.load(str(path), load_external_data=False))


def _session(data: bytes, precision: str) -> Any:
    import onnxruntime as ort


    try:
        return ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's Fail / NotImplemented / …
        if precision in ("fp16", "bf16"):
            raise InputError(f"onnxruntime {ort.__version__} (CPU) cannot run this {precision} graph "
                             f"({first_line(e, 120)}); use another --precision") from None
        raise VerificationError(f"onnxruntime cannot load the {precision} graph ({first_line(e)})") from None


# -- exact graph rewrites around quantisation -----------------------------------------------------------------
_AFFINE_OPS = ("Div", "Mul", "Add", "Sub")


def _const_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t).astype(np.float64)
    return None


def fold_output_affine(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Fold the constant affine ops between the last ``Conv`` (→ ``DepthToSpace``) and the graph output — the
    output mean shift ``x / img_range + mean`` — into that conv's weights and bias. Exact (each output channel
    is ``a_c·x + b_c`` of its conv channels; zero padding is not involved). Returns (graph, ops folded).

    Without it an int8 graph dequantises the last conv's output to float32 and runs the affine ops on the
    full-size output image: two float32 output-sized tensors at once, the largest of the whole graph."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    if len(g.output) != 1:
        return out, 0
    producer = {o: n for n in g.node for o in n.output}
    uses = Counter(t for n in g.node for t in n.input)
    chain, t = [], g.output[0].name
    while t in producer and producer[t].op_type in _AFFINE_OPS:
        n = producer[t]
        consts = [_const_value(g, i) for i in n.input]
        if len(n.input) != 2 or consts[1] is None or consts[0] is not None or uses[n.input[0]] != 1:
            break
        chain.append((n, consts[1]))
        t = n.input[0]
    if not chain or t not in producer:
        return out, 0
    shuffle = None
    if producer[t].op_type == "DepthToSpace" and uses[t] == 1:
        shuffle = producer[t]
        t = shuffle.input[0]
    conv = producer.get(t)
    if conv is None or conv.op_type != "Conv" or uses[t] != 1 or len(conv.input) < 3:
        return out, 0
    w, b = _const_value(g, conv.input[1]), _const_value(g, conv.input[2])
    if w is None or b is None:
        return out, 0
    bs, mode = 1, "DCR"
    if shuffle is not None:
        attrs = {a.name: helper.get_attribute_value(a) for a in shuffle.attribute}
        bs, mode = int(attrs["blocksize"]), attrs.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    c_out = w.shape[0] // (bs * bs)
    a_c, b_c = np.ones(c_out), np.zeros(c_out)
    for n, k in reversed(chain):  # from the conv towards the output
        k = _per_channel(k, c_out)
        if k is None:
            return out, 0
        if n.op_type == "Div":
            a_c, b_c = a_c / k, b_c / k
        elif n.op_type == "Mul":
            a_c, b_c = a_c * k, b_c * k
        elif n.op_type == "Add":
            b_c = b_c + k
        else:
            b_c = b_c - k
    idx = np.arange(w.shape[0])
    ch = idx // (bs * bs) if mode == "CRD" else idx % c_out
    w2 = (w * a_c[ch][:, None, None, None]).astype(np.float32)
    b2 = (b * a_c[ch] + b_c[ch]).astype(np.float32)
    names = {conv.input[1]: w2, conv.input[2]: b2}
    for i, tensor in enumerate(g.initializer):
        if tensor.name in names:
            g.initializer[i].CopyFrom(numpy_helper.from_array(names[tensor.name], tensor.name))
    last = chain[0][0].output[0]
    (shuffle or conv).output[0] = last
    if shuffle is not None:
        conv.output[0] = shuffle.input[0]
    drop = {id(n) for n, _ in chain}
    keep = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    keep_init = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_init)
    del g.value_info[:]
    return out, len(chain)


#: MLAS's symmetric int8 convolution (``MlasConvSym``, x86-64): group 1, input channels a multiple of 4,
#: output channels a multiple of 8 (AVX2; 4 on AVX-512) and at least 16. Other convs fall back to im2col + GEMM
#: with an int32 buffer of the whole output and a zeroed im2col buffer of k²·C_in bytes per output pixel.
ALIGN_IN, ALIGN_OUT, MIN_OUT = 4, 8, 16
#: ops between two convs that map 0 to 0 channel by channel (padded zero channels stay zero through them)
_ZERO_PRESERVING = frozenset({"Relu", "LeakyRelu", "PRelu"})


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def align_channels(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Pad every 2-D group-1 ``Conv`` with zero channels so onnxruntime runs it as its fused symmetric int8
    kernel (:data:`ALIGN_IN`, :data:`ALIGN_OUT`, :data:`MIN_OUT`). Exact: an added output channel has zero
    weights and bias, and the convs that read it get zero weights for it; where a conv's output is read by
    anything but convs (through ReLU/LeakyReLU/PReLU), a ``Slice`` after it restores the channel count; the
    image (graph input) gets a ``Pad`` with zero channels where a conv reads it. Convs reading other tensors of
    unaligned width (a residual stream) are left as they are. Returns (graph, {"convs": padded convs,
    "channels": channels added, "slices": …, "pads": …, "params": zero parameters added}).

    On onnxruntime's CPU provider (x86-64) an unaligned ``QLinearConv`` allocates an int32 copy of its whole
    output and a k²·C_in-byte im2col row per output pixel (9·C_in for 3×3): int8 graphs then peak *above*
    float32. Aligned, the requantisation is fused and only an indirection buffer (k² pointers per pixel) is
    added."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = _ConvGraph(out.graph)
    report = {"convs": 0, "channels": 0, "slices": 0, "pads": 0, "params": 0}
    convs = [i for i, n in enumerate(out.graph.node) if g.plain_conv(n)]
    inserts = _widen_outputs(g, convs, report) + _pad_image_inputs(g, convs, report)
    if inserts:  # one rebuild at the end: the passes hold node indices
        order = sorted([(float(i), n) for i, n in enumerate(out.graph.node)] + inserts, key=lambda p: p[0])
        nodes = [n for _, n in order]
        del out.graph.node[:]
        out.graph.node.extend(nodes)
    if report["convs"] or report["pads"]:
        del out.graph.value_info[:]
    return out, report


class _ConvGraph:
    """A graph's initializers as arrays to read and replace, and which convs :func:`align_channels` may pad."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.g = graph
        self.init = {t.name: i for i, t in enumerate(graph.initializer)}
        self.uses = Counter(t for n in graph.node for t in n.input)

    def weight(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        """Input ``i`` of ``node`` when it is an initializer no other node reads."""
        if len(node.input) <= i or node.input[i] not in self.init or self.uses[node.input[i]] != 1:
            return None
        return numpy_helper.to_array(self.g.initializer[self.init[node.input[i]]])

    def put(self, name: str, value: np.ndarray) -> None:
        self.g.initializer[self.init[name]].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    def add(self, name: str, value: np.ndarray) -> None:
        self.g.initializer.append(numpy_helper.from_array(value, name))
        self.init[name] = len(self.g.initializer) - 1

    def plain_conv(self, node: onnx.NodeProto) -> bool:
        """A 2-D group-1 conv whose weight (and bias) are its own initializers."""
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = self.weight(node, 1)
        return (node.op_type == "Conv" and int(attrs.get("group", 1)) == 1 and w is not None and w.ndim == 4
                and (len(node.input) < 3 or not node.input[2] or self.weight(node, 2) is not None))


def _widen_outputs(g: _ConvGraph, convs: list[int], report: dict[str, int]) -> list[tuple[float, onnx.NodeProto]]:
    """Output channels up to the kernel's alignment; the readers get zero input weights, or a Slice follows."""
    graph_outputs = {o.name for o in g.g.output}
    # tensor → its readers, built once: a conv's output is renamed only when a Slice then writes the old name,
    # so every reader still reads the same name
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in g.g.node:
        for t in n.input:
            users.setdefault(t, []).append(n)
    inserts: list[tuple[float, onnx.NodeProto]] = []
    for at in convs:
        conv = g.g.node[at]
        w = g.weight(conv, 1)
        c_out = w.shape[0]
        extra = max(MIN_OUT, _round_up(c_out, ALIGN_OUT)) - c_out
        if not extra:
            continue
        chain, t = [], conv.output[0]
        while (len(users.get(t, [])) == 1 and t not in graph_outputs and users[t][0].op_type in _ZERO_PRESERVING
               and users[t][0].input[0] == t):
            act = users[t][0]
            if act.op_type == "PRelu" and _prelu_slope(g, act, c_out) is None:
                break
            chain.append(act)
            t = act.output[0]
        readers = users.get(t, [])
        through = t not in graph_outputs and readers and all(g.plain_conv(r) and r.input[0] == t for r in readers)
        g.put(conv.input[1], np.concatenate([w, np.zeros((extra, *w.shape[1:]), w.dtype)]))
        report["params"] += extra * int(np.prod(w.shape[1:]))
        if len(conv.input) > 2 and conv.input[2]:
            b = g.weight(conv, 2)
            g.put(conv.input[2], np.concatenate([b, np.zeros(extra, b.dtype)]))
            report["params"] += extra
        if through:
            for act in chain:
                slope = _prelu_slope(g, act, c_out) if act.op_type == "PRelu" else None
                if slope is not None and slope.size > 1:
                    g.put(act.input[1], np.concatenate([slope, np.zeros(extra, slope.dtype)]).reshape(-1, 1, 1))
                    report["params"] += extra
            for r in readers:
                wr = g.weight(r, 1)
                g.put(r.input[1], np.concatenate([wr, np.zeros((wr.shape[0], extra, *wr.shape[2:]), wr.dtype)], 1))
                report["params"] += wr.shape[0] * extra * int(np.prod(wr.shape[2:]))
        else:  # restore the channel count right after the conv
            wide = f"{conv.output[0]}_wide"
            bounds = {f"{wide}_{k}": np.array(v, np.int64) for k, v in (("starts", [0]), ("ends", [c_out]),
                                                                         ("axes", [1]))}
            for name, value in bounds.items():
                g.add(name, value)
            inserts.append((at + 0.5, helper.make_node("Slice", [wide, *bounds], [conv.output[0]],
                                                       name=f"{conv.name}_slice")))
            conv.output[0] = wide
            report["slices"] += 1
        report["convs"] += 1
        report["channels"] += extra
    return inserts


def _pad_image_inputs(g: _ConvGraph, convs: list[int], report: dict[str, int]) -> list[tuple[float, onnx.NodeProto]]:
    """Zero channels appended to the image (the graph input, or it shifted/scaled by constants) where a conv
    reads it with a channel count the kernel cannot take. Elsewhere a Pad would run in float between DQ and Q:
    not worth it."""
    image = {i.name for i in g.g.input}
    for n in g.g.node:
        if n.op_type in _AFFINE_OPS and n.input[0] in image and all(t in g.init for t in n.input[1:]):
            image.add(n.output[0])
    inserts: list[tuple[float, onnx.NodeProto]] = []
    padded: dict[str, str] = {}
    for at in convs:
        conv = g.g.node[at]
        w = g.weight(conv, 1)
        c_in = w.shape[1]
        if c_in % ALIGN_IN == 0 or conv.input[0] not in image:
            continue
        extra = _round_up(c_in, ALIGN_IN) - c_in
        src = conv.input[0]
        if src not in padded:
            padded[src] = f"{src}_padded"
            g.add(f"{padded[src]}_pads", np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64))
            inserts.append((at - 0.5, helper.make_node("Pad", [src, f"{padded[src]}_pads"], [padded[src]],
                                                       name=f"{padded[src]}_pad", mode="constant")))
            report["pads"] += 1
        conv.input[0] = padded[src]
        g.put(conv.input[1], np.concatenate([w, np.zeros((w.shape[0], extra, *w.shape[2:]), w.dtype)], 1))
        report["params"] += w.shape[0] * extra * int(np.prod(w.shape[2:]))
        report["channels"] += extra
    return inserts


def _prelu_slope(g: _ConvGraph, act: onnx.NodeProto, channels: int) -> np.ndarray | None:
    """A PReLU's slope as a flat vector of 1 or C values (None: shared, or not a scalar/per-channel constant)."""
    k = g.weight(act, 1)
    return k.reshape(-1) if k is not None and k.size in (1, channels) else None


def _per_channel(k: np.ndarray, channels: int) -> np.ndarray | None:
    """A scalar or a [1, C, 1, 1]-like constant as a length-C vector (None: not a per-channel constant)."""
    if k.size == 1:
        return np.full(channels, float(k.reshape(-1)[0]))
    if k.ndim == 4 and k.shape[0] == 1 and k.shape[2:] == (1, 1) and k.shape[1] == channels:
        return k.reshape(-1)
    if k.ndim == 3 and k.shape[1:] == (1, 1) and k.shape[0] == channels:
        return k.reshape(-1)
    return None


def dequantize_after_shuffle(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Run each ``DepthToSpace`` between a per-tensor ``DequantizeLinear`` and what follows on the 8-bit values.

    ``DQ → DepthToSpace → Q`` with equal scale and zero point (calibration sees the same values, permuted)
    becomes ``DepthToSpace`` on the 8-bit tensor; ``DQ → DepthToSpace → (output)`` becomes
    ``DepthToSpace → DQ``. Exact: a per-tensor affine map commutes with a permutation. The full-size tensor
    after the shuffle is then 8-bit, not float32. Returns (graph, shuffles moved)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    moved = 0
    for d2s in [n for n in g.node if n.op_type == "DepthToSpace"]:
        users: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for t in n.input:
                users.setdefault(t, []).append(n)
        producer = {o: n for n in g.node for o in n.output}
        outputs = {o.name for o in g.output}
        dq = producer.get(d2s.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or len(users.get(dq.output[0], [])) != 1:
            continue
        if dq.output[0] in outputs:
            continue
        scale, zero = _const_value(g, dq.input[1]), _qparam(g, dq, 2)
        if scale is None or scale.size != 1:
            continue
        after = users.get(d2s.output[0], [])
        q = after[0] if len(after) == 1 and d2s.output[0] not in outputs else None
        if q is not None and q.op_type == "QuantizeLinear" and _same_qparams(g, dq, q, scale, zero):
            d2s.input[0], d2s.output[0] = dq.input[0], q.output[0]
            drop = {id(dq), id(q)}
        else:
            mid = f"{d2s.output[0]}_q"
            d2s.input[0], dq.input[0], dq.output[0], d2s.output[0] = dq.input[0], mid, d2s.output[0], mid
            drop = {id(dq)}
        nodes = [n for n in g.node if id(n) not in drop]
        at = next(i for i, n in enumerate(nodes) if n is d2s)
        if len(drop) == 1:
            nodes.insert(at + 1, dq)
        del g.node[:]
        g.node.extend(nodes)
        moved += 1
    if moved:
        del g.value_info[:]
    return out, moved


def _qparam(g: onnx.GraphProto, node: onnx.NodeProto, i: int) -> np.ndarray | None:
    return _const_value(g, node.input[i]) if len(node.input) > i and node.input[i] else None


def _same_qparams(g: onnx.GraphProto, dq: onnx.NodeProto, q: onnx.NodeProto, scale: np.ndarray,
                  zero: np.ndarray | None) -> bool:
    s2, z2 = _const_value(g, q.input[1]), _qparam(g, q, 2)
    if s2 is None or s2.size != 1 or float(s2.reshape(-1)[0]) != float(scale.reshape(-1)[0]):
        return False
    zt1 = next((t.data_type for t in g.initializer if len(dq.input) > 2 and t.name == dq.input[2]), None)
    zt2 = next((t.data_type for t in g.initializer if len(q.input) > 2 and t.name == q.input[2]), None)
    za = 0.0 if zero is None else float(zero.reshape(-1)[0])
    zb = 0.0 if z2 is None else float(z2.reshape(-1)[0])
    return za == zb and zt1 == zt2


# -- int8 ----------------------------------------------------------------------------------------------------
class _Reader:
    """onnxruntime CalibrationDataReader over a batch of patches, one patch per call."""

    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name, self.data, self.i = name, data, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.data):
            return None
        self.i += 1
        return {self.name: np.ascontiguousarray(self.data[self.i - 1:self.i])}

    def rewind(self) -> None:
        self.i = 0


def quantize_int8(float_bytes: bytes, lr: np.ndarray, *, method: str = "minmax", per_channel: bool = True,
                  exclude: Iterable[str] = ()) -> bytes:
    """Static QDQ quantisation with onnxruntime: uint8 activations, int8 weights, calibrated on ``lr``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calib = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}[method]
    graph = onnx.load_from_string(float_bytes)
    name = graph.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="srq_") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(float_bytes)
        cwd = os.getcwd()
        os.chdir(tmp)  # the calibrator writes augmented_model.onnx into the working directory
        try:
            quantize_static(str(src), str(dst), _Reader(name, lr), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=calib,
                            nodes_to_exclude=list(exclude) or None,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "CalibPercentile": 99.999, "CalibMovingAverage": False})
        except Exception as e:  # the quantiser raises assorted ValueErrors/RuntimeErrors
            raise VerificationError(f"onnxruntime's quantiser failed ({first_line(e)})") from None
        finally:
            os.chdir(cwd)
        return dst.read_bytes()


# -- fp16 / bf16 ---------------------------------------------------------------------------------------------
def to_half(model: onnx.ModelProto, precision: str = "fp16") -> onnx.ModelProto:
    """A copy of a float32 graph computing in float16 (``fp16``) or bfloat16 (``bf16``); input and output
    stay float32 through ``Cast`` nodes at the boundary. Float inputs that must stay float32 (Resize scales,
    Pad/Clip constants) keep their type."""
    half = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.BFLOAT16
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    keep = {n.input[i] for n in g.node for op, i in _KEEP_FLOAT32 if n.op_type == op and len(n.input) > i}
    inits = []
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            t = _half_tensor(t, half)
        inits.append(t)
    del g.initializer[:]
    g.initializer.extend(inits)
    for node in g.node:
        for a in node.attribute:
            is_float = a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT
            if node.op_type == "Constant" and is_float:
                a.t.CopyFrom(_half_tensor(a.t, half))
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = half
    del g.value_info[:]
    renames = {}
    for i, v in enumerate(g.input):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT and v.name not in {t.name for t in g.initializer}:
            renames[v.name] = f"{v.name}_{precision}"
            g.node.insert(i, helper.make_node("Cast", [v.name], [renames[v.name]], to=half,
                                               name=f"cast_in_{v.name}"))
    for node in g.node:
        for k, name in enumerate(node.input):
            if name in renames and not node.name.startswith("cast_in_"):
                node.input[k] = renames[name]
    for v in g.output:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = f"{v.name}_{precision}"
            for node in g.node:
                for k, name in enumerate(node.output):
                    if name == v.name:
                        node.output[k] = inner
                for k, name in enumerate(node.input):
                    if name == v.name:
                        node.input[k] = inner
            g.node.append(helper.make_node("Cast", [inner], [v.name], to=TensorProto.FLOAT, name=f"cast_out_{v.name}"))
    return out


def _half_tensor(t: onnx.TensorProto, half: int) -> onnx.TensorProto:
    arr = numpy_helper.to_array(t).astype(np.float32)
    if half == TensorProto.FLOAT16:
        return numpy_helper.from_array(arr.astype(np.float16), t.name)
    bits = (arr.view(np.uint32) + 0x7FFF + ((arr.view(np.uint32) >> 16) & 1)) >> 16  # round to nearest even
    return helper.make_tensor(t.name, TensorProto.BFLOAT16, list(arr.shape), bits.astype("<u2").tobytes(), raw=True)


# -- reading quantised graphs --------------------------------------------------------------------------------
def weights_by_dtype(graph: onnx.GraphProto) -> dict[str, int]:
    """Bytes of the initializers by element type name (``float32``, ``int8``, ``uint8``, ``int32``, …)."""
    out: Counter[str] = Counter()
    for t in graph.initializer:
        dt = helper.tensor_dtype_to_np_dtype(t.data_type)
        name = "bfloat16" if t.data_type == TensorProto.BFLOAT16 else dt.name
        out[name] += int(np.prod(t.dims, dtype=np.int64)) * dt.itemsize
    return dict(sorted(out.items()))




def _with_metadata(model: onnx.ModelProto, precision: str, method: str, per_channel: bool,
                   exclude: Sequence[str], calib: Any, zeros: int = 0) -> onnx.ModelProto:
    meta = {p.key: p.value for p in model.metadata_props}
    meta[META_PRECISION] = precision
    if zeros:
        meta[META_ALIGN_ZEROS] = str(zeros)
    if precision == "int8":
        meta[META_QUANT] = json.dumps({"format": "QDQ", "activations": "uint8 per-tensor asymmetric",
                                       "weights": "int8 symmetric " + ("per-channel" if per_channel else
                                                                       "per-tensor"),
                                       "method": method, "excluded": list(exclude),
                                       "calibration": _calib_name(calib)}, sort_keys=True)
    del model.metadata_props[:]
    for k, v in sorted(meta.items()):
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "srcompress"
    return model
