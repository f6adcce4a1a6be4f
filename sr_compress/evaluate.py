"""Evaluation: per-image and mean PSNR/SSIM (Y and RGB) of a model, with a bicubic reference row, and the
paper table (:func:`evaluate_table`: models × benchmark sets × scales in one call).

Y conventions (docs/metrics.md), named in every report: ``"float"`` — the 8-bit RGB output converted to BT.601
Y and kept in float (BasicSR, and the code of most papers since ~2018; the default); ``"matlab"`` — Y rounded
to 8 bits as MATLAB's ``rgb2ycbcr`` on uint8 images does (EDSR/RCAN-era MATLAB scripts, the AIL release).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.datasets import dataset_layout, eval_pairs, iter_eval_pairs
from .data.degrade import check_degradation
from .errors import ConfigError, DataError
from .fileio import atomic_write_text, check_output, require_file
from .imresize import imresize
from .infer import super_resolve
from .metrics import psnr, ssim
from .models import SRModel, build_model

#: Y conventions → how each is described in tables and JSON.
Y_CONVENTIONS = {
    "float": "Y = BT.601 luma of the 8-bit RGB images, kept in float (BasicSR; most papers since ~2018)",
    "matlab": "Y = BT.601 luma rounded to 8 bits (MATLAB rgb2ycbcr on uint8; EDSR/RCAN-era MATLAB scripts)",
}
DEFAULT_Y = "float"
#: Activation memory per network call for the paper table (the eval operation wraps every model in
#: ``deploy.tiling.tiled_network(model, max_bytes=DEFAULT_EVAL_BYTES)``: larger images run tile by tile, exactly).
DEFAULT_EVAL_BYTES = 1 << 30


def check_y(y: str) -> str:
    if y not in Y_CONVENTIONS:
        raise ConfigError(f"unknown Y convention {y!r}; choose one of: {', '.join(Y_CONVENTIONS)}")
    return y


@dataclass
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float


@dataclass
class EvalReport:
    """Scores of one method (a model, or bicubic) on a list of images. PSNR in dB, Y = BT.601 luma."""

    method: str
    scale: int
    images: list[ImageScore] = field(default_factory=list)
    #: the super-resolved images by name ((3,H,W) RGB in [0,1]) when asked for (``keep_outputs``); not serialised
    outputs: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    #: the Y convention of ``psnr_y``/``ssim_y`` (a key of ``Y_CONVENTIONS``)
    y: str = DEFAULT_Y

    @property
    def mean(self) -> ImageScore:
        n = max(len(self.images), 1)
        return ImageScore("mean", *(sum(getattr(i, k) for i in self.images) / n
                                    for k in ("psnr_y", "ssim_y", "psnr_rgb")))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        return cls(d["method"], int(d["scale"]), [ImageScore(**i) for i in d["images"]],
                   y=d.get("y", "matlab"))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "scale": self.scale, "y": self.y, "mean": asdict(self.mean),
                "images": [asdict(i) for i in self.images],
                "convention": f"{Y_CONVENTIONS[self.y]}; RGB PSNR on the 8-bit RGB; `scale` px cropped per "
                              "border; SSIM 11x11 Gaussian sigma 1.5 on Y"}


def score(name: str, sr: torch.Tensor, hr: torch.Tensor, scale: int, *, y: str = DEFAULT_Y) -> ImageScore:
    """Scores of one (3,H,W) or (1,3,H,W) RGB prediction in [0,1] against its HR image (Y convention ``y``)."""
    round_y = check_y(y) == "matlab"
    return ImageScore(name, psnr(sr, hr, crop=scale, y=True, round_y=round_y),
                      ssim(sr, hr, crop=scale, y=True, round_y=round_y), psnr(sr, hr, crop=scale, y=False))


def eval_pairs_for(data: str | Path | None, scale: int, degradation: str = "bi") -> list:
    """Validation pairs of ``data``: the bundled photos (None / "default") or a folder (HR-only or HR/LR)."""
    return eval_pairs(None if data in (None, "default") else Path(data), scale, degradation=degradation)


def evaluate_model(model: SRModel, pairs: list, *, method: str | None = None,
                   keep_outputs: bool = False, y: str = DEFAULT_Y) -> EvalReport:
    """Super-resolve every ``EvalPair(name, lr, hr)`` (RGB (3,h,w)/(3,H,W) in [0,1]) and score it."""
    return _evaluate(method or model.arch, model.scale, pairs, lambda lr: super_resolve(model, lr), keep_outputs,
                     y)


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic reference: MATLAB-compatible ``imresize`` by ``scale``, clipped to [0, 1]."""
    return imresize(lr, scale).clamp(0, 1)


