"""Checkpoints: our format, the formats we import, and the code-free reader (docs/checkpoints.md).

- :mod:`.format` — our format (``save_checkpoint``, ``model_from_dict``, ``LoadedModel``, provenance);
- :mod:`.unpickle` — the restricted unpickler for pickled whole modules (security-critical, runs no code);
- :mod:`.foreign` — detection and import of EDSR-PyTorch, BasicSR, MMagic and pytorch-vdsr weights;
- :mod:`.onnx_model` — ONNX graphs as read-only models (onnxruntime), detected by suffix or content;
- this module — the entry points: :func:`read_raw` (any file, no code run) and :func:`load_checkpoint`.

Our files are read with ``torch.load(weights_only=True)`` only; anything that needs more is read by
:func:`.unpickle.restricted_load` or refused.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError, first_line
from ..fileio import require_file
from .foreign import import_foreign
from .format import (
    FORMAT,
    LoadedModel,
    check_agrees,
    checkpoint_dict,
    model_from_dict,
    provenance_entry,
    save_checkpoint,
)
from .onnx_model import OnnxModel, is_onnx_file, load_onnx_model, model_fingerprint
from .unpickle import restricted_load

__all__ = ["FORMAT", "LoadedModel", "OnnxModel", "check_agrees", "checkpoint_dict", "is_onnx_file", "load_checkpoint",
           "load_onnx_model", "model_fingerprint", "model_from_dict", "provenance_entry", "read_raw",
           "save_checkpoint"]


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
    return restricted_load(p)  # a pickled whole module: rebuild tensors without running code


def load_checkpoint(path: str | os.PathLike, *, overrides: dict[str, Any] | None = None) -> LoadedModel:
    """Load our format, a detected foreign one, or an ONNX graph (a read-only :class:`OnnxModel`);
    ``overrides`` replaces guessed hparams (res_scale, scale…; for ONNX: scale, input_range, colour)."""
    if is_onnx_file(require_file(path, "checkpoint")):
        loaded = load_onnx_model(path, overrides=overrides)
        loaded.model.provenance = [provenance_entry("import", source="onnx", path=str(path),
                                                    guesses=loaded.guesses)]
        return loaded
    onnx_only = sorted(k for k in ("input_range", "colour") if (overrides or {}).get(k) is not None)
    if onnx_only:
        raise ConfigError(f"{path}: {', '.join(onnx_only)} appl{'y' if len(onnx_only) > 1 else 'ies'} to ONNX "
                          "graphs only; a checkpoint's range and colour are known")
    raw = read_raw(path)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        data = dict(raw)
        if overrides:
            if not isinstance(data.get("hparams"), dict):
                raise CheckpointError(f"{path}: hparams must be a mapping of names to values, "
                                      f"got {type(data.get('hparams')).__name__}")
            data["hparams"] = {**data["hparams"], **overrides}
        model = model_from_dict(data, str(path))
        extra = {k: v for k, v in raw.items()
                 if k not in ("format", "arch", "hparams", "state_dict", "provenance")}
        return LoadedModel(model, "srcompress", [], extra)
    if isinstance(raw, dict) and str(raw.get("format", "")).startswith("srcompress/"):
        raise CheckpointError(f"{path}: written by a newer srcompress ({raw['format']}); upgrade to read it")
    loaded = import_foreign(raw, overrides=overrides or {}, where=str(path))
    loaded.model.provenance = [provenance_entry("import", source=loaded.source, path=str(path),
                                                guesses=loaded.guesses)]
    return loaded
