"""Recipes: a TOML list of stages run with caching (:mod:`.engine`); the built-in stage kinds (:mod:`.stages`)
adapt recipe data to the operations (:mod:`sr_compress.ops`). Importing this package registers them."""

from . import stages  # noqa: F401  (registration side effects)
from .engine import (
    _STAGES,
    ContentHasher,
    Recipe,
    Stage,
    StageContext,
    StageKind,
    StageOutput,
    StageResult,
    code_digest,
    load_recipe,
    parse_recipe,
    register_stage,
    run_recipe,
    stage_key,
    stage_kinds,
)

__all__ = ["_STAGES", "ContentHasher", "Recipe", "Stage", "StageContext", "StageKind", "StageOutput", "StageResult",
           "code_digest", "load_recipe", "parse_recipe", "register_stage", "run_recipe", "stage_key", "stage_kinds"]
