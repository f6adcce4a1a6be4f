"""Checkpoints: our format (one file, weights only) and the entry point for foreign formats.

Our format is ``{"format": "srcompress/1", "arch", "hparams", "state_dict", "provenance"}`` written
atomically and read with ``torch.load(weights_only=True)`` only. Anything else is handed to
:mod:`sr_compress.foreign`, which detects EDSR-PyTorch, BasicSR, MMagic and pytorch-vdsr files.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import CheckpointError, first_line
from .fileio import atomic_write, require_file
from .models import SRModel, build_model

FORMAT = "srcompress/1"


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with what was guessed on the way."""

    model: SRModel
    source: str = "srcompress"  # or the foreign format's name
    guesses: list[str] = field(default_factory=list)  # human-readable "res_scale = 1.0 (guessed: ...)"
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level entries of our format (train state)

    @property
    def provenance(self) -> list[dict[str, Any]]:
        return self.model.provenance


def provenance_entry(stage: str, **params: Any) -> dict[str, Any]:
    """One provenance record: which stage ran, with which parameters, when, with which version."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {"stage": stage, "params": params, "time": now, "version": __version__}


def checkpoint_dict(model: SRModel, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = {"format": FORMAT, "arch": model.arch, "hparams": model.hparams, "state_dict": state,
            "provenance": list(getattr(model, "provenance", []))}
    data.update(extra or {})
    return data


def save_checkpoint(model: SRModel, path: str | os.PathLike, *, extra: dict[str, Any] | None = None,
                    force: bool = False, inputs: tuple = ()) -> Path:
    """Write ``model`` in our format, atomically. ``extra`` adds weights-only top-level entries."""
    data = checkpoint_dict(model, extra)
    return atomic_write(path, lambda p: torch.save(data, p), force=force, inputs=inputs)


def read_raw(path: str | os.PathLike) -> Any:
    """Read any checkpoint file without running code: ``weights_only`` first, then the restricted reader."""
    p = require_file(path, "checkpoint")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise CheckpointError(f"{p}: not a readable checkpoint ({first_line(e)})") from None
    except Exception as e:  # torch's reader raises many types on garbage (KeyError, RuntimeError, EOFError…)
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(e).__name__}: {first_line(e)})") from None
    from .foreign import restricted_load  # a pickled whole module: rebuild tensors without running code

    return restricted_load(p)


def model_from_dict(data: dict[str, Any], where: str = "checkpoint") -> SRModel:
    """Rebuild a model from our format's dict."""
    try:
        arch, hparams, state = data["arch"], data["hparams"], data["state_dict"]
    except KeyError as e:
        raise CheckpointError(f"{where}: srcompress checkpoint without {e.args[0]!r}") from None
    model = build_model(arch, **hparams)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{where}: weights do not fit {arch} {hparams} ({first_line(e)})") from None
    if missing or unexpected:
        raise CheckpointError(f"{where}: weights do not fit {arch} {hparams} "
                              f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
    model.provenance = list(data.get("provenance", []))
    return model.eval()


def load_checkpoint(path: str | os.PathLike, *, overrides: dict[str, Any] | None = None) -> LoadedModel:
    """Load our format or a detected foreign one; ``overrides`` replaces guessed hparams (res_scale, scale…)."""
    raw = read_raw(path)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        data = dict(raw)
        if overrides:
            data["hparams"] = {**data["hparams"], **overrides}
        model = model_from_dict(data, str(path))
        extra = {k: v for k, v in raw.items()
                 if k not in ("format", "arch", "hparams", "state_dict", "provenance")}
        return LoadedModel(model, "srcompress", [], extra)
    if isinstance(raw, dict) and str(raw.get("format", "")).startswith("srcompress/"):
        raise CheckpointError(f"{path}: written by a newer srcompress ({raw['format']}); upgrade to read it")
    from .foreign import import_foreign

    loaded = import_foreign(raw, overrides=overrides or {}, where=str(path))
    loaded.model.provenance = [provenance_entry("import", source=loaded.source, path=str(path),
                                                guesses=loaded.guesses)]
    return loaded
