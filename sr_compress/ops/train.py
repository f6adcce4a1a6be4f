"""Operations ``train`` and ``finetune``: one trainer, a model (new or from a checkpoint), saved with provenance."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..checkpoint import check_agrees, provenance_entry, save_checkpoint
from ..config import defaults_of
from ..data.datasets import training_source
from ..deploy.tiling import tiled_network
from ..errors import ConfigError, DataError
from ..evaluate import eval_pairs_for
from ..fileio import atomic_write_text, check_output
from ..models import SRModel, build_model
from ..train.presets import preset_settings
from ..train.strategies import build_strategy
from ..train.teacher_cache import TeacherCache, cache_root
from ..train.trainer import TrainConfig, Trainer, check_teacher, psnr_validator
from .common import data_inputs, data_key, file_identity, load_model

#: What ``srcompress train/finetune`` start from: the trainer's defaults, except a higher learning rate and more
#: frequent resumable state for interactive runs (recipes and library calls use TrainConfig's own).
COMMAND_DEFAULTS: dict[str, Any] = {**{f.name: f.default for f in fields(TrainConfig)}, "lr": 2e-4, "ckpt_every": 500}


def new_model(arch: str, *, scale: int, hparams: dict[str, Any] | None = None, seed: int = 0) -> SRModel:
    """A freshly initialised registered model; ``seed`` fixes the initial weights."""
    torch.manual_seed(seed)
    return build_model(arch, **{**(hparams or {}), "scale": scale})


def train_config(*, preset: str | None = None, settings: dict[str, Any] | None = None, seed: int = 0) -> TrainConfig:
    """The trainer settings: the seed, then the training preset's, then ``settings`` (explicit values win)."""
    return TrainConfig.from_dict({"seed": seed, **preset_settings(preset), **(settings or {})})


def work_dir_for(out: Path) -> Path:
    """Where periodic training state for output ``out`` lives: ``<out without suffix>.train/`` beside it."""
    return out.with_name(out.stem + ".train")


