"""Recipes: a TOML file naming a list of stages, run with caching into a run folder.

```toml
name = "demo"            # optional; default: the file's stem
out = "runs/demo"        # the run folder (relative to the recipe file); default runs/<name>
seed = 0

[[stage]]
id = "teacher"           # optional; default: <kind><index>
kind = "train"
arch = "edsr"
...

[[stage]]
kind = "eval"
model = "@teacher"       # "@id" refers to the artifact of an earlier stage
```
Each stage kind registers a params dataclass and a function ``run(params, ctx) -> StageOutput``.
A stage is skipped (cached) when its key — a hash of its kind, parameters, the keys/contents of its inputs and
the srcompress version — matches the key stored beside its artifact.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .compat import tomllib
from .config import from_dict
from .errors import ConfigError, DataError
from .fileio import atomic_write_text, file_sha256


@dataclass
class StageOutput:
    artifact: Path  # the file the stage produced (inside its folder)
    summary: dict[str, Any] = field(default_factory=dict)  # numbers worth showing in the run summary


@dataclass
class StageKind:
    params: type
    run: Callable[[Any, StageContext], StageOutput]
    #: names of params fields that refer to model files or "@id" artifacts (hashed into the cache key)
    inputs: tuple[str, ...] = ()


_STAGES: dict[str, StageKind] = {}


def register_stage(kind: str, params: type, *, inputs: tuple[str, ...] = ()) -> Callable:
    def deco(fn: Callable) -> Callable:
        _STAGES[kind] = StageKind(params, fn, inputs)
        return fn

    return deco


def stage_kinds() -> list[str]:
    _load_builtin_stages()
    return sorted(_STAGES)


@dataclass
class Stage:
    id: str
    kind: str
    params: Any


@dataclass
class Recipe:
    name: str
    out: Path
    seed: int
    stages: list[Stage]
    source: Path | None = None


@dataclass
class StageContext:
    """What a stage function gets besides its params: where to write, how to resolve "@id", the seed."""

    recipe: Recipe
    stage: Stage
    folder: Path
    artifacts: dict[str, Path]
    progress: Callable[[dict], None] | None = None

    def resolve(self, ref: str) -> Path:
        """A "@id" reference → that stage's artifact; anything else → a path relative to the recipe file."""
        if ref.startswith("@"):
            if ref[1:] not in self.artifacts:
                raise ConfigError(f"stage {self.stage.id}: {ref} does not name an earlier stage")
            return self.artifacts[ref[1:]]
        p = Path(ref)
        if not p.is_absolute() and self.recipe.source is not None:
            p = self.recipe.source.parent / p
        return p

    @property
    def seed(self) -> int:
        return self.recipe.seed


def parse_recipe(data: dict[str, Any], *, source: Path | None = None) -> Recipe:
    """Validate a recipe dict (as read from TOML) into typed stages; every unknown key is reported."""
    _load_builtin_stages()
    known = {"name", "out", "seed", "stage"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"recipe: unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    name = str(data.get("name") or (source.stem if source else "recipe"))
    base = source.parent if source else Path.cwd()
    out = Path(data.get("out", f"runs/{name}"))
    out = (out if out.is_absolute() else base / out).resolve()
    seed = data.get("seed", 0)
    if not isinstance(seed, int):
        raise ConfigError(f"recipe: seed must be an integer, got {seed!r}")
    raw_stages = data.get("stage", [])
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ConfigError("recipe: no stages; add at least one [[stage]] table with a kind")
    stages = [_parse_stage(i, s) for i, s in enumerate(raw_stages)]
    ids = [s.id for s in stages]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"recipe: duplicate stage id(s) {', '.join(dup)}")
    return Recipe(name, out, seed, stages, source)


def _parse_stage(i: int, raw: Any) -> Stage:
    if not isinstance(raw, dict) or "kind" not in raw:
        raise ConfigError(f"stage[{i}]: every [[stage]] needs a kind ({', '.join(sorted(_STAGES))})")
    body = dict(raw)
    kind = body.pop("kind")
    if kind not in _STAGES:
        raise ConfigError(f"stage[{i}]: unknown kind {kind!r}; choose one of {', '.join(sorted(_STAGES))}")
    sid = str(body.pop("id", f"{kind}{i}"))
    if not sid.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"stage[{i}]: id {sid!r} must be letters, digits, '-' or '_'")
    return Stage(sid, kind, from_dict(_STAGES[kind].params, body, f"stage {sid} ({kind})"))


