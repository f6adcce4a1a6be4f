"""Checkpoints from other SR code bases: a code-free pickle reader and import into our canonical models.

Reading (:func:`restricted_load`) is for files ``torch.load(weights_only=True)`` refuses, typically
pickled whole modules such as pytorch-vdsr's ``{'epoch', 'model'}`` releases. It never imports a module
named in the file and never calls a callable named there, except an allow-list that only rebuilds
tensors and plain containers. Every other class becomes an inert stand-in that just records its pickled
state; a pickle that would *call* anything else (``os.system``, an unknown function, a class
constructor) is refused with :class:`UnsafeCheckpointError`. Whole modules come back as their
``state_dict`` (``_parameters`` and persistent ``_buffers``, dotted names, like ``nn.Module.state_dict``).

Importing (:func:`import_foreign`) detects EDSR-PyTorch, BasicSR (EDSR, MSRResNet), MMagic (EDSR) and
pytorch-vdsr weights from their keys, infers hyper-parameters from shapes, reports every guess, and
builds a model that computes what the source network computes, expressed in our convention
(float32 NCHW in [0, 1]; EDSR-PyTorch's 0..rgb_range input becomes ``img_range = rgb_range``).
"""

from __future__ import annotations

import logging
import pickle
import re
import struct
import tarfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch
from torch import nn

from .checkpoint import LoadedModel
from .errors import CheckpointError, ConfigError, UnsafeCheckpointError, first_line
from .models import SCALES, SRModel, build_model
from .models.base import DEFAULT_RGB_MEAN

log = logging.getLogger(__name__)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of torch.save's pre-1.6 (non-zip) format
RESAVE_HINT = ("if you trust the file, load it where its code exists and re-save the weights with "
               "torch.save(model.state_dict(), 'weights.pt'), then load that file")
KNOWN_FORMATS = ("srcompress", "EDSR-PyTorch (EDSR)", "BasicSR (EDSR, MSRResNet)", "MMagic (EDSR)",
                 "pytorch-vdsr (VDSR, also pickled whole modules)")
OVERRIDABLE = ("scale", "res_scale", "img_range", "rgb_mean", "rgb_std")
#: how a user sets each override from the command line (sr_compress.cli._common.model_options)
OVERRIDE_HINTS = {"scale": "--model-scale", "res_scale": "--res-scale", "img_range": "--img-range",
                  "rgb_mean": "overrides={'rgb_mean': ...}", "rgb_std": "overrides={'rgb_std': ...}"}
_MAX_DEPTH = 100


# ================================================================ restricted unpickling


class _Refused(Exception):
    """Loading would need code from the file to run; the message says which."""


class _Corrupt(Exception):
    """The file is not a well-formed checkpoint."""


class InertObject:
    """Stand-in for an instance of a class we never import: records its pickled state, has no behaviour.

    Pickles create instances with ``cls.__new__`` (NEWOBJ) and fill them with ``__setstate__`` (BUILD);
    both are allowed. *Calling* the class (REDUCE) would run its constructor, so ``__init__`` refuses.
    """

    qualname: ClassVar[str] = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _Refused(f"its pickle calls {self.qualname}()")

    def __setstate__(self, state: Any) -> None:
        self.__dict__["pickled_state"] = state

    @property
    def state(self) -> dict:
        """The recorded ``__dict__`` state (``{}`` if none or not a dict)."""
        s = self.__dict__.get("pickled_state")
        if isinstance(s, tuple) and len(s) == 2 and (s[0] is None or isinstance(s[0], dict)):
            s = s[0]  # (state, slotstate)
        return s if isinstance(s, dict) else {}

    def __repr__(self) -> str:
        return f"<not loaded: {self.qualname}>"


