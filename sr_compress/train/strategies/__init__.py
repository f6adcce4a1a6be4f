"""Training strategies: one registry, one file per method. Importing this package registers them all."""

from . import ail, dsl_psd, kd, memsr, plain, pspl  # noqa: F401  (registration side effects)
from .base import (
    Batch,
    Strategy,
    TrainContext,
    build_strategy,
    list_strategies,
    register_strategy,
    strategy_class,
)

__all__ = ["Batch", "Strategy", "TrainContext", "build_strategy", "list_strategies",
           "register_strategy", "strategy_class"]