def load_recipe(path: str | Path) -> Recipe:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"recipe not found: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    return parse_recipe(data, source=p.resolve())


def _file_digest(p: Path) -> str:
    return file_sha256(p)


def _input_digest(ref: str, ctx: StageContext, keys: dict[str, str]) -> str:
    """An input's identity: the key of the stage it names ("@id"), else the file's SHA-256."""
    if ref.startswith("@"):
        return keys.get(ref[1:], ref)
    p = ctx.resolve(ref)
    return _file_digest(p) if p.is_file() else ref


def stage_key(stage: Stage, ctx: StageContext, keys: dict[str, str]) -> str:
    """Hash of what determines the stage's output: kind, params, input contents/keys, seed, version."""
    inputs = {}
    for name in _STAGES[stage.kind].inputs:
        value = getattr(stage.params, name)
        if value is not None:
            refs = value if isinstance(value, list) else [value]
            inputs[name] = [_input_digest(str(r), ctx, keys) for r in refs]
    blob = json.dumps({"kind": stage.kind, "params": asdict(stage.params), "inputs": inputs,
                       "seed": ctx.seed, "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StageResult:
    id: str
    kind: str
    status: str  # "ran" | "cached"
    seconds: float
    artifact: str
    summary: dict[str, Any]


def run_recipe(recipe: Recipe, *, progress: Callable[[dict], None] | None = None,
               on_stage: Callable[[Stage, str], None] | None = None) -> list[StageResult]:
    """Run every stage in order (reusing cached artifacts); write ``summary.json`` and ``summary.md``."""
    recipe.out.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Path] = {}
    keys: dict[str, str] = {}
    results = []
    for stage in recipe.stages:
        ctx = StageContext(recipe, stage, recipe.out / stage.id, artifacts, progress)
        results.append(_run_stage(stage, ctx, keys, on_stage))
        artifacts[stage.id] = Path(results[-1].artifact)
    _write_summary(recipe, results)
    return results


def _run_stage(stage: Stage, ctx: StageContext, keys: dict[str, str],
               on_stage: Callable[[Stage, str], None] | None) -> StageResult:
    key = stage_key(stage, ctx, keys)
    keys[stage.id] = key
    meta_path = ctx.folder / "stage.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key and Path(meta.get("artifact", "")).is_file():
            if on_stage:
                on_stage(stage, "cached")
            return StageResult(stage.id, stage.kind, "cached", 0.0, meta["artifact"], meta.get("summary", {}))
    if on_stage:
        on_stage(stage, "running")
    ctx.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out = _STAGES[stage.kind].run(stage.params, ctx)
    seconds = time.perf_counter() - t0
    meta = {"key": key, "kind": stage.kind, "params": asdict(stage.params), "artifact": str(out.artifact),
            "summary": out.summary, "seconds": round(seconds, 2)}
    atomic_write_text(meta_path, json.dumps(meta, indent=2, default=str), force=True)
    return StageResult(stage.id, stage.kind, "ran", seconds, str(out.artifact), out.summary)


def _write_summary(recipe: Recipe, results: list[StageResult]) -> None:
    data = {"recipe": recipe.name, "source": str(recipe.source), "seed": recipe.seed,
            "stages": [asdict(r) for r in results]}
    atomic_write_text(recipe.out / "summary.json", json.dumps(data, indent=2, default=str), force=True)
    lines = [f"# Run of recipe `{recipe.name}`", "", "| stage | kind | status | seconds | artifact | summary |",
             "|---|---|---|---|---|---|"]
    for r in results:
        summ = ", ".join(f"{k}={_fmt(v)}" for k, v in r.summary.items())
        lines.append(f"| {r.id} | {r.kind} | {r.status} | {r.seconds:.1f} | {Path(r.artifact).name} | {summ} |")
    atomic_write_text(recipe.out / "summary.md", "\n".join(lines) + "\n", force=True)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


_BUILTINS_LOADED = False


def _load_builtin_stages() -> None:
    """Import the modules that register stage kinds (kept lazy: they import torch)."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from . import stages  # noqa: F401
