"""The recipe engine: a TOML file naming a list of stages, run with caching into a run folder.

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
A stage is skipped (cached) when its key — a hash of its kind, parameters, the keys/contents of its inputs
(files and data folders by content), the seed, and srcompress's version and source code — matches the key
stored beside its artifact; ``run_recipe(..., fresh=True)`` (``srcompress run --fresh``) runs every stage.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..compat import tomllib
from ..config import from_dict
from ..data.datasets import SKIMAGE_PHOTOS, skimage_data_dir
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_text, file_sha256, folder_lock
from ..registry import Registry
from ..validate import check_json_data


@dataclass
class StageOutput:
    artifact: Path  # the file the stage produced (inside its folder)
    summary: dict[str, Any] = field(default_factory=dict)  # numbers worth showing in the run summary
    warnings: list[str] = field(default_factory=list)  # what the operation warned about (shown by `run`)


@dataclass
class StageKind:
    params: type
    run: Callable[[Any, StageContext], StageOutput]
    #: names of params fields that refer to model files or "@id" artifacts (hashed into the cache key)
    inputs: tuple[str, ...] = ()


_STAGES: Registry[StageKind] = Registry("stage kind")


def register_stage(kind: str, params: type, *, inputs: tuple[str, ...] = ()) -> Callable:
    """Decorator: register ``fn(params, ctx) -> StageOutput`` as stage ``kind`` with its params dataclass;
    ``inputs`` names the params fields that refer to files, folders or "@id" artifacts (the cache key)."""

    def deco(fn: Callable) -> Callable:
        _STAGES.add(kind, StageKind(params, fn, inputs))
        return fn

    return deco


def stage_kinds() -> list[str]:
    return _STAGES.names()


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

    def data(self, ref: str) -> str:
        """A stage's ``data`` value as the loaders take it: "default", or the folder resolved like any path."""
        return ref if ref == "default" else str(self.resolve(ref))

    @property
    def seed(self) -> int:
        return self.recipe.seed


#: A recipe is at most this big, this deep and this long (a hostile file must not exhaust the parser or start
#: 100,000 stages).
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_DEPTH = 16
MAX_STAGES = 1000


def parse_recipe(data: dict[str, Any], *, source: Path | None = None) -> Recipe:
    """Validate a recipe dict (as read from TOML) into typed stages; every unknown key is reported.
    Bounded: at most :data:`MAX_STAGES` stages, :data:`MAX_RECIPE_DEPTH` levels, finite numbers only."""
    if not isinstance(data, dict):
        raise ConfigError(f"recipe: expected a table of keys, got {type(data).__name__}")
    stages_given = data.get("stage")
    if isinstance(stages_given, list) and len(stages_given) > MAX_STAGES:
        raise ConfigError(f"recipe: {len(stages_given)} stages (at most {MAX_STAGES})")
    check_json_data(data, "recipe", max_depth=MAX_RECIPE_DEPTH)
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
        raise ConfigError(f"stage[{i}]: every [[stage]] needs a kind ({', '.join(_STAGES.names())})")
    body = dict(raw)
    kind = body.pop("kind")
    if kind not in _STAGES:
        raise ConfigError(f"stage[{i}]: unknown kind {kind!r}; choose one of {', '.join(_STAGES.names())}")
    sid = str(body.pop("id", f"{kind}{i}"))
    if not sid.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"stage[{i}]: id {sid!r} must be letters, digits, '-' or '_'")
    return Stage(sid, kind, from_dict(_STAGES.get(kind).params, body, f"stage {sid} ({kind})"))


def load_recipe(path: str | Path) -> Recipe:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"recipe not found: {p}")
    if p.stat().st_size > MAX_RECIPE_BYTES:
        raise ConfigError(f"{p}: {p.stat().st_size:,} bytes is too large for a recipe (at most {MAX_RECIPE_BYTES:,})")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply (at most {MAX_RECIPE_DEPTH} levels)") from None
    return parse_recipe(data, source=p.resolve())


