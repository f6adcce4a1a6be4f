"""The contract every structural stage keeps (docs/concepts.md, "Stages").

A stage is a function ``stage(model, **params) -> (new_model, report)``:

- it never mutates its input (it builds a new model, or works on a deep copy);
- it is deterministic for a seed (the stage seeds its own ``torch.Generator``; global RNG state is untouched);
- it appends one record to the new model's provenance (:func:`record_stage`);
- its report is plain data (:meth:`StageReport.to_dict` is JSON-able), shown by the CLI as a table.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from ..checkpoint import provenance_entry
from ..models import SRModel


@dataclass
class StageReport:
    """Base of the stages' reports: the stage's name and parameters. Subclasses add their own fields."""

    stage: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def record_stage(new: SRModel, source: SRModel, stage: str, **params: Any) -> SRModel:
    """Give ``new`` the provenance of ``source`` plus one record for ``stage`` with ``params``."""
    new.provenance = [*copy.deepcopy(getattr(source, "provenance", [])), provenance_entry(stage, **_plain(params))]
    return new


def _plain(obj: Any) -> Any:
    """Tuples → lists, numpy/torch scalars → Python numbers (so reports and provenance are JSON data)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    return obj