class _RecordedCall(InertObject):
    """Stand-in for a harmless value constructor (torch.device, numpy.dtype…): the call is recorded only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["call_args"] = args


def _stand_in(module: str, name: str, base: type) -> type:
    return type(name.rsplit(".", 1)[-1] or "Unknown", (base,), {"qualname": f"{module}.{name}"})


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _Storage:
    """A flat storage: ``root`` (1-D, contiguous) seen from ``offset`` for ``numel`` elements."""

    root: torch.Tensor
    offset: int
    numel: int


class _LegacyParameter:
    """torch < 0.4 pickled ``Parameter(data)`` followed by a BUILD of (requires_grad, volatile, hooks)."""

    def __init__(self, data: Any = None, requires_grad: Any = True) -> None:
        self.data = data

    def __setstate__(self, state: Any) -> None:
        pass


def _ints(v: Any, what: str) -> tuple[int, ...]:
    if not isinstance(v, (tuple, list)) or not all(type(i) is int and i >= 0 for i in v):
        raise _Corrupt(f"bad tensor {what} {str(v)[:60]}")
    return tuple(v)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    """Safe stand-in for torch._utils._rebuild_tensor(_v2): a strided view, bounds-checked."""
    if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
        raise _Corrupt("a tensor without a valid storage")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise _Corrupt("tensor size and stride disagree")
    end = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1 if all(size) else offset
    if end > storage.numel:
        raise _Corrupt("a tensor reaches past the end of its storage")
    return storage.root.as_strided(size, stride, storage.offset + offset)


def _rebuild_parameter(data: Any, *_ignored: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise _Corrupt("a parameter without tensor data")
    return data


def _new_stand_in(cls: Any, *_args: Any) -> InertObject:
    """Safe copyreg.__newobj__ / _reconstructor: only for our stand-in classes."""
    if not (isinstance(cls, type) and issubclass(cls, InertObject)):
        raise _Refused(f"its pickle constructs {str(cls)[:60]} through copyreg")
    return cls.__new__(cls)


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Protocol-2 pickles store bytes as ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("its pickle calls _codecs.encode with unexpected arguments")
    return text.encode("latin1")


_SAFE: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "object"): object,
    ("builtins", "bytearray"): bytearray, ("builtins", "complex"): complex,
    ("_codecs", "encode"): _latin1_encode,
    ("copyreg", "_reconstructor"): _new_stand_in, ("copyreg", "__newobj__"): _new_stand_in,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.nn.parameter", "Parameter"): _LegacyParameter,
}
_RECORDED = frozenset({
    ("torch", "device"), ("torch", "Size"), ("torch.nn.backends.thnn", "_get_thnn_function_backend"),
    ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
})
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}
# Referencing these at all is a red flag (nothing would run anyway: it is refused early, with a clear reason).
_DENY_ROOTS = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "importlib", "runpy", "pickle", "_pickle",
    "marshal", "code", "codeop", "ctypes", "pty", "webbrowser", "types", "io", "_io", "multiprocessing",
    "threading", "signal", "tempfile", "pathlib", "operator", "functools", "builtins", "_codecs", "codecs",
    "copyreg", "pdb", "timeit", "platform", "urllib", "http", "asyncio", "glob", "inspect", "gc", "commands",
})
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals only to the allow-list or to inert stand-ins; storages come from ``storage_for``."""

    def __init__(self, file: BinaryIO, storage_for: Callable[[tuple], _Storage]) -> None:
        super().__init__(file, encoding="latin1")
        self._storage_for = storage_for
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) in _SAFE:
            return _SAFE[module, name]
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module.split(".")[0] in _DENY_ROOTS:
            raise _Refused(f"its pickle references {module}.{name}")
        base = _RecordedCall if (module, name) in _RECORDED else InertObject
        return self._stand_ins.setdefault((module, name), _stand_in(module, name, base))

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise _Corrupt("malformed persistent id")
        kind = pid[0].decode("latin1") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module" and len(pid) == 4:  # legacy: (module, class, source file, source) → the class
            return pid[1]
        if kind == "storage":
            return self._storage_for(pid[1:])
        raise _Corrupt(f"unknown persistent id {str(kind)[:40]!r}")


def _no_storage(_args: tuple) -> _Storage:
    raise _Corrupt("tensor data outside a torch checkpoint")


def _element_size(stype: Any) -> tuple[torch.dtype, int]:
    if not isinstance(stype, _StorageType):
        raise _Corrupt(f"unknown storage type {str(stype)[:60]}")
    return stype.dtype, torch.empty((), dtype=stype.dtype).element_size()


def _flat(data: bytes, dtype: torch.dtype) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=dtype) if data else torch.empty(0, dtype=dtype)


