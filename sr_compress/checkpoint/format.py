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


#: A provenance list is at most this long and this deep (a crafted one must not make ``info`` hang).
MAX_PROVENANCE_ENTRIES = 1000
MAX_PROVENANCE_DEPTH = 16


def check_provenance(prov: Any, where: str) -> list[dict[str, Any]]:
    """A checkpoint's provenance: a bounded list of plain-data records (CheckpointError otherwise)."""
    from ..validate import check_json_data

    if prov is None:
        return []
    if not isinstance(prov, (list, tuple)):
        raise CheckpointError(f"{where}: provenance must be a list of records, got {type(prov).__name__}")
    if len(prov) > MAX_PROVENANCE_ENTRIES:
        raise CheckpointError(f"{where}: provenance has {len(prov)} entries (at most {MAX_PROVENANCE_ENTRIES})")
    check_json_data(prov, f"{where}: provenance", max_depth=MAX_PROVENANCE_DEPTH, error=CheckpointError,
                    allow_nonfinite=True)
    return list(prov)


def model_from_dict(data: dict[str, Any], where: str = "checkpoint") -> SRModel:
    """Rebuild a model from our format's dict: hparams and provenance are checked, the implied tensors
    (built on the meta device) compared with the stored ones, and only then is the model allocated."""
    from ..errors import ConfigError
    from ..models.registry import check_state_fits, plan_model

    try:
        arch, hparams, state = data["arch"], data["hparams"], data["state_dict"]
    except KeyError as e:
        raise CheckpointError(f"{where}: srcompress checkpoint without {e.args[0]!r}") from None
    provenance = check_provenance(data.get("provenance", []), where)
    try:
        plan = plan_model(arch, hparams)
    except ConfigError as e:  # the file's hparams are wrong: say which file
        raise type(e)(f"{where}: {e}") from None
    check_state_fits(plan, state, where)
    model = build_model(arch, **plan.hparams)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{where}: weights do not fit {arch} {hparams} ({first_line(e)})") from None
    if missing or unexpected:
        raise CheckpointError(f"{where}: weights do not fit {arch} {hparams} "
                              f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
    model.provenance = provenance
    return model.eval()


def check_agrees(model: SRModel, where: str, **given: Any) -> None:
    """Options given for a model loaded from ``where`` must agree with it: ``check_agrees(m, "M.pt", scale=3)``
    on a ×2 model is a ConfigError (an option that contradicts the checkpoint is refused, never ignored).
    ``None`` values were not given and are skipped; names are hparams (``scale``, ``channels``, …)."""
    from ..errors import ConfigError

    for name, value in given.items():
        if value is None:
            continue
        have = model.scale if name == "scale" else model.channels if name == "channels" else model.hparams.get(name)
        if have != value:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{where} is a {model.arch} with {name} = {have!r}; {flag} {value!r} contradicts it "
                              f"(leave {flag} out, or start a new model with --arch)")