def evaluate_bicubic(pairs: list, scale: int, *, keep_outputs: bool = False, y: str = DEFAULT_Y) -> EvalReport:
    """The bicubic (MATLAB-compatible) reference row."""
    return _evaluate("bicubic", scale, pairs, lambda lr: bicubic_upscale(lr, scale), keep_outputs, y)


def evaluate_upscaler(method: str, scale: int, pairs: list, upscale, *, keep_outputs: bool = False,
                      y: str = DEFAULT_Y) -> EvalReport:
    """Score any ``upscale`` function (RGB LR batch → RGB SR batch in [0, 1]), e.g. an ONNX graph's runner."""
    return _evaluate(method, scale, pairs, upscale, keep_outputs, y)


def _evaluate(method: str, scale: int, pairs: list, upscale, keep_outputs: bool, y: str) -> EvalReport:
    report = EvalReport(method, scale, y=check_y(y))
    for p in pairs:
        sr = upscale(p.lr.unsqueeze(0))[0]
        report.images.append(score(p.name, sr, p.hr, scale, y=y))
        if keep_outputs:
            report.outputs[p.name] = sr
    return report


# -- the paper table: models × sets × scales ----------------------------------------------------------------------
@dataclass
class TableSet:
    """One evaluated set at one scale: its name, folder, detected layout (one line) and reading notes."""

    name: str
    path: str
    scale: int
    layout: str
    notes: list[str] = field(default_factory=list)


@dataclass
class EvalTable:
    """Scores of methods (bicubic first) on sets at scales: ``reports[(method, set, scale)]``.

    A model with a fixed scale has no entry at the other scales (shown as "–")."""

    y: str
    scales: list[int]
    methods: list[str]
    sets: list[TableSet]
    reports: dict[tuple[str, str, int], EvalReport] = field(default_factory=dict)

    @property
    def set_names(self) -> list[str]:
        return list(dict.fromkeys(s.name for s in self.sets))

    def mean(self, method: str, set_name: str, scale: int) -> ImageScore | None:
        r = self.reports.get((method, set_name, scale))
        return r.mean if r is not None else None

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for scale in self.scales:
            for m in self.methods:
                cells = {}
                for name in self.set_names:
                    r = self.reports.get((m, name, scale))
                    cells[name] = None if r is None else {
                        **{k: v for k, v in asdict(r.mean).items() if k != "name"},
                        "images": [asdict(i) for i in r.images]}
                rows.append({"method": m, "scale": scale, "sets": cells})
        return {"y": self.y, "convention": f"{Y_CONVENTIONS[self.y]}; PSNR/SSIM on Y, RGB PSNR on the 8-bit RGB; "
                "`scale` px cropped per border; SSIM 11x11 Gaussian sigma 1.5; mean over images",
                "scales": self.scales, "methods": self.methods,
                "sets": [asdict(s) for s in self.sets], "rows": rows}

    def to_markdown(self) -> str:
        names = self.set_names
        lines = [f"Y-PSNR (dB) / SSIM; Y convention **{self.y}**: {Y_CONVENTIONS[self.y]}. `scale` px cropped "
                 "at each border; mean over the images of each set.", "",
                 "| scale | method | " + " | ".join(names) + " |",
                 "|---|---|" + "---:|" * len(names)]
        for scale in self.scales:
            for m in self.methods:
                cells = []
                for n in names:
                    v = self.mean(m, n, scale)
                    cells.append("–" if v is None else f"{v.psnr_y:.2f} / {v.ssim_y:.4f}")
                lines.append(f"| ×{scale} | {m} | " + " | ".join(cells) + " |")
        lines.append("")
        for s in self.sets:
            lines.append(f"- {s.name} ×{s.scale}: {s.layout}" + "".join(f"; {n}" for n in s.notes))
        return "\n".join(lines) + "\n"