def _read_zip(path: Path) -> Any:
    """torch.save's zip format: ``<name>/data.pkl`` plus one raw file per storage under ``<name>/data/``."""
    file_size = path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        pkl = next((n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") <= 1), None)
        if pkl is None:
            raise _Corrupt("a zip file without data.pkl (not a torch checkpoint)")
        prefix = pkl[: -len("data.pkl")]
        if prefix + "byteorder" in zf.namelist() and zf.read(prefix + "byteorder").strip() != b"little":
            raise _Corrupt("big-endian tensor data is not supported")
        cache: dict[str, _Storage] = {}

        def storage_for(args: tuple) -> _Storage:
            if len(args) < 4 or type(args[3]) is not int:
                raise _Corrupt("malformed storage record")
            dtype, size = _element_size(args[0])
            key, numel = str(args[1]), args[3]
            if key not in cache:
                info = zf.getinfo(f"{prefix}data/{key}")
                if info.file_size != numel * size or info.file_size > file_size:  # torch stores uncompressed
                    raise _Corrupt(f"storage {key} holds {info.file_size} bytes, expected {numel * size}")
                cache[key] = _Storage(_flat(zf.read(info), dtype), 0, numel)
            return cache[key]

        with zf.open(pkl) as f:
            return _RestrictedUnpickler(f, storage_for).load()


def _read_pickle_file(path: Path) -> Any:
    """A plain pickle, or torch.save's legacy format: magic, protocol, sys info, object, keys, storages."""
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        first = _RestrictedUnpickler(f, _no_storage).load()
        if type(first) is not int or first != LEGACY_MAGIC:
            return first
        _RestrictedUnpickler(f, _no_storage).load()  # protocol version
        sys_info = _RestrictedUnpickler(f, _no_storage).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
            raise _Corrupt("big-endian legacy checkpoints are not supported")
        storages: dict[str, _Storage] = {}
        result = _RestrictedUnpickler(f, lambda a: _legacy_storage(a, storages, file_size)).load()
        keys = _RestrictedUnpickler(f, _no_storage).load()
        _fill_legacy(f, keys, storages)
        return result


def _legacy_storage(args: tuple, storages: dict[str, _Storage], file_size: int) -> _Storage:
    """Legacy record ``(storage type, root key, location, numel, view or None)``; data is read later."""
    if len(args) != 5 or type(args[3]) is not int or args[3] < 0:
        raise _Corrupt("malformed storage record")
    dtype, size = _element_size(args[0])
    key, numel, view = str(args[1]), args[3], args[4]
    if numel * size > file_size:
        raise _Corrupt(f"storage {key} claims more bytes than the file has")
    root = storages.setdefault(key, _Storage(torch.empty(numel, dtype=dtype), 0, numel))
    if root.numel != numel or root.root.dtype != dtype:
        raise _Corrupt(f"storage {key} is declared twice with different sizes")
    if view is None:
        return root
    _view_key, offset, vsize = view if isinstance(view, tuple) and len(view) == 3 else (None, -1, -1)
    if type(offset) is not int or type(vsize) is not int or offset < 0 or vsize < 0 or offset + vsize > numel:
        raise _Corrupt(f"bad view of storage {key}")
    return _Storage(root.root, offset, vsize)


def _fill_legacy(f: BinaryIO, keys: Any, storages: dict[str, _Storage]) -> None:
    """Each storage: int64 little-endian element count, then the raw data, in ``keys`` order."""
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise _Corrupt("the storage list does not match the tensors")
    for key in map(str, keys):
        st = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * st.root.element_size()
        data = f.read(nbytes) if count == st.numel else b""
        if count != st.numel or len(data) != nbytes:
            raise _Corrupt(f"storage {key} is truncated or has the wrong size")
        if nbytes:
            st.root.copy_(_flat(data, st.root.dtype))


def _is_module(obj: Any) -> bool:
    s = obj.state if isinstance(obj, InertObject) else {}
    return isinstance(s.get("_parameters"), dict) and isinstance(s.get("_modules"), dict)


def _module_state(obj: InertObject, prefix: str, out: dict[str, torch.Tensor], depth: int) -> dict:
    """``nn.Module.state_dict`` of an inert module tree: parameters, persistent buffers, children."""
    if depth > _MAX_DEPTH:
        raise _Corrupt("modules nested too deeply")
    s = obj.state
    skip = s.get("_non_persistent_buffers_set") or ()
    buffers = [(k, v) for k, v in (s.get("_buffers") or {}).items() if k not in skip]
    for name, t in [*s["_parameters"].items(), *buffers]:
        t = t.data if isinstance(t, _LegacyParameter) else t
        if t is not None and not isinstance(t, torch.Tensor):
            raise _Corrupt(f"{prefix}{name} is not a tensor")
        if t is not None:
            out[f"{prefix}{name}"] = t.detach()
    for name, child in s["_modules"].items():
        if child is not None and not _is_module(child):
            raise _Corrupt(f"submodule {prefix}{name} is not a module")
        if child is not None:
            _module_state(child, f"{prefix}{name}.", out, depth + 1)
    return out


def _plain(obj: Any, depth: int = 0) -> Any:
    """Replace inert modules by their state dict, parameters by tensors, other stand-ins by a short string."""
    if depth > _MAX_DEPTH:
        raise _Corrupt("data nested too deeply")
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, _LegacyParameter):
        return _plain(obj.data, depth + 1)
    if _is_module(obj):
        return _module_state(obj, "", OrderedDict(), depth)
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        out.update((k, _plain(v, depth + 1)) for k, v in obj.items())
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return type(obj)(_plain(v, depth + 1) for v in obj)
    if obj is None or isinstance(obj, (str, bytes, bytearray, bool, int, float, complex)):
        return obj
    return f"<not loaded: {getattr(obj, 'qualname', type(obj).__name__)}>"


def restricted_load(path: Path) -> Any:
    """Read a checkpoint without running code from it (zip, legacy non-zip torch format or plain pickle).

    Tensors come back as CPU tensors in their stored dtype; pickled ``nn.Module`` objects (of any class,
    never imported) come back as their state dict; other unknown objects as ``"<not loaded: …>"``.
    Raises UnsafeCheckpointError if the pickle would call anything outside the tensor-rebuilding
    allow-list, CheckpointError if the file is truncated or malformed.
    """
    p = Path(path)
    try:
        if zipfile.is_zipfile(p):
            return _plain(_read_zip(p))
        if tarfile.is_tarfile(p):
            raise CheckpointError(f"{p}: a tar checkpoint (PyTorch < 0.1.10) is not supported; {RESAVE_HINT}")
        return _plain(_read_pickle_file(p))
    except _Refused as e:
        raise UnsafeCheckpointError(f"{p}: refused, loading it would run code ({e}); {RESAVE_HINT}") from None
    except CheckpointError:
        raise
    except (_Corrupt, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError, struct.error, zipfile.BadZipFile, OverflowError, RecursionError,
            MemoryError, UnicodeDecodeError, OSError) as e:
        raise CheckpointError(f"{p}: not a readable checkpoint ({first_line(e, 160)})") from None


# ================================================================ format detection and import


def guess_res_scale(n_feats: int, n_blocks: int) -> float:
    """EDSR convention (not stored in weights): 0.1 for the large model (F=256, B=32), else 1."""
    return 0.1 if (n_feats, n_blocks) == (256, 32) else 1.0


def _coerce(name: str, value: Any) -> Any:
    try:
        if name == "scale" and int(value) in SCALES and int(value) == value:
            return int(value)
        if name in ("res_scale", "img_range") and float(value) > 0:
            return float(value)
        if name in ("rgb_mean", "rgb_std") and len(value) == 3 and (name == "rgb_mean" or min(value) > 0):
            return [float(v) for v in value]
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"invalid {name} {value!r}: scale is one of {SCALES}; res_scale, img_range > 0; "
                      "rgb_mean, rgb_std three numbers (std > 0)")


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Options:
    """User overrides, consumed as the detected format asks for values; records every guess."""

    def __init__(self, overrides: dict[str, Any], where: str) -> None:
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - set(OVERRIDABLE))
        if unknown:
            raise ConfigError(f"unknown override(s) {', '.join(unknown)}; valid: {', '.join(OVERRIDABLE)}")
        self.left = {k: _coerce(k, v) for k, v in given.items()}
        self.where = where
        self.notes: list[str] = []

    def pick(self, name: str, guess: Any, why: str) -> Any:
        """The override if given, else ``guess`` (reported with ``why``)."""
        if name in self.left:
            value = self.left.pop(name)
            self.notes.append(f"{name} = {_fmt(value)} (set by override)")
            return value
        self.notes.append(f"{name} = {_fmt(guess)} ({why}; override with {OVERRIDE_HINTS[name]})")
        return guess

    def fixed(self, name: str, value: Any) -> Any:
        """A value the weights determine; an override must agree."""
        if name in self.left and self.left.pop(name) != value:
            raise CheckpointError(f"{self.where}: the weights are for {name} = {value}; "
                                  f"they cannot be used with a different {name}")
        return value

    def res_scale(self, n_feats: int, n_blocks: int) -> float:
        return self.pick("res_scale", guess_res_scale(n_feats, n_blocks),
                         f"not stored; EDSR convention for F={n_feats}, B={n_blocks}")

    def finish(self, source: str, arch: str) -> None:
        if self.left:
            raise ConfigError(f"{self.where}: {', '.join(sorted(self.left))} does not apply to "
                              f"{source} ({arch}) weights")


