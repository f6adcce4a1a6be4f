"""The one training loop. Methods differ only in their :class:`~sr_compress.train.strategies.Strategy`.

``Trainer(model, strategy, source, config).fit()`` trains ``model`` in place: it asks ``source`` for the RGB
(lr, hr) batch of each step, turns it into the model's input and target (Y for 1-channel models, bicubic
upscaled input for VDSR), lets the strategy compute the loss, and steps the optimiser and scheduler built from
:class:`TrainConfig`. Checkpoints (``out_dir/last.pt``) hold everything needed to continue *exactly*
(``fit(resume=...)``). Launched by ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel,
each rank taking its rows of every global batch. The library never prints: ``progress`` receives a dict per
step and :mod:`logging` gets a line every ``log_every`` steps.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..checkpoint import FORMAT, read_raw, save_checkpoint
from ..config import from_dict
from ..errors import CheckpointError, ConfigError, DataError, OutputExistsError
from ..infer import model_input, super_resolve, to_model_space
from ..metrics import psnr
from ..models import SRModel
from ..models.capture import capture_outputs
from .strategies import Batch, Strategy, TrainContext, build_strategy
from .teacher_cache import MODES as CACHE_MODES
from .teacher_cache import CachedTeacherOutputs, TeacherCache, cache_root

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("none", "step", "onecycle")
REDUCTIONS = ("mean", "sum")
#: Settings that may differ between a run and its resume (they do not change the trajectory).
RESUME_FREE = ("ckpt_every", "log_every", "val_every", "device")
LAST, FINAL = "last.pt", "final.pt"


class BatchSource(Protocol):
    """Anything that gives the RGB (lr, hr) batch of a step: float32 NCHW in [0, 1], hr ``scale``× lr.

    A pure function of (its seed, ``step``); under DDP rank ``r`` of ``world_size`` gets rows
    ``r::world_size`` of the step's global batch (``batch_size // world_size`` rows).
    """

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]: ...


Validator = Callable[[SRModel], Mapping[str, float]]
Progress = Callable[[dict[str, Any]], None]


# -- configuration --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. Step counts are optimiser steps (iterations).

    ``patch_size`` is the HR patch side the data source cuts (``PatchSampler``; the trainer only records it).
    ``scheduler``: ``none``; ``step`` (lr × ``gamma`` every ``step_size`` steps); ``onecycle`` (peak
    ``max_lr``, default ``lr``, warm-up fraction ``pct_start``; Adam's beta1 / SGD's momentum cycle too).
    ``grad_clip``: max global gradient norm (0 = off). ``reduction``: how the strategy reduces its loss
    (``sum`` is scaled by the world size under DDP so the update equals a single process's).
    ``rounds``: the run is split into equal rounds; each starts with a fresh optimiser and scheduler and the
    strategy's ``on_round_start`` (AIL). ``epoch_length``: steps per "epoch" for ``on_epoch_end`` and
    ``ctx.epoch``. ``ckpt_every`` (0 = only at the end), ``log_every``, ``val_every`` (0 = only at the end).
    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    ``teacher_cache``: where a strategy needs only the teacher's output (kd, ail), read it from outputs
    stored once per training image (:mod:`.teacher_cache`) instead of running the teacher on every batch:
    ``auto`` (default) = when the data source supports it, ``on`` = always (an error where it cannot),
    ``off`` = run the teacher per batch.
    """

    steps: int = 1000
    batch_size: int = 16
    patch_size: int = 96
    lr: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "none"
    step_size: int = 200_000
    gamma: float = 0.5
    max_lr: float | None = None
    pct_start: float = 0.3
    grad_clip: float = 0.0
    reduction: str = "mean"
    rounds: int = 1
    epoch_length: int = 1000
    ckpt_every: int = 1000
    log_every: int = 100
    val_every: int = 0
    seed: int = 0
    device: str = "auto"
    teacher_cache: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.betas, (list, tuple)):
            object.__setattr__(self, "betas", tuple(self.betas))
        problem = next((msg for ok, msg in _config_checks(self) if not ok), None)
        if problem:
            raise ConfigError(f"training config: {problem}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from plain data (a recipe table); unknown keys are an error that lists the valid ones."""
        return from_dict(cls, dict(data), "training config")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (betas as a list)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _in(v: Any, lo: float, hi: float) -> bool:
    return _is_num(v) and lo <= v <= hi


def _choice(name: str, v: Any, choices: Sequence[str]) -> tuple[bool, str]:
    return v in choices, f"{name} must be one of {', '.join(choices)}, got {v!r}"


def _config_checks(c: TrainConfig) -> list[tuple[bool, str]]:
    """(condition, message) pairs; the first failing one is reported."""
    def pos_int(name: str, minimum: int = 1) -> tuple[bool, str]:
        v = getattr(c, name)
        return _is_int(v) and v >= minimum, f"{name} must be an integer >= {minimum}, got {v!r}"

    betas_ok = len(c.betas) == 2 and all(_in(b, 0.0, 0.999999) for b in c.betas)
    return [
        pos_int("steps"), pos_int("batch_size"), pos_int("patch_size"), pos_int("step_size"),
        pos_int("rounds"), pos_int("epoch_length"), pos_int("log_every"),
        pos_int("ckpt_every", 0), pos_int("val_every", 0), pos_int("seed", 0),
        (_is_num(c.lr) and c.lr > 0, f"lr must be a positive number, got {c.lr!r}"),
        _choice("optimizer", c.optimizer, OPTIMIZERS),
        _choice("scheduler", c.scheduler, SCHEDULERS),
        _choice("reduction", c.reduction, REDUCTIONS),
        (_in(c.momentum, 0.0, 0.999999), f"momentum must be in [0, 1), got {c.momentum!r}"),
        (_is_num(c.weight_decay) and c.weight_decay >= 0, f"weight_decay must be >= 0, got {c.weight_decay!r}"),
        (betas_ok, f"betas must be two numbers in [0, 1), got {c.betas!r}"),
        (_in(c.gamma, 1e-12, 1.0), f"gamma must be in (0, 1], got {c.gamma!r}"),
        (c.max_lr is None or (_is_num(c.max_lr) and c.max_lr > 0), f"max_lr must be > 0, got {c.max_lr!r}"),
        (_in(c.pct_start, 1e-9, 1 - 1e-9), f"pct_start must be in (0, 1), got {c.pct_start!r}"),
        (_is_num(c.grad_clip) and c.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {c.grad_clip!r}"),
        (c.steps % c.rounds == 0 if _is_int(c.steps) and _is_int(c.rounds) and c.rounds else True,
         f"steps ({c.steps}) must be a multiple of rounds ({c.rounds})"),
        (_device_ok(c.device), f"device must be auto, cpu, cuda or cuda:N, got {c.device!r}"),
        (not (_is_int(c.batch_size) and _is_int(c.patch_size)) or c.batch_size * c.patch_size ** 2 <= MAX_BATCH_PIXELS,
         f"a batch of {c.batch_size} patches of {c.patch_size} px is too large (at most {MAX_BATCH_PIXELS:,} "
         "pixels per batch)"),
        _choice("teacher_cache", c.teacher_cache, CACHE_MODES),
    ]


#: One training batch holds at most this many HR pixels (2^28 px: 3 GiB of float32 RGB), checked before allocating.
MAX_BATCH_PIXELS = 1 << 28


def _device_ok(name: Any) -> bool:
    if name == "auto":
        return True
    try:
        return torch.device(name).type in ("cpu", "cuda")
    except (RuntimeError, TypeError):
        return False


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device cuda requested but no CUDA device is available; use --device cpu")
        dev = torch.device("cuda", dev.index if dev.index is not None else local_rank)
    return dev


# -- results --------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a run produced. ``history`` has a record every ``log_every`` steps and at the end (step, loss,
    lr, elapsed seconds, strategy metrics, validation results)."""

    model: SRModel
    steps: int
    last_loss: float
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0
    resumed_from: int | None = None
    checkpoint: Path | None = None  # out_dir/last.pt (with training state)
    final: Path | None = None  # out_dir/final.pt (the trained model alone)
    teacher_cache: Any = None  # the CacheReport when the run read stored teacher outputs, else None

    @property
    def final_loss(self) -> float:
        return self.last_loss


# -- distributed ----------------------------------------------------------------------------------------------------
def join_process_group(backend: str) -> tuple[int, int]:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; returns (rank, world_size), (0, 1) alone.

    The group is created once per process and destroyed when the process exits: destroying it after each
    ``fit()`` and creating it again reuses the store keys of the first group, and the second creation can
    hang (torch 2.13, gloo), so several runs in one torchrun launch (a recipe) share one group.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        atexit.register(_leave_process_group)
    return dist.get_rank(), dist.get_world_size()


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _all_reduce_mean(t: torch.Tensor, world_size: int) -> torch.Tensor:
    """In place: the mean of ``t`` over the ranks."""
    import torch.distributed as dist

    dist.all_reduce(t)
    return t.div_(world_size)


def _global_loss(loss: torch.Tensor, world_size: int, reduction: str) -> torch.Tensor:
    """The loss of the whole global batch from each rank's share (mean of means, or sum of sums)."""
    import torch.distributed as dist

    total = loss.clone()
    dist.all_reduce(total)
    return total if reduction == "sum" else total.div_(world_size)


def check_teacher(strategy: Strategy, student: SRModel, teacher: SRModel | None) -> None:
    """A teacher exactly when the strategy uses one, with the student's scale and colour space (ConfigError)."""
    uses = strategy.needs_teacher or strategy.needs_teacher_features
    if not uses:
        if teacher is not None:
            what = f"strategy {strategy.name!r}" + (f" with {strategy.params}" if strategy.params else "")
            raise ConfigError(f"{what} uses no teacher; drop --teacher (or pick kd, ail or another teacher strategy)")
        return
    if teacher is None:
        raise ConfigError(f"strategy {strategy.name!r} needs a teacher model (give --teacher T.pt)")
    if teacher.scale != student.scale:
        raise ConfigError(f"teacher is ×{teacher.scale} but the student is ×{student.scale}")
    if teacher.channels != student.channels:
        raise ConfigError(f"teacher works on {teacher.channels} channel(s), the student on {student.channels}; "
                          "they must share a colour space (Y or RGB)")
    if strategy.needs_teacher_features and getattr(teacher, "read_only", False):
        raise ConfigError(f"strategy {strategy.name!r} needs the teacher's inner features; a {teacher.arch} "
                          "teacher gives only its output (use kd or ail, or a checkpoint teacher)")


def uses_teacher_cache(strategy: Strategy, source: Any, mode: str) -> bool:
    """Whether the run reads stored teacher outputs (see ``TrainConfig.teacher_cache``): the strategy needs
    only the teacher's output and ``source`` can cut stored outputs (``teacher_batch``); ConfigError when
    ``mode`` is ``on`` and it cannot."""
    if mode == "off" or not strategy.needs_teacher or strategy.needs_teacher_features:
        if mode == "on" and strategy.needs_teacher_features:
            raise ConfigError(f"teacher_cache on: strategy {strategy.name!r} needs the teacher's features, "
                              "which are not stored; use teacher_cache off")
        return False
    problem = ("the data source cannot crop stored teacher outputs" if not hasattr(source, "teacher_batch")
               else source.teacher_cache_problem())
    if problem and mode == "on":
        raise ConfigError(f"teacher_cache on: {problem}; use teacher_cache off")
    return not problem


def check_patch_size(patch_size: int, *models: SRModel | None) -> None:
    """Each model's network input from an HR patch of ``patch_size`` must reach its ``min_size`` (ConfigError).

    ESA nets (RFDN, RLFN) need 15×15 LR inputs: 48-px HR patches at ×4 give 12."""
    for m in models:
        if m is None:
            continue
        side = patch_size if m.pre_upsample else patch_size // m.scale
        if side < m.min_size:
            need = m.min_size * (1 if m.pre_upsample else m.scale)
            raise ConfigError(f"{m.arch} needs network inputs of at least {m.min_size}x{m.min_size} px; HR patches "
                              f"of {patch_size} px give {side}: use a patch size of at least {need}")


# -- the trainer ------------------------------------------------------------------------------------------------------
class Trainer:
    """The one training loop (see the module docstring). ``model`` is trained in place and returned.

    ``strategy``: a :class:`Strategy` or a registered name. ``teacher``: needed by strategies that declare
    ``needs_teacher`` / ``needs_teacher_features`` (frozen, eval mode, same scale and colour space).
    ``out_dir``: where ``last.pt`` (every ``ckpt_every`` steps and at the end) and ``final.pt`` go; a fresh
    run refuses an ``out_dir`` that already has a ``last.pt`` unless ``force``. ``progress``: called on rank 0
    after every step with ``{step, steps, loss, lr, elapsed, round, epoch, ...metrics}``. ``validate``:
    ``f(model) -> {name: value}`` on rank 0 every ``val_every`` steps and at the end (model in eval mode).
    ``teacher_cache``: the :class:`~.teacher_cache.TeacherCache` to fill and read when
    ``config.teacher_cache`` applies (default: one under ``out_dir/teacher_cache``, or in memory without an
    ``out_dir``, running whole images untiled); it is built at the start of ``fit()`` (rank 0 first under
    DDP, the others then reuse its files) and its :class:`~.teacher_cache.CacheReport` is
    ``TrainResult.teacher_cache``.
    The trainer leaves ``model.provenance`` alone: recording the stage is the caller's job
    (:func:`sr_compress.workflows.train_model` does it).
    """

    def __init__(self, model: SRModel, strategy: Strategy | str, source: BatchSource, config: TrainConfig, *,
                 teacher: SRModel | None = None, out_dir: str | os.PathLike | None = None,
                 progress: Progress | None = None, validate: Validator | None = None,
                 force: bool = False, teacher_cache: TeacherCache | None = None) -> None:
        if getattr(model, "read_only", False):
            raise ConfigError(f"a {model.arch} model is read-only and cannot be trained; the student must be a "
                              "checkpoint (an ONNX graph can only be the teacher)")
        self.model = model
        self.strategy = build_strategy(strategy) if isinstance(strategy, str) else strategy
        self.source, self.config, self.teacher = source, config, teacher
        self.teacher_cache = teacher_cache
        self._teacher_outputs: CachedTeacherOutputs | None = None
        self._cache_report: Any = None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress, self.validate, self.force = progress, validate, force
        self.history: list[dict[str, Any]] = []
        self._elapsed, self._last_loss, self._feature_names = 0.0, float("nan"), None
        self._check_teacher()

    def _check_teacher(self) -> None:
        check_teacher(self.strategy, self.model, self.teacher)
        check_patch_size(self.config.patch_size, self.model, self.teacher)

    # -- entry point ---------------------------------------------------------------------------------------------
    def fit(self, resume: str | os.PathLike | None = None) -> TrainResult:
        """Train for ``config.steps`` steps, or continue from a ``last.pt`` written by a run with the same
        config, model and strategy (continues exactly: same weights as an uninterrupted run)."""
        backend = "nccl" if resolve_device(self.config.device).type == "cuda" else "gloo"
        ctx = self._context(*join_process_group(backend))
        self.history, self._elapsed, self._last_loss = [], 0.0, float("nan")
        raw = self._read_resume(resume) if resume is not None else self._fresh_start()
        start = ctx.step = int(raw["train_state"]["step"]) if raw else 0
        ctx.round = min(start // ctx.steps_per_round, self.config.rounds - 1)
        self.strategy.on_train_start(ctx)
        self._build_optimizer(ctx)
        if raw:
            self._load_state(ctx, raw)
        self._prepare_teacher_cache(ctx)
        self._wrap_ddp(ctx)
        try:
            self._loop(ctx, start)
        finally:
            self._unwrap_ddp(ctx)
        return self._finish(ctx, resumed_from=start if raw else None)

    def _context(self, rank: int, world_size: int) -> TrainContext:
        cfg = self.config
        if cfg.batch_size % world_size:
            raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {world_size} processes")
        device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.model.to(device)
        if self.teacher is not None:
            self.teacher.to(device).eval().requires_grad_(False)
        return TrainContext(model=self.model, forward=self.model, config=cfg, device=device, teacher=self.teacher,
                            rank=rank, world_size=world_size, out_dir=self.out_dir)

    def _prepare_teacher_cache(self, ctx: TrainContext) -> None:
        """Build (or reuse) the stored teacher outputs when the run reads them; rank 0 first under DDP."""
        self._teacher_outputs = self._cache_report = None
        if self.teacher is None or not uses_teacher_cache(self.strategy, self.source, self.config.teacher_cache):
            return
        cache = self.teacher_cache if self.teacher_cache is not None else TeacherCache(self.teacher,
                                                                                         cache_root(self.out_dir))
        images = self.source.lr_images()
        if ctx.world_size > 1:
            import torch.distributed as dist

            if ctx.rank == 0:
                self._cache_report = cache.build(images, ctx.device)
            dist.barrier()
            if ctx.rank != 0:
                self._cache_report = cache.build(images, ctx.device)
        else:
            self._cache_report = cache.build(images, ctx.device)
        self._teacher_outputs = CachedTeacherOutputs(self.source, cache)

    def _fresh_start(self) -> None:
        last = self.out_dir / LAST if self.out_dir is not None else None
        if last is not None and last.exists() and not self.force:
            raise OutputExistsError(f"{last} exists: resume from it, or use --force to start over")
        torch.manual_seed(self.config.seed)
        return None

    def _wrap_ddp(self, ctx: TrainContext) -> None:
        if ctx.world_size == 1:
            return
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        ctx.forward = DistributedDataParallel(self.model, device_ids=ids)  # broadcasts rank 0's weights
        for p in self.strategy.extra_params():
            dist.broadcast(p.data, 0)

    def _unwrap_ddp(self, ctx: TrainContext) -> None:
        """Drop the DDP wrapper (and its gradient buckets) at the end of the run."""
        if ctx.forward is not self.model:
            ctx.forward = self.model
            gc.collect()

    # -- optimiser ---------------------------------------------------------------------------------------------------
    def _params(self) -> list[nn.Parameter]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return params + [p for p in self.strategy.extra_params() if p.requires_grad]

    def _build_optimizer(self, ctx: TrainContext) -> None:
        """A fresh optimiser and scheduler (at the start and at every round start)."""
        c = self.config
        if c.optimizer == "adam":
            opt = torch.optim.Adam(self._params(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
        else:
            opt = torch.optim.SGD(self._params(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        ctx.optimizer, ctx.scheduler = opt, self._scheduler(opt, ctx.steps_per_round)

    def _scheduler(self, opt: torch.optim.Optimizer, total: int) -> Any:
        c = self.config
        if c.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=c.step_size, gamma=c.gamma)
        if c.scheduler == "onecycle":
            cycle = c.optimizer == "adam" or c.momentum > 0
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.max_lr or c.lr, total_steps=total,
                                                       pct_start=c.pct_start, cycle_momentum=cycle)
        return None

    # -- the loop ----------------------------------------------------------------------------------------------------
    def _loop(self, ctx: TrainContext, start: int) -> None:
        t0 = time.perf_counter() - self._elapsed
        self.model.train()
        for s in range(start, self.config.steps):
            if s % ctx.steps_per_round == 0:
                ctx.round = s // ctx.steps_per_round
                self._build_optimizer(ctx)
                self.strategy.on_round_start(ctx)
            loss = self._train_step(ctx, s)
            ctx.step = s + 1
            self._after_step(ctx, loss, time.perf_counter() - t0)

    def _train_step(self, ctx: TrainContext, s: int) -> torch.Tensor:
        batch = self._batch(ctx, s)
        ctx.metrics = {}
        loss = self.strategy.loss(ctx, batch)
        if not torch.isfinite(loss.detach()).all():
            raise ConfigError(f"the loss became {float(loss.detach())} at step {s + 1}: "
                              "lower the learning rate or set grad_clip")
        ctx.optimizer.zero_grad(set_to_none=True)
        (loss * ctx.world_size if self.config.reduction == "sum" and ctx.world_size > 1 else loss).backward()
        self._sync_extra_grads(ctx)
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self._params(), self.config.grad_clip)
        ctx.optimizer.step()
        if ctx.scheduler is not None:
            ctx.scheduler.step()
        return loss.detach()

    def _sync_extra_grads(self, ctx: TrainContext) -> None:
        if ctx.world_size == 1:
            return
        for p in self.strategy.extra_params():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            _all_reduce_mean(p.grad, ctx.world_size)

    def _batch(self, ctx: TrainContext, s: int) -> Batch:
        lr, hr = self.source.batch(s, ctx.rank, ctx.world_size)
        lr, hr = lr.to(ctx.device, torch.float32), hr.to(ctx.device, torch.float32)
        self._check_pair(lr, hr, ctx.world_size)
        m = self.model
        batch = Batch(x=model_input(m, to_model_space(m, lr)), y=to_model_space(m, hr), lr=lr, hr=hr)
        if self._teacher_outputs is not None:
            batch.teacher_y = self._teacher_outputs(s, ctx.rank, ctx.world_size).to(ctx.device, torch.float32)
        elif self.strategy.needs_teacher or self.strategy.needs_teacher_features:
            self._teach(batch)
        return batch

    def _check_pair(self, lr: torch.Tensor, hr: torch.Tensor, world_size: int) -> None:
        rows, s = self.config.batch_size // world_size, self.model.scale
        if lr.dim() != 4 or lr.shape[1] != 3 or lr.shape[0] != rows:
            raise DataError(f"the data source gave an LR batch of shape {tuple(lr.shape)}; "
                            f"expected {rows}×3×H×W RGB (batch_size {self.config.batch_size} / {world_size})")
        if hr.shape != (rows, 3, lr.shape[2] * s, lr.shape[3] * s):
            raise DataError(f"the data source gave HR {tuple(hr.shape)} for LR {tuple(lr.shape)}; "
                            f"expected HR = LR × {s}")

    @torch.no_grad()
    def _teach(self, batch: Batch) -> None:
        t = self.teacher
        if self._feature_names is None:
            want = self.strategy.needs_teacher_features
            self._feature_names = self.strategy.teacher_feature_names(t) if want else []
        with capture_outputs(t, self._feature_names) as feats:
            batch.teacher_y = t(model_input(t, to_model_space(t, batch.lr)))
        if self.strategy.needs_teacher_features:
            batch.teacher_features = list(feats)

    def _after_step(self, ctx: TrainContext, loss: torch.Tensor, elapsed: float) -> None:
        self.strategy.on_step_end(ctx)
        if ctx.step % self.config.epoch_length == 0:
            self.strategy.on_epoch_end(ctx)
        if ctx.world_size > 1:
            loss = _global_loss(loss, ctx.world_size, self.config.reduction)
        self._last_loss, self._elapsed = float(loss), elapsed
        record = self._record(ctx, elapsed)
        c, done = self.config, ctx.step == self.config.steps
        validated = bool((done or (c.val_every and ctx.step % c.val_every == 0)) and self.validate and ctx.rank == 0)
        if validated:
            record.update(self._run_validation())
        if done or ctx.step % c.log_every == 0 or validated:  # every validation is kept in the history
            self.history.append(record)
            log.info("step %d/%d loss %.6g lr %.3g", ctx.step, c.steps, record["loss"], record["lr"])
        if done or (c.ckpt_every and ctx.step % c.ckpt_every == 0):
            self._save(ctx)
        if self.progress is not None and ctx.rank == 0:
            self.progress(record)

    def _record(self, ctx: TrainContext, elapsed: float) -> dict[str, Any]:
        lr = float(ctx.optimizer.param_groups[0]["lr"])
        metrics = {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in ctx.metrics.items()}
        return {"step": ctx.step, "steps": self.config.steps, "loss": self._last_loss, "lr": lr,
                "elapsed": elapsed, "round": ctx.round, "epoch": ctx.epoch, **metrics}

    def _run_validation(self) -> dict[str, float]:
        self.model.eval()
        try:
            with torch.no_grad():
                return {k: float(v) for k, v in self.validate(self.model).items()}
        finally:
            self.model.train()

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def _train_state(self, ctx: TrainContext) -> dict[str, Any]:
        return {
            "step": ctx.step, "round": ctx.round, "world_size": ctx.world_size,
            "config": self.config.to_dict(),
            "optimizer": _to_cpu(ctx.optimizer.state_dict()),
            "scheduler": ctx.scheduler.state_dict() if ctx.scheduler is not None else None,
            "strategy": {"name": self.strategy.name, "params": dict(self.strategy.params),
                         "state": _to_cpu(self.strategy.state_dict())},
            "extra_params": [p.detach().cpu() for p in self.strategy.extra_params()],
            "rng": _rng_state(), "history": list(self.history), "elapsed": self._elapsed,
            "last_loss": self._last_loss,
        }

    def _save(self, ctx: TrainContext) -> None:
        if self.out_dir is None or ctx.rank != 0:
            return
        save_checkpoint(self.model, self.out_dir / LAST, extra={"train_state": self._train_state(ctx)}, force=True)

    def _read_resume(self, path: str | os.PathLike) -> dict[str, Any]:
        raw = read_raw(path)
        if not (isinstance(raw, dict) and raw.get("format") == FORMAT and "train_state" in raw):
            raise CheckpointError(f"{path}: holds no training state to resume from (use a last.pt from training)")
        if raw["arch"] != self.model.arch or _plain(raw["hparams"]) != _plain(self.model.hparams):
            raise CheckpointError(f"{path}: was trained for {raw['arch']} {raw['hparams']}, "
                                  f"not {self.model.arch} {self.model.hparams}")
        self._check_resume_settings(raw["train_state"], path)
        return raw

    def _check_resume_settings(self, state: dict[str, Any], path: str | os.PathLike) -> None:
        saved, now = state["config"], self.config.to_dict()
        defaults = TrainConfig().to_dict()  # a setting added later: runs saved before it used its default
        diff = sorted(k for k in now if k not in RESUME_FREE and _plain(saved.get(k, defaults[k])) != _plain(now[k]))
        if diff:
            pairs = ", ".join(f"{k}: {saved.get(k)!r} → {now[k]!r}" for k in diff)
            raise ConfigError(f"{path}: cannot resume with different settings ({pairs}); use the run's settings")
        strat = state["strategy"]
        if strat["name"] != self.strategy.name or _plain(strat["params"]) != _plain(self.strategy.params):
            raise ConfigError(f"{path}: was trained with strategy {strat['name']} {strat['params']}, "
                              f"not {self.strategy.name} {self.strategy.params}")

    def _load_state(self, ctx: TrainContext, raw: dict[str, Any]) -> None:
        st = raw["train_state"]
        self.model.load_state_dict(raw["state_dict"])
        self.model.provenance = list(raw.get("provenance", []))
        extra = self.strategy.extra_params()
        if len(extra) != len(st["extra_params"]):
            raise CheckpointError(f"strategy {self.strategy.name} has {len(extra)} extra parameter tensors, "
                                  f"the checkpoint {len(st['extra_params'])}")
        with torch.no_grad():
            for p, saved in zip(extra, st["extra_params"], strict=True):
                p.copy_(saved)
        self.strategy.load_state_dict(st["strategy"]["state"])
        ctx.optimizer.load_state_dict(st["optimizer"])
        if ctx.scheduler is not None:
            ctx.scheduler.load_state_dict(st["scheduler"])
        _set_rng_state(st["rng"])
        self.history, self._elapsed = list(st["history"]), float(st["elapsed"])
        self._last_loss = float(st["last_loss"])

    def _finish(self, ctx: TrainContext, resumed_from: int | None) -> TrainResult:
        self.model.eval()
        last = final = None
        if self.out_dir is not None:
            last = self.out_dir / LAST
            if ctx.rank == 0:
                final = save_checkpoint(self.model, self.out_dir / FINAL, force=True)
        if ctx.world_size > 1:
            import torch.distributed as dist

            dist.barrier()  # every rank returns once rank 0's files are written
        return TrainResult(self.model, ctx.step, self._last_loss, list(self.history), self._elapsed,
                           resumed_from, last, final, self._cache_report)


# -- validation -------------------------------------------------------------------------------------------------------
def psnr_validator(pairs: Sequence[Any], *, y: bool = True, name: str = "val_psnr") -> Validator:
    """A ``validate`` callback: mean PSNR (Y channel by default, ``scale`` px border crop, 8-bit rounding)
    of the model over ``pairs`` (objects with RGB NCHW [0, 1] ``lr`` and ``hr``, e.g. ``EvalPair``)."""
    def validate(model: SRModel) -> dict[str, float]:
        dev = next(model.parameters()).device
        vals = [float(psnr(super_resolve(model, _batched(p.lr).to(dev)).cpu(), p.hr.cpu(), crop=model.scale, y=y))
                for p in pairs]
        return {name: sum(vals) / len(vals)}

    return validate


def _batched(x: torch.Tensor) -> torch.Tensor:
    """(C,H,W) → (1,C,H,W); batches unchanged (eval pairs hold single images)."""
    return x.unsqueeze(0) if x.dim() == 3 else x


# -- helpers ----------------------------------------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """Normalise plain data for comparison (tuples → lists)."""
    return json.loads(json.dumps(obj))


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _rng_state() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