def model_at_scale(model: SRModel, scale: int) -> SRModel | None:
    """``model`` for ``scale``: itself, a copy with the other scale for pre-upsampling models (VDSR: one net,
    any scale), or None (a model made for another scale)."""
    if model.scale == scale:
        return model
    if not model.pre_upsample:
        return None
    other = build_model(model.arch, **{**model.hparams, "scale": scale})
    other.load_state_dict(model.state_dict())
    return other.eval()


def _dataset_list(datasets: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]) -> list[tuple[str, str]]:
    if isinstance(datasets, Mapping):
        return [(str(k), str(v)) for k, v in datasets.items()]
    return [(("default" if str(d) == "default" else Path(d).name), str(d)) for d in datasets]


def evaluate_table(models: Mapping[str, SRModel], datasets: Mapping[str, str | os.PathLike] | Sequence,
                   scales: int | Sequence[int] | None = None, *, y: str = DEFAULT_Y, degradation: str = "bi",
                   with_bicubic: bool = True, wrap: Callable[[SRModel], Any] | None = None,
                   progress: Callable[[dict[str, Any]], None] | None = None) -> EvalTable:
    """The paper table: every model (and bicubic, first) on every set at every scale, in one call.

    ``models``: label → SRModel; ``datasets``: folders (any layout of :mod:`sr_compress.data.layouts`, or
    "default") or name → folder; ``scales``: default the models' scale (they must agree). A pre-upsampling
    model (VDSR) runs at every scale; another model only at its own. Images are read one at a time and every
    method runs on each. ``wrap``: applied to each model before it runs — bounded memory on large images with
    ``functools.partial(deploy.tiling.tiled_network, max_bytes=DEFAULT_EVAL_BYTES)`` (exact tiling; what the
    eval operation passes). ``progress(event)`` after every image: ``{set, scale, done, total, image}``.
    """
    y, degradation = check_y(y), check_degradation(degradation)
    sets = _dataset_list(datasets)
    if not sets:
        raise ConfigError("no datasets to evaluate")
    if scales is None:
        own = sorted({m.scale for m in models.values()})
        if len(own) > 1:
            raise ConfigError(f"the models have different scales ({own}); give the scales to evaluate")
        if not own:
            raise ConfigError("give the scales to evaluate (no models, bicubic only)")
        scales = own
    scales = [int(scales)] if isinstance(scales, int) else [int(s) for s in scales]
    methods = (["bicubic"] if with_bicubic else []) + list(models)
    table = EvalTable(y, scales, methods, [])
    layouts = {(name, s): (dataset_layout(path, s) if path != "default" else None)
               for name, path in sets for s in scales}  # every folder checked before any model runs
    for scale in scales:
        nets = {}
        for label, m in models.items():
            at = model_at_scale(m, scale)
            if at is not None:
                nets[label] = wrap(at.eval()) if wrap is not None else at.eval()
        for name, path in sets:
            layout = layouts[(name, scale)]
            if layout is None:
                pairs, total = iter(eval_pairs(None, scale, degradation)), 2
                desc = "the bundled validation photos (HR only, LR made from HR)"
            else:
                pairs, total, desc = iter_eval_pairs(layout, degradation), len(layout.files), layout.describe()
            ts = TableSet(name, path, scale, desc)
            table.sets.append(ts)
            reports = {m: EvalReport(m, scale, y=y) for m in methods}
            for i, pair in enumerate(pairs):
                if pair.note:
                    ts.notes.append(f"{pair.name}: {pair.note}")
                lr = pair.lr.unsqueeze(0)
                if with_bicubic:
                    reports["bicubic"].images.append(score(pair.name, bicubic_upscale(lr, scale)[0], pair.hr,
                                                           scale, y=y))
                for label, net in nets.items():
                    sr = super_resolve(net, lr)[0]
                    reports[label].images.append(score(pair.name, sr, pair.hr, scale, y=y))
                if progress is not None:
                    progress({"set": name, "scale": scale, "done": i + 1, "total": total, "image": pair.name})
            for m, r in reports.items():
                if m == "bicubic" or m in nets:
                    table.reports[(m, name, scale)] = r
    return table