def is_main_process() -> bool:
    """False on every rank but 0 of a torchrun launch (only rank 0 writes files and prints)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@dataclass
class TrainOutcome:
    path: Path
    model: SRModel
    steps: int
    final_loss: float
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    teacher_cache: Any = None  # the CacheReport when the run read stored teacher outputs (train/teacher_cache.py)


def train_model(model: SRModel, *, out: str | Path, config: TrainConfig, data: str | Path | None = None,
                degradation: str = "bi", strategy: str = "l1", strategy_options: dict | None = None,
                teacher: SRModel | None = None, student_extra: dict[str, Any] | None = None,
                resume: bool = False, force: bool = False,
                progress: Callable[[dict], None] | None = None, stage: str = "train",
                record: dict[str, Any] | None = None, inputs: tuple = (), cache_dir: str | Path | None = None,
                cache_progress: Callable[[dict], None] | None = None) -> TrainOutcome:
    """Train ``model`` with the one trainer and save it (our format) to ``out``.

    With ``resume`` the run continues from ``<out>.train/last.pt`` exactly where it stopped. ``student_extra``:
    the non-weight entries of the checkpoint ``model`` came from (``LoadedModel.extra``), handed to the strategy
    before training. ``teacher``: given exactly when the strategy uses one (same scale and colour space), else
    ConfigError. The output's provenance gets one ``stage`` entry (strategy, options, data, budget, seed, plus
    ``record``). ``inputs``: files the model or teacher came from; ``out`` may never be one of them.
    A data folder is read through the uint8 image cache (``cache_dir``, default
    ``sr_compress.data.cache.default_cache_dir()``; ``cache_progress({done, total, built, name})`` while it is
    built) by the prefetching cached loader; the bundled photos stay in memory.
    """
    out = Path(out)
    inputs = tuple(str(i) for i in (*inputs, *data_inputs(data)) if i is not None)
    check_output(out, inputs=inputs, force=force or resume)
    strat = build_strategy(strategy, **(strategy_options or {}))
    check_teacher(strat, model, teacher)  # before the images are read: a wrong call fails at once
    work = work_dir_for(out)
    state = work / "last.pt"
    if resume and not state.is_file():
        raise DataError(f"nothing to resume: {state} does not exist")
    key = check_data_key(work, data, resume)
    sampler = training_source(data, model.scale, config.patch_size, config.batch_size, degradation=degradation,
                              seed=config.seed, cache_dir=cache_dir, progress=cache_progress)
    strat.use_checkpoint_extra(dict(student_extra or {}))
    t0 = time.perf_counter()
    # Y-PSNR on the data's validation images every val_every steps (history, progress)
    validate = psnr_validator(eval_pairs_for(data, model.scale, degradation)) if config.val_every else None
    cache = TeacherCache(teacher, cache_root(work), tiler=tiled_network) if teacher is not None else None
    try:
        result = Trainer(model, strat, sampler, config, teacher=teacher, out_dir=work, progress=progress,
                         force=force, validate=validate, teacher_cache=cache).fit(resume=state if resume else None)
    finally:
        if hasattr(sampler, "close"):
            sampler.close()  # the cached loader's prefetch threads
    trained = result.model
    trained.provenance = [*model.provenance, provenance_entry(
        stage, strategy=strategy, strategy_options=dict(strat.params), data=str(data or "default"),
        degradation=degradation, steps=config.steps, batch_size=config.batch_size, patch_size=config.patch_size,
        lr=config.lr, seed=config.seed, data_key=key, **(record or {}))]
    if is_main_process():
        save_checkpoint(trained, out, force=True, inputs=inputs)
    return TrainOutcome(out, trained, config.steps, float(result.final_loss), time.perf_counter() - t0,
                        list(result.history), result.teacher_cache)


def load_teacher(teacher: str | Path | None, scale: int | None = None,
                 overrides: dict[str, Any] | None = None) -> SRModel | None:
    """The teacher model of a training run (None without one): any checkpoint, or an ONNX graph (read-only,
    its outputs only; ``overrides``: ``input_range``, ``colour``)."""
    if teacher is None:
        return None
    return load_model(teacher, overrides={**(overrides or {}), "scale": scale}).model


DATA_RECORD = "data.json"


def check_data_key(work: Path, data: str | Path | None, resume: bool) -> str:
    """The data's content key, recorded in ``work/data.json`` when a run starts; ``resume`` refuses a data
    source whose key changed since (other images, added, removed or rewritten files)."""
    import json

    key = data_key(data)
    record = work / DATA_RECORD
    if resume and record.is_file():
        try:
            was = json.loads(record.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            was = {}
        if was.get("key") != key:
            raise DataError(f"--resume: the training data changed since this run started (it was "
                            f"{was.get('data')!r}, key {str(was.get('key'))[:24]}…; now {str(data or 'default')!r}, "
                            f"key {key[:24]}…); resume with the same data, or start again with --force")
    elif is_main_process():
        atomic_write_text(record, json.dumps({"data": str(data or "default"), "key": key}), force=True)
    return key


#: the scale of a new model when none is given (a checkpoint's own scale otherwise)
NEW_MODEL_SCALE = 2


def train(*, out: str | Path, config: TrainConfig, arch: str | None = None, init: str | Path | None = None,
          scale: int | None = None, hparams: dict[str, Any] | None = None, data: str | Path | None = None,
          degradation: str = "bi", strategy: str = "l1", strategy_options: dict | None = None,
          teacher: str | Path | None = None, teacher_scale: int | None = None,
          teacher_overrides: dict[str, Any] | None = None, resume: bool = False,
          force: bool = False, progress: Callable[[dict], None] | None = None, cache_dir: str | Path | None = None,
          cache_progress: Callable[[dict], None] | None = None) -> TrainOutcome:
    """Train a new model (``arch`` with ``hparams`` at ``scale``, seeded by ``config.seed``) or the checkpoint
    ``init`` further (its extra entries, e.g. plainify's bridges, reach the strategy); exactly one of the two.
    ``teacher``: a checkpoint or ONNX graph for the strategies that use one (``teacher_scale`` overrides its
    scale, ``teacher_overrides`` e.g. an ONNX graph's ``input_range`` / ``colour``)."""
    if (arch is None) == (init is None):
        raise ConfigError("give exactly one of --arch / arch (a new model) or --init / init (a checkpoint to "
                          "train further)")
    if init is not None and hparams:
        raise ConfigError("--hparam applies to new models (--arch), not to --init checkpoints")
    check_output(out, inputs=[i for i in (init, teacher, *data_inputs(data)) if i is not None],
                 force=force or resume)
    extra: dict[str, Any] = {}
    if init is not None:
        loaded = load_model(init)
        model, extra = loaded.model, loaded.extra
        check_agrees(model, str(init), scale=scale)  # --scale 3 on a ×2 checkpoint is refused, not ignored
    else:
        model = new_model(arch, scale=NEW_MODEL_SCALE if scale is None else scale, hparams=hparams,
                          seed=config.seed)
    t = load_teacher(teacher, teacher_scale, teacher_overrides)
    return train_model(model, out=out, config=config, data=data, degradation=degradation, strategy=strategy,
                       strategy_options=strategy_options, teacher=t, student_extra=extra, resume=resume,
                       force=force, progress=progress, inputs=(init, teacher), cache_dir=cache_dir,
                       cache_progress=cache_progress)


def finetune(student: str | Path, *, out: str | Path, config: TrainConfig, strategy: str,
             strategy_options: dict | None = None, teacher: str | Path | None = None,
             teacher_scale: int | None = None, teacher_overrides: dict[str, Any] | None = None,
             data: str | Path | None = None, degradation: str = "bi", resume: bool = False, force: bool = False,
             progress: Callable[[dict], None] | None = None, cache_dir: str | Path | None = None,
             cache_progress: Callable[[dict], None] | None = None) -> TrainOutcome:
    """Train the checkpoint ``student`` further with ``strategy`` (``kd``, ``ail``, ``pspl``, ``l1``, ``mse``…).

    ``teacher``: a checkpoint (any supported format) or an ONNX graph, required by the strategies that use one
    and refused by the others; ``teacher_scale`` overrides its scale (one VDSR file serves ×2, ×3 and ×4),
    ``teacher_overrides`` an ONNX graph's ``input_range`` / ``colour`` where they cannot be detected. It must match the
    student's scale and colour space. The student checkpoint's extra entries reach the strategy
    (``Strategy.use_checkpoint_extra``). Provenance: a ``finetune`` entry with strategy, options, the teacher
    and the student (path + SHA-256).
    """
    inputs = [Path(student)] + ([Path(teacher)] if teacher is not None else [])
    check_output(out, inputs=[*inputs, *data_inputs(data)], force=force or resume)
    loaded = load_model(student)
    t = load_teacher(teacher, teacher_scale, teacher_overrides)
    record = {"student": file_identity(student), "teacher": file_identity(teacher) if teacher is not None else None}
    return train_model(loaded.model, out=out, config=config, data=data, degradation=degradation, strategy=strategy,
                       strategy_options=strategy_options, teacher=t, student_extra=loaded.extra, resume=resume,
                       force=force, progress=progress, stage="finetune", record=record, inputs=tuple(inputs),
                       cache_dir=cache_dir, cache_progress=cache_progress)


#: the train operation's defaults (scale, strategy, degradation…): the CLI and the recipe stage read them here
TRAIN_DEFAULTS = defaults_of(train)
