"""The strategy interface: what a training method supplies to the one loop, and the strategy registry.

A strategy computes the loss of one batch and may react to the loop's events. The trainer owns everything
else (data, optimiser, scheduler, clipping, checkpoints, DDP). See docs/training.md for a worked example.

Call order in :meth:`sr_compress.train.trainer.Trainer.fit`::

    on_train_start(ctx)                          # once per fit() call, also when resuming; before the
                                                 # optimiser exists, so extra_params() may be created here
    [restore state_dict() and extra params]      # only when resuming
    for each step:
        [round start: fresh optimiser/scheduler, then on_round_start(ctx)]
        loss(ctx, batch) → backward → clip → optimiser and scheduler step
        on_step_end(ctx)                         # ctx.step = steps completed
        [on_epoch_end(ctx) every epoch_length steps]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import nn

from ...errors import ConfigError
from ...registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from ...models import DepthOutputs, SRModel
    from ..trainer import TrainConfig


@dataclass
class Batch:
    """One training batch as a strategy sees it (all tensors NCHW float32 on the training device).

    ``x``: the model's input (model colour space; bicubic-upscaled for pre-upsampling models such as VDSR).
    ``y``: the target in the model's colour space (Y for 1-channel models), ``scale``× the LR size.
    ``lr`` / ``hr``: the RGB pair in [0, 1] the batch was made from.
    ``teacher_y``: the teacher's output for this batch (no gradient) when the strategy ``needs_teacher``.
    ``teacher_features``: outputs of the teacher modules named by :meth:`Strategy.teacher_feature_names`
    (no gradient) when the strategy ``needs_teacher_features``.
    """

    x: torch.Tensor
    y: torch.Tensor
    lr: torch.Tensor
    hr: torch.Tensor
    teacher_y: torch.Tensor | None = None
    teacher_features: list[torch.Tensor] | None = None


@dataclass
class TrainContext:
    """What the loop shares with its strategy. ``forward`` is the model to call for a prediction (the
    DistributedDataParallel wrapper under torchrun, so gradients are synchronised); ``model`` is the plain
    model (for hooks, snapshots, parameter access). Strategies may put numbers or scalar tensors in ``metrics``
    during :meth:`Strategy.loss`; they are reported (as floats) with the step's loss."""

    model: SRModel
    forward: Callable[..., torch.Tensor]
    config: TrainConfig
    device: torch.device
    teacher: SRModel | None = None
    rank: int = 0
    world_size: int = 1
    step: int = 0  # steps completed
    round: int = 0  # 0-based round index (config.rounds rounds of equal length)
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    out_dir: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def forward_depths(self, x: torch.Tensor) -> DepthOutputs:
        """The multi-output forward: every depth's prediction (and block features) of a multi-depth model
        (``model.multi_depth``, e.g. ASRN) in one pass, through ``forward`` (so DDP synchronises the gradients
        of all of them). Raises :class:`~sr_compress.errors.ConfigError` for a model without depths."""
        if not getattr(self.model, "multi_depth", False):
            raise ConfigError(f"{self.model.arch} has no multi-depth forward (needs a model such as asrn)")
        return self.forward(x, all_depths=True)

    @property
    def epoch(self) -> float:
        """Epochs elapsed as a fraction (``step / epoch_length``): PSPL's ``age``, MemSR's decay clock."""
        return self.step / self.config.epoch_length

    @property
    def total_epochs(self) -> float:
        return self.config.steps / self.config.epoch_length

    @property
    def steps_per_round(self) -> int:
        return self.config.steps // self.config.rounds

    @property
    def round_step(self) -> int:
        """Steps completed within the current round."""
        return self.step - self.round * self.steps_per_round


class Strategy:
    """Base class of every training strategy. Subclasses implement :meth:`loss` and override hooks as needed.

    Class attributes declare what the loop must provide: ``needs_teacher`` (``batch.teacher_y``) and
    ``needs_teacher_features`` (``batch.teacher_features``). Constructor keyword arguments are the strategy's
    hyper-parameters (plain JSON data; recorded in checkpoints and provenance).
    """

    name: ClassVar[str] = "?"
    needs_teacher: ClassVar[bool] = False
    needs_teacher_features: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    def loss(self, ctx: TrainContext, batch: Batch) -> torch.Tensor:
        """The scalar loss of ``batch``; call ``ctx.forward(batch.x)`` for the student's prediction."""
        raise NotImplementedError

    def teacher_feature_names(self, teacher: nn.Module) -> list[str]:
        """Names of the teacher submodules whose outputs become ``batch.teacher_features`` (default: the body
        blocks ``body.0 … body.{n-1}``)."""
        body = getattr(teacher, "body", None)
        if body is None:
            raise ConfigError(f"{self.name}: the teacher has no body blocks to take features from")
        return [f"body.{i}" for i in range(len(body))]

    # -- hooks (default: nothing) -------------------------------------------------------------------------------
    def on_train_start(self, ctx: TrainContext) -> None:
        """Once per ``fit()`` (fresh or resumed), before the optimiser is built: create extra params here."""

    def on_round_start(self, ctx: TrainContext) -> None:
        """At the first step of each round (``ctx.round``), after the optimiser and scheduler were reset.
        Not called when a resume lands inside a round: keep what it sets up in :meth:`state_dict`."""

    def on_epoch_end(self, ctx: TrainContext) -> None:
        """After every ``config.epoch_length`` steps (``ctx.epoch`` is then a whole number)."""

    def on_step_end(self, ctx: TrainContext) -> None:
        """After each optimiser step (``ctx.step`` = steps completed)."""

    def use_checkpoint_extra(self, extra: dict[str, Any]) -> None:
        """Called once before training with the non-weight entries of the student's checkpoint (e.g. the
        ``bridges`` plainify stores beside the weights). Default: ignore them. A strategy that needs an entry
        that is missing raises :class:`~sr_compress.errors.ConfigError` saying which stage makes it."""

    # -- state ----------------------------------------------------------------------------------------------------
    def extra_params(self) -> list[nn.Parameter]:
        """Trainable tensors the strategy adds (e.g. MemSR's bridges): optimised with the model, kept in
        checkpoints by the trainer and synchronised across DDP ranks. Must be on ``ctx.device`` and keep the
        same order between calls."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """The strategy's own state (tensors, numbers, strings, lists, dicts only) so a resume continues exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ConfigError(f"strategy {self.name!r} has no state but the checkpoint holds {sorted(state)}")

    def describe(self) -> dict[str, Any]:
        """JSON-able description: name and hyper-parameters."""
        return {"name": self.name, **self.params}


# -- registry -----------------------------------------------------------------------------------------------------
_STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
S = TypeVar("S", bound=type[Strategy])


def register_strategy(name: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`Strategy` subclass under ``name``."""

    def deco(cls: S) -> S:
        _STRATEGIES.add(name, cls)
        cls.name = name
        return cls

    return deco


def list_strategies() -> list[str]:
    return _STRATEGIES.names()


def strategy_class(name: str) -> type[Strategy]:
    return _STRATEGIES.get(name)


def build_strategy(name: str, **params: Any) -> Strategy:
    """Build a registered strategy; unknown hyper-parameters are an error that lists the valid ones."""
    cls = strategy_class(name)
    sig = inspect.signature(cls.__init__)
    valid = [n for n, p in sig.parameters.items()
             if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"strategy {name}: unknown hyper-parameter(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(valid) or 'none'}")
    return cls(**params)
