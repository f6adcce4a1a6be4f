"""MemSR stage 1: the exact plain equivalent of an EDSR-style residual network (docs/plainify.md).

A residual net is first read into a :class:`TeacherChain`: one :class:`ChainStep` per conv layer of the plain
equivalent (head, two per residual block, the post-body conv), each a *dense linear map* from the states the
previous step carries to the pre-activations of the states this step carries, plus the unchanged tail. A
state is ``lin`` (a skip tensor: the head output ``f``, a block output ``r``; it may be negative) or ``relu`` (a
branch activation, ``≥ 0``). The last body step outputs the tail's input ``t`` with no activation.

The chain is then *realised* as a :class:`~sr_compress.models.plain.PlainSR` of conv → ReLU layers:

- ``pair`` (default, **choice**): a ``lin`` state ``x`` travels as the two channel groups ``relu(x)`` and
  ``relu(−x)``; a conv reading ``x`` uses ``+K`` on the first and ``−K`` on the second. Exact for every input,
  also at zero-padded borders (``relu(0) = 0``); no constant channel. Costs 2× the channels of each skip.
- ``shift`` (the paper's): ``x`` travels as ``x + C`` through the ReLU (exact while ``x > −C``). A conv reading
  ``x + C`` from a zero-padded tensor sees ``C`` only inside the image, so each layer carries a constant-one
  channel (bias 1: one inside the image, zero padding outside) through which the correction ``−C·ΣK`` enters.
  The bound ``x > −C`` is checked on calibration data and reported.

The mean shift is kept outside the chain (PlainSR's ``rgb_mean`` / ``img_range``): folding it into the first
conv is not exact at the borders.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, PlainifyError, VerificationError
from ...infer import default_real_images, model_space_input
from ...models import SRModel, build_model, count_params
from ...validate import finite_float, is_finite, within, worst_of
from ..base import StageReport, record_stage

SCHEMES = ("pair", "shift")
#: the official C = 1000 on 0–255 data; scaled by ``img_range / 255`` for nets that compute in another range
OFFICIAL_C = 1000.0
EXACT_TOLERANCE = 1e-9  # float64, relative to the teacher's output range


@dataclass
class StateVar:
    """A tensor carried between plain layers: ``lin`` (may be negative) or ``relu`` (≥ 0)."""

    name: str
    kind: str
    width: int
    module: str  # the teacher module whose output this state is ("head", "body.3", "body.3.act", ...)


@dataclass
class ChainStep:
    """One conv of the plain equivalent: pre-activations ``= conv(previous states, weight) + bias``."""

    name: str
    vars: list[StateVar]
    weight: torch.Tensor  # (Σ out widths, Σ in widths, k, k) float64
    bias: torch.Tensor  # (Σ out widths,) float64
    final: bool = False  # the last body step: no activation, its output is the tail's input

    @property
    def width(self) -> int:
        return sum(v.width for v in self.vars)

    def relu_mask(self) -> torch.Tensor:
        return torch.cat([torch.full((v.width,), v.kind == "relu") for v in self.vars])


@dataclass
class TailLayer:
    weight: torch.Tensor
    bias: torch.Tensor
    act: str = "identity"
    shuffle: int = 1


@dataclass
class TeacherChain:
    """A residual teacher as a chain of dense linear steps (float64) plus its tail."""

    steps: list[ChainStep]
    tail: list[TailLayer]
    channels: int
    scale: int
    img_range: float
    rgb_mean: list[float]
    input_module: str = "sub_mean"

    def states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The states each step outputs (linear values, ReLU on ``relu`` states) for the mean-shifted ``x``."""
        out, h = [], x.to(torch.float64)
        for s in self.steps:
            k = s.weight.shape[-1]
            pre = F.conv2d(h, s.weight, s.bias, padding=k // 2)
            mask = s.relu_mask().view(1, -1, 1, 1)
            h = torch.where(mask, pre.clamp_min(0), pre)
            out.append(h)
        return out

    def run_tail(self, t: torch.Tensor) -> torch.Tensor:
        for layer in self.tail:
            t = F.conv2d(t, layer.weight.to(t.dtype), layer.bias.to(t.dtype), padding=layer.weight.shape[-1] // 2)
            if layer.act == "relu":
                t = t.clamp_min(0)
            if layer.shuffle > 1:
                t = F.pixel_shuffle(t, layer.shuffle)
        return t


# -- reading a residual teacher ---------------------------------------------------------------------------------
def _check_conv(conv: Any, name: str) -> None:
    if not isinstance(conv, nn.Conv2d):
        raise PlainifyError(f"{name} is a {type(conv).__name__}, expected a Conv2d")
    k = conv.kernel_size
    ok = (k[0] == k[1] and k[0] % 2 == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)
          and conv.groups == 1 and conv.padding == (k[0] // 2, k[1] // 2) and conv.padding_mode == "zeros")
    if not ok:
        raise PlainifyError(f"{name}: only stride-1, undilated, ungrouped 'same' convs with zero padding and an "
                            f"odd square kernel can be made plain (got {conv})")


def _wb(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    w = conv.weight.detach().to(torch.float64).cpu()
    b = conv.bias.detach().to(torch.float64).cpu() if conv.bias is not None else torch.zeros(w.shape[0],
                                                                                               dtype=torch.float64)
    return w, b


def teacher_chain(model: SRModel) -> TeacherChain:
    """Read an EDSR-style residual net (our ``edsr`` arch; EDSR-PyTorch / BasicSR / MMagic import into it) as a
    chain of dense linear steps. Widths are read from the weights (channel-slimmed blocks are fine)."""
    arch = getattr(model, "arch", type(model).__name__)
    refusal = getattr(type(model), "plainify_refusal", None)  # each family declares it (models/<family>.py)
    if refusal:
        raise PlainifyError(f"cannot plainify {arch}: {refusal}")
    for name in ("sub_mean", "head", "body", "body_conv", "tail", "add_mean"):
        if not hasattr(model, name):
            raise PlainifyError(f"cannot plainify {arch}: no module {name!r} (only EDSR-style nets: mean shift, "
                                f"head conv, residual blocks, body conv + global skip, pixel-shuffle tail)")
    _check_conv(model.head, "head")
    wh, bh = _wb(model.head)
    f = StateVar("f", "lin", wh.shape[0], "head")
    steps = [ChainStep("head", [f], wh, bh)]
    r = f
    for j, block in enumerate(model.body):
        for part in ("conv1", "conv2", "act"):
            if not hasattr(block, part):
                raise PlainifyError(f"body.{j} ({type(block).__name__}) is not an EDSR residual block "
                                    f"(conv1 → ReLU → conv2, × res_scale, + input): no {part}")
        _check_conv(block.conv1, f"body.{j}.conv1")
        _check_conv(block.conv2, f"body.{j}.conv2")
        if type(block.act) is not nn.ReLU:
            raise PlainifyError(f"body.{j}.act is {type(block.act).__name__}; only ReLU can be made plain")
        extra = [n for n, _ in block.named_children() if n not in ("conv1", "conv2", "act")]
        if extra:
            raise PlainifyError(f"body.{j}.{extra[0]}: an op outside conv / ReLU / add cannot be made plain")
        s = float(getattr(block, "res_scale", 1.0))
        w1, b1 = _wb(block.conv1)
        w2, b2 = _wb(block.conv2)
        a = StateVar(f"a{j}", "relu", w1.shape[0], f"body.{j}.act")
        carried = [f] if r is f else [f, r]
        steps.append(_step(f"body.{j}.conv1", carried, [*carried, a],
                           {(a.name, r.name): w1}, {a.name: b1}))
        r_new = StateVar(f"r{j + 1}", "lin", w2.shape[0], f"body.{j}")
        if w2.shape[0] != r.width:
            raise PlainifyError(f"body.{j}.conv2 outputs {w2.shape[0]} channels but its skip carries {r.width}")
        steps.append(_step(f"body.{j}.conv2", [*carried, a], [f, r_new],
                           {(r_new.name, r.name): _eye(r.width, w2.shape[-1]), (r_new.name, a.name): s * w2},
                           {r_new.name: s * b2}))
        r = r_new
    _check_conv(model.body_conv, "body_conv")
    wc, bc = _wb(model.body_conv)
    if wc.shape[0] != f.width:
        raise PlainifyError(f"body_conv outputs {wc.shape[0]} channels but the global skip carries {f.width}")
    t = StateVar("t", "lin", f.width, "body_conv")
    carried = [f] if r is f else [f, r]
    skip = _eye(f.width, wc.shape[-1])
    terms = {(t.name, f.name): wc + skip} if r is f else {(t.name, r.name): wc, (t.name, f.name): skip}
    last = _step("body_conv", carried, [t], terms, {t.name: bc})
    last.final = True
    steps.append(last)
    mean = model.sub_mean.mean.detach().flatten().tolist() if hasattr(model.sub_mean, "mean") else None
    hp = getattr(model, "hparams", {})
    return TeacherChain(steps, read_tail(model.tail), int(wh.shape[1]), int(hp.get("scale", 1)),
                        float(getattr(model.sub_mean, "img_range", hp.get("img_range", 1.0))),
                        list(mean if mean is not None else hp.get("rgb_mean", [])))


def read_tail(tail: nn.Module) -> list[TailLayer]:
    """The tail as conv → activation → shuffle layers (any other module is an error naming it)."""
    layers: list[TailLayer] = []
    for name, m in tail.named_children():
        where = f"tail.{name}"
        if isinstance(m, nn.Conv2d):
            _check_conv(m, where)
            layers.append(TailLayer(*_wb(m)))
        elif isinstance(m, nn.PixelShuffle) and layers and layers[-1].shuffle == 1:
            layers[-1].shuffle = int(m.upscale_factor)
        elif type(m) is nn.ReLU and layers and layers[-1].act == "identity":
            layers[-1].act = "relu"  # ReLU commutes with the pixel shuffle before it
        else:
            raise PlainifyError(f"{where} is a {type(m).__name__}; a plain tail is conv / ReLU / PixelShuffle only")
    if not layers:
        raise PlainifyError("the tail has no conv")
    return layers


def _eye(c: int, k: int) -> torch.Tensor:
    w = torch.zeros(c, c, k, k, dtype=torch.float64)
    w[range(c), range(c), k // 2, k // 2] = 1.0
    return w


def _step(name: str, inputs: list[StateVar], outputs: list[StateVar],
          terms: dict[tuple[str, str], torch.Tensor], biases: dict[str, torch.Tensor]) -> ChainStep:
    """A dense step: output ``o`` = Σ terms[(o, i)] * input i + biases[o]; outputs named like inputs carry them."""
    k = max(w.shape[-1] for w in terms.values()) if terms else 1
    c_in, c_out = sum(v.width for v in inputs), sum(v.width for v in outputs)
    weight = torch.zeros(c_out, c_in, k, k, dtype=torch.float64)
    bias = torch.zeros(c_out, dtype=torch.float64)
    offs_in = _offsets(inputs)
    ro = 0
    for o in outputs:
        for i in inputs:
            w = terms.get((o.name, i.name))
            if w is None and o.name == i.name:
                w = _eye(o.width, k)
            if w is not None:
                p = (k - w.shape[-1]) // 2
                ci = offs_in[i.name]
                weight[ro:ro + o.width, ci:ci + i.width, p:p + w.shape[-1], p:p + w.shape[-1]] = w
        if o.name in biases:
            bias[ro:ro + o.width] = biases[o.name]
        ro += o.width
    return ChainStep(name, outputs, weight, bias)


def _offsets(vs: list[StateVar]) -> dict[str, int]:
    out, o = {}, 0
    for v in vs:
        out[v.name] = o
        o += v.width
    return out


# -- realising the chain as a PlainSR ---------------------------------------------------------------------------
@dataclass
class _Group:
    """A channel group of the realised layer: which state, its sign (pair: +1 / −1), or the ones channel."""

    var: str | None  # None: the constant-one channel
    sign: float
    width: int
    rep: str  # raw | relu | pair | shift | one


def _layout(step_vars: list[StateVar], scheme: str, final: bool) -> list[_Group]:
    groups: list[_Group] = []
    for v in step_vars:
        if final:
            groups.append(_Group(v.name, 1.0, v.width, "raw"))
        elif v.kind == "relu":
            groups.append(_Group(v.name, 1.0, v.width, "relu"))
        elif scheme == "pair":
            groups += [_Group(v.name, 1.0, v.width, "pair"), _Group(v.name, -1.0, v.width, "pair")]
        else:
            groups.append(_Group(v.name, 1.0, v.width, "shift"))
    if scheme == "shift" and not final:
        groups.append(_Group(None, 1.0, 1, "one"))
    return groups


def realise(chain: TeacherChain, scheme: str = "pair", shift_c: float | None = None,
            dtype: torch.dtype = torch.float32) -> SRModel:
    """The exact plain equivalent (a ``plain`` model with ``dtype`` weights) of ``chain`` under ``scheme``."""
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    c = default_c(chain) if shift_c is None else finite_float(shift_c, "shift C", min=0, min_open=True)
    prev: list[_Group] = [_Group("x", 1.0, chain.channels, "raw")]
    prev_vars = [StateVar("x", "lin", chain.channels, chain.input_module)]
    weights, specs = [], []
    for step in chain.steps:
        groups = _layout(step.vars, scheme, step.final)
        w, b = _realise_step(step, prev_vars, prev, groups, c)
        weights.append((w, b))
        specs.append({"out": w.shape[0], "act": "identity" if step.final else "relu"})
        prev, prev_vars = groups, step.vars
    for layer in chain.tail:
        weights.append((layer.weight, layer.bias))
        specs.append({"out": layer.weight.shape[0], "act": layer.act, "shuffle": layer.shuffle,
                      "k": layer.weight.shape[-1]})
    for spec, (w, _) in zip(specs, weights, strict=True):
        spec["k"] = int(w.shape[-1])
    model = build_model("plain", scale=chain.scale, layers=specs, channels=chain.channels, n_tail=len(chain.tail),
                        img_range=chain.img_range, rgb_mean=chain.rgb_mean or None).to(dtype)
    load_layers(model, weights)
    return model


def default_c(chain: TeacherChain) -> float:
    return OFFICIAL_C * chain.img_range / 255.0


def _realise_step(step: ChainStep, in_vars: list[StateVar], in_groups: list[_Group], out_groups: list[_Group],
                  c: float) -> tuple[torch.Tensor, torch.Tensor]:
    k = step.weight.shape[-1]
    var_in = _offsets(in_vars)
    var_out = _offsets(step.vars)
    widths = {v.name: v.width for v in step.vars}
    c_in, c_out = sum(g.width for g in in_groups), sum(g.width for g in out_groups)
    w = torch.zeros(c_out, c_in, k, k, dtype=torch.float64)
    b = torch.zeros(c_out, dtype=torch.float64)
    one_col = _group_offset(in_groups, lambda g: g.rep == "one")
    ro = 0
    for og in out_groups:
        if og.rep == "one":
            b[ro] = 1.0  # zero kernel: one inside the image, zero padding outside
            ro += 1
            continue
        o0 = var_out[og.var]
        rows = slice(o0, o0 + widths[og.var])
        co = 0
        for ig in in_groups:
            if ig.rep != "one":
                i0 = var_in[ig.var]
                kern = step.weight[rows, i0:i0 + ig.width]
                w[ro:ro + og.width, co:co + ig.width] = og.sign * ig.sign * kern
                if ig.rep == "shift":  # K*(x + C) = K*x + C·(K*ones): remove C·(K*ones) through the ones channel
                    w[ro:ro + og.width, one_col] -= og.sign * c * kern.sum(1)
            co += ig.width
        b[ro:ro + og.width] = og.sign * step.bias[rows] + (c if og.rep == "shift" else 0.0)
        ro += og.width
    return w, b


def _group_offset(groups: list[_Group], pred: Any) -> int:
    o = 0
    for g in groups:
        if pred(g):
            return o
        o += g.width
    return -1


def plain_convs(model: SRModel) -> list[nn.Conv2d]:
    return [m.conv for m in [*model.head, *model.body, *model.tail]]


def load_layers(model: SRModel, weights: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    convs = plain_convs(model)
    if len(convs) != len(weights):
        raise ValueError(f"{len(weights)} weight pairs for {len(convs)} layers")
    with torch.no_grad():
        for conv, (w, b) in zip(convs, weights, strict=True):
            conv.weight.copy_(w.to(conv.weight.dtype))
            conv.bias.copy_(b.to(conv.bias.dtype))


# -- the stage ----------------------------------------------------------------------------------------------------
@dataclass
class ExactReport(StageReport):
    scheme: str
    layers: int
    widths: list[int]  # realised conv widths of the plain equivalent (body + tail)
    teacher_params: int
    plain_params: int
    max_abs_err64: float  # |plain − teacher| in float64 on the check batch, relative to the output range
    max_abs_err32: float  # the same in float32
    output_range: float
    shift_c: float | None = None
    shift_min_state: float | None = None  # the most negative carried skip value on the calibration data
    shift_margin: float | None = None  # min_state + C (must stay > 0)
    notes: list[str] = field(default_factory=list)


def check_input(model: SRModel, seed: int = 0) -> list[torch.Tensor]:
    """Random noise (odd size, batch 2) plus real photo crops (model space, [0, 1]) to check exactness on."""

    g = torch.Generator().manual_seed(seed)
    return [torch.rand(2, model.channels, 19, 23, generator=g),
            *(model_space_input(model, img) for img in default_real_images())]


def verify(teacher: SRModel, plain64: SRModel, plain32: SRModel,
           xs: list[torch.Tensor]) -> tuple[float, float, float]:
    """(float64 error, float32 error, output range): max |plain − teacher| relative to the teacher's output
    range; ``plain64`` carries the float64 weights of the conversion, ``plain32`` the float32 ones."""
    t64, p64, p32 = copy.deepcopy(teacher).double().eval(), plain64.eval(), copy.deepcopy(plain32).float().eval()
    e64 = e32 = 0.0
    lo, hi = math.inf, -math.inf
    with torch.no_grad():
        for x in xs:
            ref = t64(x.double())
            lo, hi = -worst_of([-lo, -float(ref.min())]), worst_of([hi, float(ref.max())])
            e64 = worst_of([e64, float((p64(x.double()) - ref).abs().max())])  # NaN stays NaN (max drops it)
            e32 = worst_of([e32, float((p32(x.float()).double() - ref).abs().max())])
    rng = (hi - lo) or 1.0
    return e64 / rng, e32 / rng, rng


def shift_bound(chain: TeacherChain, x: torch.Tensor) -> float:
    """The most negative value any carried skip (``lin`` state) takes on ``x`` (mean-shifted model input)."""
    low = math.inf
    for step, h in zip(chain.steps, chain.states(x), strict=True):
        if step.final:
            continue
        mask = ~step.relu_mask()
        if mask.any():
            low = -worst_of([-low, -float(h[:, mask].min())])  # NaN-propagating min
    return low


def mean_shifted(model: SRModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.sub_mean.double()(x.double()) if hasattr(model.sub_mean, "mean") else x.double()


def plainify_exact(model: SRModel, *, scheme: str = "pair", shift_c: float | None = None, seed: int = 0,
                   calibration: torch.Tensor | None = None) -> tuple[SRModel, ExactReport]:
    """The exact plain equivalent of the residual ``model`` (not mutated), verified numerically.

    Raises :class:`PlainifyError` for a model outside conv / ReLU / add / pixel shuffle / mean shift and
    :class:`VerificationError` if the float64 difference exceeds ``EXACT_TOLERANCE`` of the output range
    (with ``shift``: if a skip value on ``calibration`` goes below −C).
    """
    src = copy.deepcopy(model).eval()
    chain = teacher_chain(src)
    plain64 = realise(chain, scheme, shift_c, dtype=torch.float64)
    plain = copy.deepcopy(plain64).float()
    xs = check_input(src, seed) + ([] if calibration is None else [calibration])
    notes: list[str] = []
    c_used = low = margin = None
    if scheme == "shift":
        c_used = default_c(chain) if shift_c is None else finite_float(shift_c, "shift C", min=0, min_open=True)
        sub = copy.deepcopy(src.sub_mean).double()
        with torch.no_grad():
            low = -worst_of(-shift_bound(chain, sub(x.double())) for x in xs)
        margin = low + c_used
        if not margin > 0:  # NaN fails too
            raise VerificationError(f"shift scheme: a skip value reaches {low:.4g} ≤ -C = {-c_used:.4g} on the "
                                    f"calibration data; raise --shift-c above {2 * -low:.4g} or use --scheme pair")
        notes.append(f"exact while every skip value stays above -C = {-c_used:g} (min seen {low:.4g})")
    e64, e32, rng = verify(src, plain64, plain, xs)
    if not within(e64, EXACT_TOLERANCE):  # NaN is a failure, never a perfect score
        raise VerificationError(f"the plain equivalent differs from the teacher by {e64:.3e} of the output range "
                                f"in float64 (tolerance {EXACT_TOLERANCE:.0e})")
    if not is_finite(e32):
        raise VerificationError(f"the plain equivalent's float32 weights give non-finite outputs (error {e32}); "
                                "a smaller --shift-c or --scheme pair keeps values in float32 range")
    params = {"scheme": scheme, "shift_c": c_used}
    record_stage(plain, model, "plainify", mode="exact", **params)
    report = ExactReport(stage="plainify", params=params, scheme=scheme, layers=len(plain_convs(plain)),
                         widths=[cv.out_channels for cv in plain_convs(plain)], teacher_params=count_params(src),
                         plain_params=count_params(plain), max_abs_err64=e64, max_abs_err32=e32, output_range=rng,
                         shift_c=c_used, shift_min_state=low, shift_margin=margin, notes=notes)
    return plain.eval(), report