@dataclass
class _Plan:
    """A detected format: the model to build and the source convs that feed our convs, in order."""

    source: str
    arch: str
    hparams: dict[str, Any]
    convs: list[str]
    in_scale: torch.Tensor | None = None  # per-input-channel factor folded into the first conv
    out_scale: torch.Tensor | None = None  # per-output-channel factor folded into the last conv
    out_shift: torch.Tensor | None = None  # added to the last conv's bias (after out_scale)
    extra_keys: tuple[str, ...] = field(default_factory=tuple)  # source keys used outside the convs


def _conv_weight(sd: dict[str, Any], key: str, where: str) -> torch.Tensor:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        raise CheckpointError(f"{where}: {key} is missing or not a conv weight")
    return t


def _count(sd: dict[str, Any], pattern: str, where: str) -> int:
    """How many numbered blocks match ``pattern`` (one group: the index); they must be 0..n-1."""
    idx = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(pattern, k))})
    if idx != list(range(len(idx))):
        raise CheckpointError(f"{where}: blocks numbered {idx[:6]} are not 0..{len(idx) - 1}")
    return len(idx)


def _upscale(stages: list[torch.Tensor], n_feats: int, where: str) -> int:
    """Scale from the pixel-shuffle convs: two stages of 4F outputs = ×4, one of r²F outputs = ×r."""
    outs = [int(w.shape[0]) for w in stages]
    if outs == [4 * n_feats] * 2:
        return 4
    if len(outs) == 1 and outs[0] in (4 * n_feats, 9 * n_feats):
        return 2 if outs[0] == 4 * n_feats else 3
    raise CheckpointError(f"{where}: upsampler convs with {outs} outputs for F={n_feats} match no scale "
                          f"in {SCALES}")


