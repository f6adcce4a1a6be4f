"""Our checkpoint format: ``{"format": "srcompress/1", "arch", "hparams", "state_dict", "provenance"}``, one
file, weights only, written atomically; a model rebuilt from it is :class:`LoadedModel`."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import CheckpointError, first_line
from ..fileio import atomic_write
from ..models import SRModel, build_model

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
    if getattr(model, "read_only", False):
        raise CheckpointError(f"{model.arch} models are read-only (an ONNX graph has no trainable weights to "
                              "save); export or keep the original file")
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
