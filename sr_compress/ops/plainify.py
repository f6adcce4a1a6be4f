"""Operation ``plainify``: a residual teacher checkpoint → a plain student with its bridges (MemSR winning
initialisation) or its exact plain equivalent, saved as our checkpoint."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from ..checkpoint import save_checkpoint
from ..compress.plainify import PlainifyOutcome, plainify
from ..config import defaults_of
from ..deploy.bound import graph_cost
from ..deploy.onnx import simplify_graph, to_onnx
from ..fileio import check_output
from ..models import SRModel
from .common import data_inputs, load_model

#: every plainify default (eps rule, size, scheme, tail, round_to, patches, patch_size, columns, shift_coef…),
#: written once: in :func:`sr_compress.compress.plainify.plainify`
DEFAULTS = defaults_of(plainify)


def teacher_bound(model: SRModel, out_size: tuple[int, int]) -> int:
    """The residual teacher's theoretical activation peak (bytes) from its exported graph at output ``out_size``."""
    s = model.scale
    shape = [1, model.channels, math.ceil(out_size[1] / s), math.ceil(out_size[0] / s)]
    return graph_cost(simplify_graph(to_onnx(copy.deepcopy(model).float().eval())), shape).bound_bytes


def plainify_file(source: str | Path, out: str | Path, *, force: bool = False,
                  overrides: dict[str, Any] | None = None, teacher_memory: bool = True,
                  **options: Any) -> PlainifyOutcome:
    """Load ``source`` (any supported checkpoint format), :func:`plainify` it with ``options``, save it (with its
    bridges) to ``out``. ``teacher_memory``: report the teacher's bound beside the student's (winning mode)."""
    check_output(out, force=force, inputs=(source, *data_inputs(options.get("data"))))  # before the long work
    loaded = load_model(source, overrides=overrides)
    outcome = plainify(loaded.model, **options)
    if outcome.mode == "winning" and teacher_memory:
        outcome.report.teacher_bound_bytes = teacher_bound(loaded.model, outcome.report.bound_size)
    outcome.path = save_checkpoint(outcome.model, out, extra=outcome.extra, force=force, inputs=(source,))
    return outcome
