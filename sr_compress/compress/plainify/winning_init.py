"""MemSR stage 2: the winning initialisation of a thin plain student (Algorithm 1; docs/plainify.md).

For every step of the teacher's plain equivalent (:mod:`.plainify`) except the last body step, the states it
carries (skip tensors and branch activations — the *linear* states, whichever realisation scheme is used) are
collected on real training patches, centred, and decomposed: ``F − b = U S Vᵀ``. Keeping rank ``r`` gives the
1×1 *bridge* ``M = U[:, :r]`` from student to teacher features; the student kernel of step ``i`` is the
teacher's step merged with the previous bridge and projected: ``K_i = M_iᵀ (W_i ∘ M_{i−1})``, bias
``M_iᵀ (c_i + ΣW_i·b_{i−1} − b_i)`` (activations treated as identity; the merged bias is exact inside the
image and approximate on the one-pixel border ring, since our students have ordinary biases).

The rank per layer comes from ``eps`` (the smallest r with relative reconstruction error ≤ ε), a fixed
``width``, or a memory budget (the smallest ε whose student's theoretical peak at a size fits, see
:func:`student_bound`). The last body step keeps the teacher width; the tail is copied (``tail="copy"``) or
replaced by one conv to ``3·s²`` + one PixelShuffle fitted by least squares (``tail="shuffle"``).
All algebra is float64.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ...data.datasets import EvalPair, load_dataset
from ...data.degrade import degrade
from ...errors import BudgetExceededError, ConfigError
from ...infer import model_space_input
from ...models import SRModel, build_model, count_params
from ...models.capture import capture_outputs
from ...validate import finite_float
from ..base import StageReport, record_stage
from .exact import TailLayer, TeacherChain, load_layers, teacher_chain

TAILS = ("copy", "shuffle")
#: Mean-shift coefficient. **choice**: 30, not the official 3 — measured (docs/results.md): 3 shifts a roughly
#: Gaussian feature by ≈ 1.2σ, so the student's ReLU clips ≈ 12 % of every feature in every layer (23.9 dB vs
#: 32.8 dB on Set5 straight after plainify of our EDSR r4f32 teacher). ``shift_coef=3`` is the paper's value.
SHIFT_COEF = 30.0
OFFICIAL_SHIFT_COEF = 3.0
DEFAULT_PATCHES, DEFAULT_PATCH, DEFAULT_COLUMNS = 16, 48, 32768  # the official sampling


@dataclass
class LayerSpectrum:
    """One decomposed step: its features' per-channel mean and eigen-decomposition of the covariance."""

    name: str
    mean: torch.Tensor  # (C,)
    basis: torch.Tensor  # (C, C) eigenvectors, columns by decreasing eigenvalue
    energy: torch.Tensor  # (C,) eigenvalues (= squared singular values), decreasing, ≥ 0
    features: torch.Tensor  # (C, N) the centred features (for P and the mean shift)
    teacher_modules: list[str]

    @property
    def width(self) -> int:
        return int(self.mean.numel())

    def error(self, r: int) -> float:
        """Relative Frobenius reconstruction error ‖F_c − M_r M_rᵀ F_c‖ / ‖F_c‖ at rank r."""
        total = float(self.energy.sum())
        return 0.0 if total <= 0 else math.sqrt(max(float(self.energy[r:].sum()), 0.0) / total)

    def rank_for(self, eps: float) -> int:
        """Smallest r ≥ 1 with error(r) ≤ eps: exponential probe, then bisection (error is non-increasing)."""
        c = self.width
        hi = 1
        while hi < c and self.error(hi) > eps:
            hi *= 2
        hi = min(hi, c)
        lo = hi // 2  # error(lo) > eps (or lo = 0)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.error(mid) <= eps:
                hi = mid
            else:
                lo = mid
        return max(1, hi)