def write_table(table: EvalTable, out_dir: str | os.PathLike, *, force: bool = False) -> tuple[Path, Path]:
    """``report.md`` (the Markdown table) and ``report.json`` (every number, per image too) in ``out_dir``,
    each written atomically; existing files only with ``force``."""
    import json

    out = Path(out_dir)
    md, js = out / "report.md", out / "report.json"
    for p in (md, js):
        check_output(p, force=force)
    text = json.dumps(table.to_dict(), indent=2, allow_nan=True) + "\n"
    return atomic_write_text(md, table.to_markdown(), force=force), atomic_write_text(js, text, force=force)


def comparison_rows(reports: list[EvalReport], pairs: list) -> list:
    """Rows for :func:`sr_compress.visual.comparison_image`: bicubic first, then the models, then HR."""
    ordered = sorted(reports, key=lambda r: r.method != "bicubic")
    return [(p.name, [*((r.method, r.outputs[p.name]) for r in ordered), ("HR", p.hr)]) for p in pairs]


# -- the reference VDSR protocol (../shared/data/set5/matlab_bicubic_x{s}.npz) ---------------------------------------
NPZ_IMAGES = ("bird", "butterfly", "head", "woman")  # the upstream baby inputs are missing


def load_npz_y(path: str | Any, images: tuple[str, ...] = NPZ_IMAGES, *,
               crop: int | None = None) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, bicubic-upscaled Y as (1,1,H,W) float32, ground-truth Y as (1,H,W) float64), values in [0, 1],
    from one of the AIL release's MATLAB npz files. ``crop``: keep only a centred ``crop``×``crop`` window
    (quick looks; the reference numbers are for the full images)."""
    import zipfile

    try:  # allow_pickle=False: arrays only, an object array (a pickle) is refused, never loaded
        z = np.load(require_file(path, "npz file"), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz of arrays ({type(e).__name__})") from None
    out = []
    for n in images:
        try:
            lr_raw, gt_raw = z[f"{n}_bicubic_ycbcr"], z[f"{n}_gt_ycbcr"]
        except KeyError:
            raise DataError(f"{path}: no arrays for image {n!r}") from None
        except ValueError:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
            raise DataError(f"{path}: image {n!r} is stored as pickled objects, not numbers; refused "
                            "(an .npz is read as data only)") from None
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise DataError(f"{path}: image {n!r} is unreadable ({type(e).__name__})") from None
        for a in (lr_raw, gt_raw):
            if a.dtype.kind not in "fiu" or a.ndim != 3 or a.shape[-1] < 1 or min(a.shape[:2]) < 1:
                raise DataError(f"{path}: image {n!r} is a {a.dtype} array of shape {list(a.shape)}; "
                                "expected H×W×3 numbers")
        if lr_raw.shape != gt_raw.shape:
            raise DataError(f"{path}: image {n!r}: bicubic {list(lr_raw.shape)} and ground truth "
                            f"{list(gt_raw.shape)} differ in shape")
        lr, gt = lr_raw[..., 0], gt_raw[..., 0]
        if crop is not None:
            h, w = gt.shape
            t, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
            lr, gt = lr[t:t + crop, left:left + crop], gt[t:t + crop, left:left + crop]
        out.append((n, torch.from_numpy(lr.astype(np.float32))[None, None],
                    torch.from_numpy(gt.astype(np.float64))[None]))
    return out


def npz_y_psnr(model: SRModel, images: list[tuple[str, torch.Tensor, torch.Tensor]], scale: int) -> float:
    """Mean Y-PSNR of a Y-channel pre-upsampling model (VDSR) under the reference protocol: the model runs on
    the npz bicubic Y, its output is clipped to [0, 1] (by :func:`~sr_compress.metrics.psnr`), ``scale`` px are
    shaved at every border, and it is compared *unrounded* with the float ground truth — the protocol that
    reproduces the AIL release's table to ±0.01 dB (tests/test_reference_vdsr.py)."""
    if model.channels != 1 or not model.pre_upsample:
        raise ValueError(f"the npz protocol takes a Y-channel pre-upsampling model, not {model.arch}")
    model = model.eval()
    with torch.no_grad():
        values = [psnr(model(lr)[0], gt, crop=scale, y=True, quantize=False) for _, lr, gt in images]
    return float(sum(values) / len(values))