def _nice(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` decimals when it only differs by float32 noise."""
    r = round(value, digits)
    return r if abs(value - r) <= 1e-6 * max(1.0, abs(value)) else value


def _shift_diag(sd: dict[str, Any], prefix: str, where: str) -> torch.Tensor:
    w = sd.get(f"{prefix}.weight")
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != (3, 3, 1, 1) or f"{prefix}.bias" not in sd:
        raise CheckpointError(f"{where}: {prefix} is not a 3-channel 1x1 mean shift")
    m = w.double().reshape(3, 3)
    if torch.count_nonzero(m - torch.diag(torch.diagonal(m))):
        raise CheckpointError(f"{where}: {prefix} mixes colour channels; not an EDSR mean shift")
    return torch.diagonal(m)


def _edsr_pytorch_shifts(sd: dict[str, Any], opts: _Options) -> tuple:
    """EDSR-PyTorch MeanShift convs → (img_range, rgb_mean, in_scale, out_scale, out_shift), exactly.

    ``sub(X) = S·X + d = S·(X − R·m)`` with ``m = −d / (S·R)``: with ``X = R·x`` that is our
    ``(x − m)·R`` followed by a head whose input channels are scaled by S. ``add(Y) = A·Y + c``
    divided by R is our ``Y'/R + m`` once the last conv is scaled by A and its bias shifted by c − R·m.
    """
    if "sub_mean.weight" not in sd:
        r = opts.pick("img_range", 255.0, "no mean-shift weights stored; EDSR-PyTorch default rgb_range")
        return r, opts.pick("rgb_mean", list(DEFAULT_RGB_MEAN), "not stored; DIV2K mean"), None, None, None
    s, a = _shift_diag(sd, "sub_mean", opts.where), _shift_diag(sd, "add_mean", opts.where)
    d, c = sd["sub_mean.bias"].double(), sd["add_mean.bias"].double()
    found = _nice(float(-d[0] / s[0] / DEFAULT_RGB_MEAN[0]), 0)
    r = opts.pick("img_range", found, "EDSR-PyTorch rgb_range, recovered from sub_mean.bias assuming the "
                  f"DIV2K red mean {DEFAULT_RGB_MEAN[0]}")
    mean = [_nice(float(v), 4) for v in -d / s / r]
    return r, mean, s, a, c - r * torch.tensor(mean, dtype=torch.float64)


def _plan_edsr_pytorch(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels = _conv_weight(sd, "head.0.weight", opts.where).shape[:2]
    n_blocks = _count(sd, r"body\.(\d+)\.body\.0\.weight", opts.where)
    ups = ["tail.0.0", "tail.0.2"] if "tail.0.2.weight" in sd else ["tail.0.0"]
    scale = opts.fixed("scale", _upscale([_conv_weight(sd, f"{u}.weight", opts.where) for u in ups],
                                         n_feats, opts.where))
    img_range, mean, s, a, shift = _edsr_pytorch_shifts(sd, opts)
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks,
          "res_scale": opts.res_scale(n_feats, n_blocks), "channels": channels, "img_range": img_range,
          "rgb_mean": mean}
    convs = ["head.0", *[f"body.{i}.body.{j}" for i in range(n_blocks) for j in (0, 2)], f"body.{n_blocks}",
             *ups, "tail.1"]
    shifts = tuple(f"{m}.{p}" for m in ("sub_mean", "add_mean") for p in ("weight", "bias") if s is not None)
    return _Plan("edsr-pytorch", "edsr", hp, convs, s, a, shift, shifts)


def _edsr_common(sd: dict[str, Any], opts: _Options, ups: list[str]) -> tuple[dict[str, Any], list[str]]:
    """BasicSR / MMagic EDSR: hparams without the range convention, and the conv order."""
    n_feats, channels = _conv_weight(sd, "conv_first.weight", opts.where).shape[:2]
    n_blocks = _count(sd, r"body\.(\d+)\.conv1\.weight", opts.where)
    scale = opts.fixed("scale", _upscale([_conv_weight(sd, f"{u}.weight", opts.where) for u in ups],
                                         n_feats, opts.where))
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks,
          "res_scale": opts.res_scale(n_feats, n_blocks), "channels": channels}
    convs = ["conv_first", *[f"body.{i}.conv{j}" for i in range(n_blocks) for j in (1, 2)], "conv_after_body",
             *ups, "conv_last"]
    return hp, convs


def _plan_basicsr_edsr(sd: dict[str, Any], opts: _Options) -> _Plan:
    ups = ["upsample.0", "upsample.2"] if "upsample.2.weight" in sd else ["upsample.0"]
    hp, convs = _edsr_common(sd, opts, ups)
    hp["img_range"] = opts.pick("img_range", 255.0, "not stored; BasicSR EDSR default")
    hp["rgb_mean"] = opts.pick("rgb_mean", list(DEFAULT_RGB_MEAN), "not stored; DIV2K mean, BasicSR default")
    return _Plan("basicsr", "edsr", hp, convs)


def _plan_mmagic_edsr(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_up = _count(sd, r"upsample\.(\d+)\.upsample_conv\.weight", opts.where)
    hp, convs = _edsr_common(sd, opts, [f"upsample.{k}.upsample_conv" for k in range(n_up)])
    hp["img_range"] = 1.0  # MMagic EDSRNet: (x − mean) / std on [0, 1] input
    hp["rgb_mean"] = opts.pick("rgb_mean", list(DEFAULT_RGB_MEAN), "not stored; DIV2K mean, MMagic default")
    std = torch.tensor(opts.pick("rgb_std", [1.0, 1.0, 1.0], "not stored; MMagic EDSR configs use (1, 1, 1)"),
                       dtype=torch.float64)
    return _Plan("mmagic", "edsr", hp, convs, 1.0 / std, std)


def _plan_basicsr_msrresnet(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels = _conv_weight(sd, "conv_first.weight", opts.where).shape[:2]
    n_blocks = _count(sd, r"body\.(\d+)\.conv1\.weight", opts.where)
    ups = ["upconv1", "upconv2"] if "upconv2.weight" in sd else ["upconv1"]
    scale = opts.fixed("scale", _upscale([_conv_weight(sd, f"{u}.weight", opts.where) for u in ups],
                                         n_feats, opts.where))
    hp = {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks, "channels": channels}
    convs = ["conv_first", *[f"body.{i}.conv{j}" for i in range(n_blocks) for j in (1, 2)], *ups,
             "conv_hr", "conv_last"]
    return _Plan("basicsr", "msrresnet", hp, convs)


def _plan_vdsr(sd: dict[str, Any], opts: _Options) -> _Plan:
    n_feats, channels = _conv_weight(sd, "input.weight", opts.where).shape[:2]
    n_layers = _count(sd, r"residual_layer\.(\d+)\.conv\.weight", opts.where)
    scale = opts.pick("scale", 2, "not stored; pytorch-vdsr weights serve x2, x3 and x4 alike, "
                      "give the scale you evaluate at")
    hp = {"scale": scale, "n_feats": n_feats, "n_layers": n_layers, "bias": "input.bias" in sd,
          "channels": channels}
    convs = ["input", *[f"residual_layer.{i}.conv" for i in range(n_layers)], "output"]
    return _Plan("pytorch-vdsr", "vdsr", hp, convs)


_DETECT: list[tuple[tuple[str, ...], Callable[[dict[str, Any], _Options], _Plan]]] = [
    (("input.weight", "residual_layer.0.conv.weight", "output.weight"), _plan_vdsr),
    (("head.0.weight", "tail.0.0.weight", "tail.1.weight"), _plan_edsr_pytorch),
    (("conv_first.weight", "conv_after_body.weight", "upsample.0.upsample_conv.weight"), _plan_mmagic_edsr),
    (("conv_first.weight", "conv_after_body.weight", "upsample.0.weight"), _plan_basicsr_edsr),
    (("conv_first.weight", "upconv1.weight", "conv_hr.weight"), _plan_basicsr_msrresnet),
]
_CONTAINERS = ("params_ema", "params", "state_dict", "model")
_PREFIXES = ("module.", "generator.", "model.")


def _unknown(obj: Any, where: str) -> CheckpointError:
    known = "; known formats: " + ", ".join(KNOWN_FORMATS)
    if not isinstance(obj, dict) or not obj:
        return CheckpointError(f"{where}: not a dict of weights (a {type(obj).__name__}){known}")
    keys = [str(k) for k in list(obj)[:5]] + (["…"] if len(obj) > 5 else [])
    return CheckpointError(f"{where}: unrecognised checkpoint layout (keys: {', '.join(keys)}){known}")


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _unwrap(raw: Any, where: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Descend params_ema → params → state_dict → model until a flat dict of tensors."""
    obj, notes = raw, []
    for _ in range(len(_CONTAINERS) + 1):
        if _is_state_dict(obj):
            return dict(obj), notes
        key = next((k for k in _CONTAINERS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), None)
        if key is None:
            break
        if key == "params_ema" and isinstance(obj.get("params"), dict):
            notes.append("weights: params_ema (the EMA copy) used, params ignored")
        obj = obj[key]
    raise _unknown(obj, where)


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop ``module.`` / ``model.`` (when on every key) and MMagic's ``generator.`` (keeping only those)."""
    notes: list[str] = []
    while True:
        hits = {p: [k for k in sd if k.startswith(p)] for p in _PREFIXES}
        p = next((p for p in _PREFIXES if hits[p] and (len(hits[p]) == len(sd) or p == "generator.")), None)
        if p is None:
            return sd, notes
        if len(hits[p]) < len(sd):
            other = next(k for k in sd if not k.startswith(p))
            n_other = len(sd) - len(hits[p])
            notes.append(f"weights: the generator's only, {n_other} other entries ignored ({other}…)")
        sd = {k[len(p):]: sd[k] for k in hits[p]}


def _folded(sd: dict[str, torch.Tensor], plan: _Plan, where: str) -> dict[str, torch.Tensor]:
    """Fold per-channel input / output factors and an output shift into the first / last conv.

    Exact: scaling a conv's input channels commutes with zero padding, and the bias is added everywhere.
    """
    src = dict(sd)
    first, last = f"{plan.convs[0]}.weight", plan.convs[-1]
    if plan.in_scale is not None:
        src[first] = (src[first].double() * _per_channel(plan.in_scale, src[first], 1, where)).float()
    if plan.out_scale is not None:
        w = src[f"{last}.weight"].double()
        src[f"{last}.weight"] = (w * _per_channel(plan.out_scale, w, 0, where)).float()
        if isinstance(src.get(f"{last}.bias"), torch.Tensor):
            src[f"{last}.bias"] = (src[f"{last}.bias"].double() * plan.out_scale).float()
    if plan.out_shift is not None:
        if not isinstance(src.get(f"{last}.bias"), torch.Tensor):
            raise CheckpointError(f"{where}: {last} has no bias to take the output mean shift")
        src[f"{last}.bias"] = (src[f"{last}.bias"].double() + plan.out_shift).float()
    return src


def _per_channel(factor: torch.Tensor, w: torch.Tensor, dim: int, where: str) -> torch.Tensor:
    if w.shape[dim] != factor.numel():
        raise CheckpointError(f"{where}: a {w.shape[dim]}-channel conv next to a "
                              f"{factor.numel()}-channel mean shift")
    return factor.view([-1 if i == dim else 1 for i in range(4)])


def _assemble(plan: _Plan, sd: dict[str, torch.Tensor], where: str) -> SRModel:
    """Build ``plan.arch`` and copy the source convs into it, checking every name and shape."""
    try:
        model = build_model(plan.arch, **plan.hparams)
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e}") from None
    ours = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(ours) != len(plan.convs):
        raise CheckpointError(f"{where}: {len(plan.convs)} convs in the file, {len(ours)} in {plan.arch}")
    src, state, used = _folded(sd, plan, where), model.state_dict(), set(plan.extra_keys)
    for mine, theirs in zip(ours, plan.convs, strict=True):
        for part in ("weight", "bias"):
            key = f"{mine}.{part}"
            if key in state:
                state[key] = _take(src, f"{theirs}.{part}", state[key].shape, plan, where)
                used.add(f"{theirs}.{part}")
    extra = sorted(set(sd) - used)
    if extra:
        raise CheckpointError(f"{where}: {plan.source} {plan.arch} weights with unexpected keys {extra[:4]}")
    model.load_state_dict(state)
    return model.eval()


def _take(src: dict[str, torch.Tensor], key: str, shape: torch.Size, plan: _Plan, where: str) -> torch.Tensor:
    t = src.get(key)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(f"{where}: {key} is missing ({plan.source} {plan.arch} layout)")
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{where}: {key} has shape {list(t.shape)}, expected {list(shape)} for "
                              f"{plan.arch} {_fmt_hparams(plan.hparams)}")
    return t.detach().to(torch.float32)


def _fmt_hparams(hp: dict[str, Any]) -> str:
    shown = ("scale", "n_feats", "n_blocks", "n_layers")
    return ", ".join(f"{k}={_fmt(v)}" for k, v in hp.items() if k in shown)


def _detect(sd: dict[str, torch.Tensor], where: str) -> Callable[[dict[str, Any], _Options], _Plan]:
    for keys, planner in _DETECT:
        if all(k in sd for k in keys):
            return planner
    if "trunk_net.0.conv1.weight" in sd:
        raise CheckpointError(f"{where}: MMagic MSRResNet weights are not supported (unlike BasicSR's, it "
                              "has no LeakyReLU after the upsampler, which our msrresnet has)")
    raise _unknown(sd, where)


def import_foreign(raw: Any, *, overrides: dict[str, Any], where: str) -> LoadedModel:
    """Detect a foreign checkpoint's format from its keys and rebuild it as one of our models.

    ``raw`` is what :func:`sr_compress.checkpoint.read_raw` returned. ``overrides`` (scale, res_scale,
    img_range, rgb_mean, rgb_std; None values ignored) replace guesses; an override that contradicts the
    weights is a CheckpointError, one that does not apply to the detected format a ConfigError. The model
    takes float32 NCHW input in [0, 1] (Y for VDSR) and computes the source network's function on it.
    """
    opts = _Options(overrides, where)
    sd, notes = _unwrap(raw, where)
    sd, more = _strip_prefixes(sd)
    plan = _detect(sd, where)(sd, opts)
    opts.finish(plan.source, plan.arch)
    model = _assemble(plan, sd, where)
    guesses = notes + more + opts.notes
    log.info("%s: %s weights imported as %s %s", where, plan.source, plan.arch, _fmt_hparams(plan.hparams))
    return LoadedModel(model=model, source=plan.source, guesses=guesses)