@dataclass
class LayerRow:
    name: str
    teacher_width: int  # channels of the linear states this step carries
    student_width: int
    rel_error: float  # relative reconstruction error of the teacher features at this rank
    act: str = "relu"


@dataclass
class WinningReport(StageReport):
    mode: str  # eps | width | memory
    eps: float | None
    widths: list[int]
    layers: list[dict[str, Any]]
    tail: str
    tail_rel_error: float | None  # least-squares fit error of the shuffle tail (relative, calibration data)
    teacher_params: int
    student_params: int
    bound_size: list[int] | None  # output (width, height) the bound is computed at
    teacher_bound_bytes: int | None
    student_bound_bytes: int | None
    tail_bound_bytes: int | None  # the bound of the last body layer + tail alone (what no ε can shrink)
    tail_share: float | None  # tail_bound / student_bound
    memory_budget: int | None
    patches: int
    patch_size: int
    columns: int
    seconds: float
    notes: list[str] = field(default_factory=list)


# -- features --------------------------------------------------------------------------------------------------
def calibration_patches(model: SRModel, data: Any = None, *, patches: int = DEFAULT_PATCHES,
                        patch_size: int = DEFAULT_PATCH, seed: int = 0, degradation: str = "bi") -> torch.Tensor:
    """``patches`` random ``patch_size``² LR crops (model space, [0, 1]) of the training images (seeded).

    For HR-only images each crop is made from an HR crop with a 2-px LR margin (so the bicubic kernel sees real
    pixels), not from the whole downscaled image: the same LR values inside, a fraction of the work."""
    if patches < 1 or patch_size < 4:
        raise ConfigError(f"need ≥ 1 calibration patch of ≥ 4 px, got {patches} × {patch_size}")
    s, m = model.scale, 2
    images = load_dataset(data, s, degradation, split="train")
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(patches):
        im = images[int(torch.randint(len(images), (1,), generator=g))]
        if isinstance(im, EvalPair):
            src, side, margin = im.lr, patch_size, 0
        else:
            src, side, margin = im.hr, (patch_size + 2 * m) * s, m
        h, w = src.shape[-2:]
        if min(h, w) < side:
            raise ConfigError(f"image {im.name} ({w}x{h}) is smaller than a calibration patch ({side} px)")
        y, x = (int(torch.randint(n - side + 1, (1,), generator=g)) for n in (h, w))
        crop = src[:, y:y + side, x:x + side]
        if margin:
            crop = degrade(crop.unsqueeze(0), s, "bi" if degradation == "dn" else degradation)[0]
            crop = crop[:, margin:margin + patch_size, margin:margin + patch_size]
        out.append(crop)
    return model_space_input(model, torch.stack(out))


def spectra(model: SRModel, chain: TeacherChain, x: torch.Tensor, *, columns: int = DEFAULT_COLUMNS,
            seed: int = 0) -> tuple[list[LayerSpectrum], torch.Tensor, torch.Tensor]:
    """Spectra of every step but the last, from the teacher's own (float32) forward on ``x``; the features go
    to float64 as they are recorded, on ≤ ``columns`` random pixel columns (the same for every layer).
    Also returns the tail's input ``t`` and output (float64, full size) for fitting a shuffle tail."""

    n, _, h, w = x.shape
    total = n * h * w
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(total, generator=g)[:columns] if total > columns else None
    names = sorted({v.module for st in chain.steps[:-1] for v in st.vars}, key=_forward_order)
    feats: dict[str, torch.Tensor] = {}
    tail_io: list[torch.Tensor] = []
    net = copy.deepcopy(model).float().eval()
    handle = net.tail.register_forward_hook(lambda _m, i, o: tail_io.extend([i[0].detach(), o.detach()]))
    try:
        with torch.no_grad(), capture_outputs(net, names) as outs:
            net(x.float())
    finally:
        handle.remove()
    for name, o in zip(names, outs, strict=True):
        f = o.permute(1, 0, 2, 3).reshape(o.shape[1], -1)
        feats[name] = (f[:, idx] if idx is not None else f).double()
    out = []
    for step in chain.steps[:-1]:
        f = torch.cat([feats[v.module] for v in step.vars])
        mean = f.mean(1)
        fc = f - mean[:, None]
        evals, evecs = _eigh(fc @ fc.T)
        order = torch.argsort(evals, descending=True)
        out.append(LayerSpectrum(step.name, mean, evecs[:, order], evals[order].clamp_min(0), fc,
                                 [v.module for v in step.vars]))
    return out, tail_io[0].double(), tail_io[1].double()


