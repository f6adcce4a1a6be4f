"""The typed library functions behind the commands (``train``, ``eval``, ``upscale``, ``info``) and recipes.

Each takes keyword arguments and returns data; the CLI and the recipe stages only call these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import LoadedModel, load_checkpoint, provenance_entry, save_checkpoint
from .errors import DataError
from .evaluate import EvalReport, evaluate_bicubic, evaluate_model
from .fileio import check_output, require_file
from .models import SRModel, build_model, count_params


def new_model(arch: str, *, scale: int, hparams: dict[str, Any] | None = None, seed: int = 0) -> SRModel:
    """A freshly initialised registered model; ``seed`` fixes the initial weights."""
    import torch

    torch.manual_seed(seed)
    return build_model(arch, **{**(hparams or {}), "scale": scale})


def training_images(data: str | Path | None, scale: int, degradation: str = "bi") -> list:
    """Training images: the bundled photos (``None``/"default"), a folder of HR images, or a paired layout."""
    from .train.data import load_dataset

    return load_dataset(data, scale, degradation, split="train")


def work_dir_for(out: Path) -> Path:
    """Where periodic training state for output ``out`` lives: ``<out without suffix>.train/`` beside it."""
    return out.with_name(out.stem + ".train")


@dataclass
class TrainOutcome:
    path: Path
    model: SRModel
    steps: int
    final_loss: float
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def train_model(model: SRModel, *, out: str | Path, config: Any, data: str | Path | None = None,
                degradation: str = "bi", strategy: str = "l1", strategy_options: dict | None = None,
                teacher: SRModel | None = None, student_extra: dict[str, Any] | None = None,
                resume: bool = False, force: bool = False,
                progress: Callable[[dict], None] | None = None, stage: str = "train",
                record: dict[str, Any] | None = None, inputs: tuple = ()) -> TrainOutcome:
    """Train ``model`` with the one trainer and save it (our format) to ``out``.

    ``config`` is a :class:`sr_compress.train.trainer.TrainConfig`. With ``resume`` the run continues from
    ``<out>.train/last.pt`` exactly where it stopped. ``student_extra``: the non-weight entries of the
    checkpoint ``model`` came from (``LoadedModel.extra``), handed to the strategy before training.
    ``teacher``: given exactly when the strategy uses one (same scale and colour space), else ConfigError.
    The output's provenance gets one ``stage`` entry (strategy, options, data, budget, seed, plus ``record``).
    ``inputs``: files the model or teacher came from; ``out`` may never be one of them, not even with ``force``.
    """
    import time

    from .train.data import PatchSampler
    from .train.strategies import build_strategy
    from .train.trainer import Trainer, check_teacher

    out = Path(out)
    inputs = tuple(str(i) for i in inputs if i is not None)
    check_output(out, inputs=inputs, force=force or resume)
    strat = build_strategy(strategy, **(strategy_options or {}))
    check_teacher(strat, model, teacher)  # before the images are read: a wrong call fails at once
    work = work_dir_for(out)
    state = work / "last.pt"
    if resume and not state.is_file():
        raise DataError(f"nothing to resume: {state} does not exist")
    sampler = PatchSampler(training_images(data, model.scale, degradation), scale=model.scale,
                           patch_size=config.patch_size, batch_size=config.batch_size, degradation=degradation,
                           seed=config.seed)
    strat.use_checkpoint_extra(dict(student_extra or {}))
    t0 = time.perf_counter()
    validate = None
    if config.val_every:  # Y-PSNR on the data's validation images every val_every steps (history, progress)
        from .train.trainer import psnr_validator

        validate = psnr_validator(eval_pairs_for(data, model.scale, degradation))
    result = Trainer(model, strat, sampler, config, teacher=teacher, out_dir=work, progress=progress,
                     force=force, validate=validate).fit(resume=state if resume else None)
    trained = result.model
    trained.provenance = [*model.provenance, provenance_entry(
        stage, strategy=strategy, strategy_options=dict(strat.params), data=str(data or "default"),
        degradation=degradation, steps=config.steps, batch_size=config.batch_size, patch_size=config.patch_size,
        lr=config.lr, seed=config.seed, **(record or {}))]
    if is_main_process():
        save_checkpoint(trained, out, force=True, inputs=inputs)
    return TrainOutcome(out, trained, config.steps, float(result.final_loss), time.perf_counter() - t0,
                        list(result.history))


def file_identity(path: str | Path) -> dict[str, str]:
    """``{"path", "sha256"}`` of an input file, as provenance records it."""
    from .fileio import file_sha256

    return {"path": str(path), "sha256": file_sha256(require_file(path))}


def finetune(student: str | Path, *, out: str | Path, config: Any, strategy: str,
             strategy_options: dict | None = None, teacher: str | Path | None = None,
             teacher_scale: int | None = None, data: str | Path | None = None, degradation: str = "bi",
             resume: bool = False, force: bool = False,
             progress: Callable[[dict], None] | None = None) -> TrainOutcome:
    """Train the checkpoint ``student`` further with ``strategy`` (``kd``, ``ail``, ``pspl``, ``l1``, ``mse``…).

    ``teacher``: a checkpoint (any supported format), required by the strategies that use one and refused by
    the others; ``teacher_scale`` overrides its scale (one VDSR file serves ×2, ×3 and ×4). It must match the
    student's scale and colour space. The student checkpoint's extra entries reach the strategy
    (``Strategy.use_checkpoint_extra``). Provenance: a ``finetune`` entry with strategy, options, the teacher
    and the student (path + SHA-256).
    """
    inputs = [Path(student)] + ([Path(teacher)] if teacher is not None else [])
    check_output(out, inputs=inputs, force=force or resume)
    loaded = load_model(student)
    t = load_model(teacher, overrides={"scale": teacher_scale}).model if teacher is not None else None
    record = {"student": file_identity(student), "teacher": file_identity(teacher) if teacher is not None else None}
    return train_model(loaded.model, out=out, config=config, data=data, degradation=degradation, strategy=strategy,
                       strategy_options=strategy_options, teacher=t, student_extra=loaded.extra, resume=resume,
                       force=force, progress=progress, stage="finetune", record=record, inputs=tuple(inputs))


def is_main_process() -> bool:
    """False on every rank but 0 of a torchrun launch (only rank 0 writes files and prints)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def eval_pairs_for(data: str | Path | None, scale: int, degradation: str = "bi") -> list:
    from .train.data import eval_pairs

    return eval_pairs(None if data in (None, "default") else Path(data), scale, degradation=degradation)


