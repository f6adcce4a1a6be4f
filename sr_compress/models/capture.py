"""Feature capture: the outputs of named submodules during a forward (used by distillation and by the
compression stages that calibrate on a teacher's features)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError


@contextmanager
def capture_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[list[torch.Tensor]]:
    """Record the outputs of the submodules ``names`` during the forward passes run inside the block.

    Yields a list that fills in call order (one tensor per named module per forward). Pass the plain model
    (``ctx.model``): the hooks fire also when the forward runs through the DDP wrapper (``ctx.forward``).

    Each output is recorded as a clone taken when the module returns: a following in-place op (EDSR's
    ``ReLU(inplace=True)`` after ``conv1``) would otherwise overwrite the recorded tensor, and the "output of
    ``body.0.conv1``" would silently be ``relu(conv1)``. The clone stays in the autograd graph (student
    features keep their gradient).
    """
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ConfigError(f"{type(model).__name__} has no submodule(s) {missing[:3]}")
    out: list[torch.Tensor] = []

    def record(_m: nn.Module, _i: Any, o: Any) -> None:
        out.append(o.clone() if isinstance(o, torch.Tensor) else o)

    handles = [modules[n].register_forward_hook(record) for n in names]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()