def _eigh(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` on one thread: for these ≤ 1000² matrices LAPACK's threaded path is 100× slower
    on a busy machine (measured 0.5 s vs 3 ms for 192² on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(g)
    finally:
        torch.set_num_threads(threads)


def _forward_order(name: str) -> tuple[int, int]:
    """head < body.0.act < body.0 < body.1.act < …: the order the teacher's forward produces them."""
    if name == "head":
        return (-1, 0)
    parts = name.split(".")
    return (int(parts[1]), 0 if len(parts) > 2 else 1)


def choose_widths(specs: Sequence[LayerSpectrum], *, eps: float | None = None, width: int | None = None,
                  round_to: int = 1) -> list[int]:
    """Per-layer student widths from ``eps`` or a fixed ``width`` (capped at each teacher width)."""
    if (eps is None) == (width is None):
        raise ConfigError("give exactly one of eps or width")
    if round_to < 1:
        raise ConfigError(f"round_to must be ≥ 1, got {round_to}")
    if eps is not None and not 0 <= eps <= 1:
        raise ConfigError(f"eps must be in [0, 1], got {eps}")
    if width is not None and width < 1:
        raise ConfigError(f"width must be ≥ 1, got {width}")
    out = []
    for s in specs:
        r = s.rank_for(eps) if eps is not None else width
        r = min(s.width, round_to * math.ceil(r / round_to))
        out.append(int(r))
    return out


# -- the student -------------------------------------------------------------------------------------------------
@dataclass
class Bridge:
    """``teacher state ≈ weight @ student feature + bias`` (a 1×1 conv), for the step ``name``."""

    name: str
    weight: torch.Tensor  # (C_teacher, r)
    bias: torch.Tensor  # (C_teacher,)
    teacher_modules: list[str]


def bridges_for(specs: Sequence[LayerSpectrum], widths: Sequence[int],
                shift_coef: float = SHIFT_COEF) -> list[Bridge]:
    """``M_i = U[:, :r]`` and ``b_i = mean − M_i·shift`` with ``shift_k = −coef·mean(min(P_k, 0))`` (once, at r)."""
    shift_coef = finite_float(shift_coef, "shift_coef", min=0)
    out = []
    for s, r in zip(specs, widths, strict=True):
        m = s.basis[:, :r]
        p = m.T @ s.features
        shift = -shift_coef * p.clamp_max(0).mean(1)
        out.append(Bridge(s.name, m, s.mean - m @ shift, s.teacher_modules))
    return out


def student_kernels(chain: TeacherChain, bridges: Sequence[Bridge]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each step merged with the previous bridge and projected onto its own (the last step: not projected)."""
    out = []
    prev_m: torch.Tensor | None = None
    prev_b: torch.Tensor | None = None
    for i, step in enumerate(chain.steps):
        w, c = step.weight, step.bias
        if prev_m is not None:
            c = c + w.sum((2, 3)) @ prev_b
            w = torch.einsum("oikl,ir->orkl", w, prev_m)
        if i < len(bridges):
            m, b = bridges[i].weight, bridges[i].bias
            w = torch.einsum("or,oikl->rikl", m, w)
            c = m.T @ (c - b)
            prev_m, prev_b = m, b
        out.append((w, c))
    return out


def fit_shuffle_tail(t: torch.Tensor, y: torch.Tensor, scale: int, *, k: int = 3, columns: int = DEFAULT_COLUMNS,
                     seed: int = 0) -> tuple[TailLayer, float]:
    """One conv (k×k) + PixelShuffle(scale) from the tail input ``t`` fitted by least squares to the teacher
    tail's output ``y``, pixel-unshuffled."""
    s = scale
    target = F.pixel_unshuffle(y, s)  # (N, C·s², H, W)
    cols = F.unfold(t, k, padding=k // 2)  # (N, F·k², H·W)
    a = cols.permute(0, 2, 1).reshape(-1, cols.shape[1])
    y = target.permute(0, 2, 3, 1).reshape(-1, target.shape[1])
    if a.shape[0] > columns:
        idx = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed + 1))[:columns]
        a, y = a[idx], y[idx]
    a1 = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
    gram = a1.T @ a1  # normal equations (float64; a tiny ridge keeps dead input channels solvable)
    gram.diagonal().add_(1e-10 * float(gram.diagonal().mean()) + 1e-30)
    sol = torch.linalg.solve(gram, a1.T @ y)  # (F·k² + 1, C·s²)
    fit = a1 @ sol
    yc = y - y.mean(0)
    err = float((fit - y).norm() / yc.norm()) if float(yc.norm()) > 0 else 0.0
    weight = sol[:-1].T.reshape(target.shape[1], t.shape[1], k, k)
    return TailLayer(weight.contiguous(), sol[-1].contiguous(), "identity", s), err


def build_student(chain: TeacherChain, widths: Sequence[int], tail: Sequence[TailLayer]) -> SRModel:
    specs = [{"out": int(r), "act": "relu", "k": int(st.weight.shape[-1])}
             for r, st in zip(widths, chain.steps, strict=False)]
    last = chain.steps[-1]
    specs.append({"out": last.width, "act": "identity", "k": int(last.weight.shape[-1])})
    specs += [{"out": int(t.weight.shape[0]), "act": t.act, "shuffle": t.shuffle, "k": int(t.weight.shape[-1])}
              for t in tail]
    return build_model("plain", scale=chain.scale, layers=specs, channels=chain.channels, n_tail=len(tail),
                       img_range=chain.img_range, rgb_mean=chain.rgb_mean or None)


# -- memory -----------------------------------------------------------------------------------------------------
def chain_bound(layers: Sequence[dict[str, Any]], channels: int, lr_hw: tuple[int, int], *,
                mean_shift: bool = True, bytes_per: int = 4, start: int = 0) -> int:
    """The theoretical activation peak (bytes) of a plain chain, node by node as :mod:`..deploy.bound` counts
    it on the exported graph: each tensor lives from its producer to its one consumer, so the peak is the
    largest input + output of any node (Conv, Relu, DepthToSpace, the mean-shift ops). ``layers``: PlainSR
    layer specs; ``start``: count only the nodes from layer ``start`` on (the tail's share)."""
    h, w = lr_hw
    c = channels
    sizes: list[tuple[int, int]] = []  # (input elements, output elements) per node
    if mean_shift and start == 0:
        sizes.append((c * h * w, c * h * w))
    for i, spec in enumerate(layers):
        out = spec["out"]
        nodes = [(c * h * w, out * h * w)]
        if spec.get("act", "relu") != "identity":
            nodes.append((out * h * w, out * h * w))
        r = spec.get("shuffle", 1)
        if r > 1:
            nodes.append((out * h * w, out * h * w))
            h, w, out = h * r, w * r, out // (r * r)
        if i >= start:
            sizes += nodes
        c = out
    if mean_shift:
        sizes.append((c * h * w, c * h * w))
    return bytes_per * max(a + b for a, b in sizes)


def student_bound(model: SRModel, out_size: tuple[int, int], *, start: int = 0) -> int:
    """:func:`chain_bound` of a ``plain`` model at the LR size giving ``out_size`` = (width, height) output."""
    s = model.scale
    lr = (math.ceil(out_size[1] / s), math.ceil(out_size[0] / s))
    return chain_bound(model.hparams["layers"], model.channels, lr,
                       mean_shift=model.hparams.get("rgb_mean") is not None, start=start)


def _layers_for(chain: TeacherChain, widths: Sequence[int], tail: Sequence[TailLayer]) -> list[dict[str, Any]]:
    specs = [{"out": int(r), "act": "relu"} for r in widths]
    specs.append({"out": chain.steps[-1].width, "act": "identity"})
    specs += [{"out": int(t.weight.shape[0]), "act": t.act, "shuffle": t.shuffle} for t in tail]
    return specs


def _bound_of(chain: TeacherChain, widths: Sequence[int], tail: Sequence[TailLayer], lr_hw: tuple[int, int],
              start: int = 0) -> int:
    return chain_bound(_layers_for(chain, widths, tail), chain.channels, lr_hw, mean_shift=bool(chain.rgb_mean),
                       start=start)


def eps_for_budget(chain: TeacherChain, specs: Sequence[LayerSpectrum], tail: Sequence[TailLayer], budget: int,
                   lr_hw: tuple[int, int], round_to: int = 1) -> tuple[float, list[int]]:
    """The smallest ε whose student fits ``budget`` bytes at ``lr_hw``; a clear error when none does."""
    cands = sorted({0.0, 1.0, *(s.error(r) for s in specs for r in range(1, s.width + 1))})

    def fits(e: float) -> tuple[bool, list[int]]:
        ws = choose_widths(specs, eps=e, round_to=round_to)
        return _bound_of(chain, ws, tail, lr_hw) <= budget, ws

    ok, widths = fits(cands[-1])
    if not ok:
        smallest = _bound_of(chain, widths, tail, lr_hw)
        fixed = _bound_of(chain, widths, tail, lr_hw, start=len(widths))
        why = (f"the last body layer and tail alone need {fixed / 2**20:.1f} MiB"
               + (" — use --tail shuffle" if len(tail) > 1 else "")
               if fixed > budget else "even one channel per layer does not fit")
        raise BudgetExceededError(f"memory budget {budget / 2**20:.1f} MiB cannot be met: the smallest student "
                                  f"needs {smallest / 2**20:.1f} MiB ({why})")
    lo, hi = -1, len(cands) - 1  # cands[hi] fits; bisection for the first that does
    best = widths
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, ws = fits(cands[mid])
        if ok:
            hi, best = mid, ws
        else:
            lo = mid
    return cands[hi], best


# -- the stage ---------------------------------------------------------------------------------------------------
def winning_init(teacher: SRModel, *, eps: float | None = None, width: int | None = None,
                 memory_budget: int | None = None, size: tuple[int, int] = (1920, 1080), tail: str = "copy",
                 round_to: int = 1, patches: int = DEFAULT_PATCHES, patch_size: int = DEFAULT_PATCH,
                 columns: int = DEFAULT_COLUMNS, shift_coef: float = SHIFT_COEF, seed: int = 0, data: Any = None,
                 calibration: torch.Tensor | None = None,
                 dtype: torch.dtype = torch.float32) -> tuple[SRModel, list[Bridge], WinningReport]:
    """A thin plain student of the residual ``teacher`` with its bridges (Algorithm 1). Exactly one of ``eps``,
    ``width`` and ``memory_budget`` (bytes, at output ``size`` = (width, height)) picks the widths.
    ``calibration``: model-space LR patches to use instead of sampling ``patches`` crops of ``data``.
    ``dtype``: of the student's weights. The report's ``teacher_bound_bytes`` stays None here: the teacher's
    bound needs its exported graph (deploy), which ``sr_compress.ops.plainify`` fills in."""
    t0 = time.perf_counter()
    if sum(v is not None for v in (eps, width, memory_budget)) != 1:
        raise ConfigError("give exactly one of eps, width or memory_budget")
    if tail not in TAILS:
        raise ConfigError(f"unknown tail {tail!r}; choose one of {', '.join(TAILS)}")
    shift_coef = finite_float(shift_coef, "shift_coef", min=0)  # before any work: NaN/1e309 refused
    src = copy.deepcopy(teacher).eval()
    chain = teacher_chain(src)
    x = calibration if calibration is not None else calibration_patches(
        src, data, patches=patches, patch_size=patch_size, seed=seed)
    specs, t_in, t_out = spectra(src, chain, x, columns=columns, seed=seed)
    tail_layers, tail_err = list(chain.tail), None
    if tail == "shuffle":
        shuffled, tail_err = fit_shuffle_tail(t_in, t_out, chain.scale, columns=columns, seed=seed)
        tail_layers = [shuffled]
    s = chain.scale
    lr_hw = (math.ceil(size[1] / s), math.ceil(size[0] / s))
    mode = "eps" if eps is not None else "width" if width is not None else "memory"
    if memory_budget is not None:
        eps, widths = eps_for_budget(chain, specs, tail_layers, int(memory_budget), lr_hw, round_to)
    else:
        widths = choose_widths(specs, eps=eps, width=width, round_to=round_to)
    bridges = bridges_for(specs, widths, shift_coef)
    student = build_student(chain, widths, tail_layers).double()
    kernels = student_kernels(chain, bridges)
    load_layers(student, [*kernels, *((t.weight, t.bias) for t in tail_layers)])
    student = student.to(dtype).eval()
    rows = [LayerRow(sp.name, sp.width, r, sp.error(r)) for sp, r in zip(specs, widths, strict=True)]
    rows.append(LayerRow(chain.steps[-1].name, chain.steps[-1].width, chain.steps[-1].width, 0.0, "identity"))
    sb = student_bound(student, size)
    tb_tail = student_bound(student, size, start=len(widths))
    params = {"mode": mode, "eps": eps, "width": width, "memory_budget": memory_budget, "size": list(size),
              "tail": tail, "round_to": round_to, "patches": patches, "patch_size": patch_size,
              "columns": columns, "shift_coef": shift_coef, "seed": seed}
    record_stage(student, teacher, "plainify", **params)
    report = WinningReport(
        stage="plainify", params=params, mode=mode, eps=eps, widths=[int(w) for w in widths],
        layers=[vars(r) for r in rows], tail=tail, tail_rel_error=tail_err, teacher_params=count_params(src),
        student_params=count_params(student), bound_size=list(size),
        teacher_bound_bytes=None, student_bound_bytes=sb,
        tail_bound_bytes=tb_tail, tail_share=tb_tail / sb if sb else None, memory_budget=memory_budget,
        patches=int(x.shape[0]), patch_size=int(x.shape[-1]),
        columns=min(columns, x.shape[0] * x.shape[2] * x.shape[3]),
        seconds=time.perf_counter() - t0,
        notes=["student biases merge the bridges' biases: exact inside the image, approximate on the 1-px border"])
    return student, bridges, report


def bridges_extra(bridges: Sequence[Bridge], student: SRModel) -> dict[str, Any]:
    """The checkpoint ``extra`` entry for ``bridges`` (plain tensors, strings and lists: weights_only loadable)."""
    names = student_feature_names(student)
    return {"bridges": [{"name": b.name, "weight": b.weight.float().contiguous(), "bias": b.bias.float().contiguous(),
                         "teacher_modules": list(b.teacher_modules), "student_module": names[i]}
                        for i, b in enumerate(bridges)]}


def student_feature_names(student: SRModel) -> list[str]:
    """The student's plain layers in order (``head.0``, ``body.0`` …, then the tail layers)."""
    return ["head.0", *(f"body.{i}" for i in range(len(student.body))),
            *(f"tail.{i}" for i in range(len(student.tail)))]