class ContentHasher:
    """SHA-256 of files and folders, remembering each file's digest by (path, size, mtime) in ``cache``
    (a JSON file in the run folder) so that unchanged files of a large data folder are not read again."""

    def __init__(self, cache: Path | None = None) -> None:
        self.cache = cache
        self._known: dict[str, list] = {}
        if cache is not None and cache.is_file():
            try:
                self._known = json.loads(cache.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._known = {}
        self._dirty = False

    def file(self, p: Path) -> str:
        st = p.stat()
        key, stamp = str(p.resolve()), [st.st_size, st.st_mtime_ns, st.st_ino]
        hit = self._known.get(key)
        if hit is not None and hit[:3] == stamp:
            return hit[3]
        digest = file_sha256(p)
        self._known[key] = [*stamp, digest]
        self._dirty = True
        return digest

    def folder(self, root: Path) -> str:
        """Names, sizes and contents of every file under ``root`` (hidden files and folders excluded)."""
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                h.update(f"{rel.as_posix()}\0{p.stat().st_size}\0{self.file(p)}\n".encode())
        return h.hexdigest()

    def save(self) -> None:
        if self.cache is not None and self._dirty:
            atomic_write_text(self.cache, json.dumps(self._known), force=True)
            self._dirty = False


def default_data_digest(hasher: ContentHasher) -> str:
    """Identity of the default data: the contents of the bundled photos the default splits use."""
    folder = skimage_data_dir()
    h = hashlib.sha256()
    for name, file in sorted(SKIMAGE_PHOTOS.items()):
        path = folder / file
        h.update(f"{name}\0{hasher.file(path) if path.is_file() else 'missing'}\n".encode())
    return h.hexdigest()


_CODE_DIGEST: str | None = None


def code_digest() -> str:
    """SHA-256 of srcompress's own source files: a code change invalidates every cached stage."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        root = Path(__file__).resolve().parents[1]  # the sr_compress package
        h = hashlib.sha256()
        for p in sorted(root.rglob("*.py")):
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


def _input_digest(ref: str, ctx: StageContext, keys: dict[str, str], hasher: ContentHasher) -> str:
    """An input's identity: the key of the stage it names ("@id"), the contents of the default data
    ("default"), of a file or of every file in a folder; a path that does not exist is keyed by its name."""
    if ref.startswith("@"):  # the stage's key and its artifact's content (a regenerated artifact counts)
        artifact = ctx.artifacts.get(ref[1:])
        content = hasher.file(artifact) if artifact is not None and artifact.is_file() else "none"
        return f"{keys.get(ref[1:], ref)}:{content}"
    if ref == "default":
        return default_data_digest(hasher)
    p = ctx.resolve(ref)
    if p.is_file():
        return hasher.file(p)
    if p.is_dir():
        return "dir:" + hasher.folder(p)
    return "missing:" + ref


def stage_key(stage: Stage, ctx: StageContext, keys: dict[str, str], hasher: ContentHasher | None = None) -> str:
    """Hash of what determines the stage's output: kind, params, input contents/keys, seed, version and the
    source code of srcompress itself (docs/recipes.md, "What invalidates the cache")."""
    hasher = hasher or ContentHasher()
    inputs = {}
    for name in _STAGES.get(stage.kind).inputs:
        value = getattr(stage.params, name)
        if value is not None:
            refs = value if isinstance(value, list) else [value]
            inputs[name] = [_input_digest(str(r), ctx, keys, hasher) for r in refs]
    blob = json.dumps({"kind": stage.kind, "params": asdict(stage.params), "inputs": inputs,
                       "seed": ctx.seed, "version": __version__, "code": code_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StageResult:
    id: str
    kind: str
    status: str  # "ran" | "cached"
    seconds: float
    artifact: str
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def run_recipe(recipe: Recipe, *, progress: Callable[[dict], None] | None = None,
               on_stage: Callable[[Stage, str], None] | None = None, fresh: bool = False,
               wait: bool = False) -> list[StageResult]:
    """Run every stage in order (reusing cached artifacts unless ``fresh``); write ``summary.json`` and
    ``summary.md``. The run folder is locked for the duration (:func:`~sr_compress.fileio.folder_lock`): a
    second run into it is refused with the holder's pid and start time, or waits for it with ``wait``."""
    with folder_lock(recipe.out, wait=wait):
        return _run_locked(recipe, progress, on_stage, fresh)


def _run_locked(recipe: Recipe, progress: Callable[[dict], None] | None,
                on_stage: Callable[[Stage, str], None] | None, fresh: bool) -> list[StageResult]:
    hasher = ContentHasher(recipe.out / ".digests.json")
    artifacts: dict[str, Path] = {}
    keys: dict[str, str] = {}
    results = []
    try:
        for stage in recipe.stages:
            ctx = StageContext(recipe, stage, recipe.out / stage.id, artifacts, progress)
            keys[stage.id] = stage_key(stage, ctx, keys, hasher)
            results.append(_run_stage(stage, ctx, keys[stage.id], on_stage, fresh))
            artifacts[stage.id] = Path(results[-1].artifact)
    finally:
        hasher.save()
    _write_summary(recipe, results)
    return results


def _run_stage(stage: Stage, ctx: StageContext, key: str, on_stage: Callable[[Stage, str], None] | None,
               fresh: bool) -> StageResult:
    meta_path = ctx.folder / "stage.json"
    run_dir = ctx.recipe.out
    if meta_path.is_file() and not fresh:
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, OSError):
            meta = {}  # a damaged record: run the stage again
        artifact = _artifact_path(meta.get("artifact"), run_dir) if isinstance(meta, dict) else None
        if artifact is not None and meta.get("key") == key and artifact.is_file():
            if on_stage:
                on_stage(stage, "cached")
            return StageResult(stage.id, stage.kind, "cached", 0.0, str(artifact), meta.get("summary", {}),
                               meta.get("warnings", []))
    if on_stage:
        on_stage(stage, "running")
    ctx.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out = _STAGES.get(stage.kind).run(stage.params, ctx)
    seconds = time.perf_counter() - t0
    meta = {"key": key, "kind": stage.kind, "params": asdict(stage.params),
            "artifact": _relative_artifact(out.artifact, run_dir),
            "summary": out.summary, "warnings": out.warnings, "seconds": round(seconds, 2)}
    atomic_write_text(meta_path, json.dumps(meta, indent=2, default=str), force=True)
    return StageResult(stage.id, stage.kind, "ran", seconds, str(out.artifact), out.summary, list(out.warnings))