def evaluate(model: SRModel, *, data: str | Path | None = None, degradation: str = "bi",
             with_bicubic: bool = True, label: str | None = None, crops: str | Path | None = None,
             force: bool = False) -> list[EvalReport]:
    """Scores of ``model`` (and bicubic) on the validation photos or a folder (HR-only or HR/LR pairs).

    ``crops``: also write a PNG of the same detailed window per image (bicubic | model | HR), 2× zoomed.
    """
    from .evaluate import comparison_rows

    if crops is not None:
        check_output(crops, force=force)
    pairs = eval_pairs_for(data, model.scale, degradation)
    keep = crops is not None
    reports = [evaluate_model(model, pairs, method=label, keep_outputs=keep)]
    if with_bicubic:
        reports.append(evaluate_bicubic(pairs, model.scale, keep_outputs=keep))
    if crops is not None:
        from .visual import save_comparison

        save_comparison(crops, comparison_rows(reports, pairs), force=force)
    return reports


def load_model(path: str | Path, *, overrides: dict[str, Any] | None = None) -> LoadedModel:
    return load_checkpoint(path, overrides={k: v for k, v in (overrides or {}).items() if v is not None})


def write_rgb(img, path: Path) -> None:
    """(3,H,W) tensor in [0,1] → 8-bit PNG at ``path`` (the caller handles atomicity)."""
    import numpy as np
    from PIL import Image

    arr = (img.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
    Image.fromarray(np.ascontiguousarray(arr), "RGB").save(path, format="PNG")


def upscale_files(model: Any, images: Sequence[str | Path], out: str | Path, *, tile: int | None = None,
                  max_bytes: float | None = None, halo: int | None = None, force: bool = False) -> list[Path]:
    """Super-resolve image files with an SRModel or an exported ``.onnx`` path (run by onnxruntime).

    One image → ``out`` may be a .png file; otherwise ``out`` is a folder of ``<stem>_x<scale>.png``.
    ``tile`` (LR px) and/or ``max_bytes`` run the network tile by tile with an exact halo (same output);
    ``halo`` replaces the derived one (for graphs whose receptive radius cannot be derived).
    """
    from .deploy.tiling import tiled_network
    from .fileio import atomic_write
    from .infer import super_resolve
    from .train.data import read_image

    if isinstance(model, (str, Path)):
        from .deploy.onnx import ort_session

        model = ort_session(require_file(model, "ONNX model"))
    net = tiled_network(model, tile=tile, max_bytes=max_bytes, halo=halo)
    srcs = [Path(p) for p in images]
    if not srcs:
        raise DataError("no input images given")
    out = Path(out)
    single = len(srcs) == 1 and out.suffix.lower() == ".png"
    targets = [out] if single else [out / f"{p.stem}_x{net.scale}.png" for p in srcs]
    for t in targets:
        check_output(t, inputs=srcs, force=force)
    written = []
    for src, dst in zip(srcs, targets, strict=True):
        sr = super_resolve(net, read_image(src).unsqueeze(0))[0]
        written.append(atomic_write(dst, lambda p, sr=sr: write_rgb(sr, p), inputs=srcs, force=force))
    return written


def model_info(path: str | Path, *, size: tuple[int, int] = (320, 180)) -> dict[str, Any]:
    """Arch, hparams, params, MACs/FLOPs at LR size ``size`` (W×H), provenance of a checkpoint."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        from .deploy.onnx import onnx_info

        return onnx_info(p, size=size)
    from .metrics import count_macs

    loaded = load_model(p)
    m = loaded.model
    w, h = size
    in_shape = m.input_shape(size)
    macs = count_macs(m, in_shape)
    return {"path": str(p), "format": loaded.source, "arch": m.arch, "hparams": m.hparams,
            "params": count_params(m), "input_size": f"{w}x{h} LR ({in_shape[3]}x{in_shape[2]} model input)",
            "macs": macs, "gflops": 2 * macs / 1e9, "guesses": loaded.guesses, "provenance": m.provenance}


def slim_checkpoint(path: str | Path, *, rho: float, out: str | Path, select: str = "l1", init: str = "copy",
                    round_to: int = 1, seed: int = 0, size: tuple[int, int] = (320, 180),
                    overrides: dict[str, Any] | None = None, force: bool = False) -> tuple[Path, Any, LoadedModel]:
    """Slim the checkpoint at ``path`` (any supported format) by ``rho`` and save the student to ``out``.

    Returns (written path, :class:`~sr_compress.compress.slim.SlimReport`, the loaded teacher).
    """
    from .compress.slim import slim

    check_output(out, inputs=(path,), force=force)
    loaded = load_model(path, overrides=overrides)
    student, report = slim(loaded.model, rho, select=select, init=init, round_to=round_to, seed=seed, size=size)
    written = save_checkpoint(student, out, force=force, inputs=(path,))
    return written, report, loaded


def parse_size(text: str) -> tuple[int, int]:
    """"1920x1080" → (1920, 1080); positive and bounded before anything is allocated (see validate)."""
    from .validate import parse_size as checked

    return checked(text)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
