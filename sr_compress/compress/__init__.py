"""The structural stages: each is a pure ``Module -> (Module, Report)`` function (see :mod:`.base`).

``slim`` (channel slimming by ρ, AIL §4), ``plainify`` (MemSR: exact plain equivalent + winning init) and
``truncate`` (ASRN elastic depth) live in their own modules; importing this package imports none of them.
"""

from .base import StageReport, record_stage

__all__ = ["StageReport", "record_stage"]