def _relative_artifact(artifact: str | Path, run_dir: Path) -> str:
    """An artifact as recorded in ``stage.json`` / ``summary.json``: relative to the run folder (a copied or
    moved run folder keeps working), absolute only if it lies outside it."""
    p = Path(artifact).absolute()
    try:
        return p.relative_to(run_dir.absolute()).as_posix()
    except ValueError:
        return str(p)


def _artifact_path(recorded: Any, run_dir: Path) -> Path | None:
    """The artifact a ``stage.json`` records, inside ``run_dir``; None for anything else (an absolute path into
    another folder — e.g. the original of a copied run — or ``..`` escapes), so the stage runs again."""
    if not isinstance(recorded, str) or not recorded:
        return None
    p = Path(recorded)
    full = (p if p.is_absolute() else run_dir / p).resolve()
    root = run_dir.resolve()
    return full if full == root or root in full.parents else None


def _write_summary(recipe: Recipe, results: list[StageResult]) -> None:
    data = {"recipe": recipe.name, "source": str(recipe.source), "seed": recipe.seed,
            "stages": [{**asdict(r), "artifact": _relative_artifact(r.artifact, recipe.out)} for r in results]}
    atomic_write_text(recipe.out / "summary.json", json.dumps(data, indent=2, default=str), force=True)
    lines = [f"# Run of recipe `{recipe.name}`", "", "| stage | kind | status | seconds | artifact | summary |",
             "|---|---|---|---|---|---|"]
    for r in results:
        summ = ", ".join(f"{k}={_fmt(v)}" for k, v in r.summary.items())
        lines.append(f"| {r.id} | {r.kind} | {r.status} | {r.seconds:.1f} | {Path(r.artifact).name} | {summ} |")
    atomic_write_text(recipe.out / "summary.md", "\n".join(lines) + "\n", force=True)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)
