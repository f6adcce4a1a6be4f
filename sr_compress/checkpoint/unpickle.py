"""The code-free pickle reader (security-critical: read docs/checkpoints.md, "Safety", before changing it).

:func:`restricted_load` is for files ``torch.load(weights_only=True)`` refuses, typically pickled whole
modules such as pytorch-vdsr's ``{'epoch', 'model'}`` releases. It never imports a module named in the file
and never calls a callable named there, except an allow-list that only rebuilds tensors and plain containers.
Every other class becomes an inert stand-in that just records its pickled state; a pickle that would *call*
anything else (``os.system``, an unknown function, a class constructor) is refused with
:class:`~sr_compress.errors.UnsafeCheckpointError`. Whole modules come back as their ``state_dict``
(``_parameters`` and persistent ``_buffers``, dotted names, like ``nn.Module.state_dict``).
"""

from __future__ import annotations

import pickle
import struct
import tarfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch

from ..errors import CheckpointError, UnsafeCheckpointError, first_line

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of torch.save's pre-1.6 (non-zip) format
RESAVE_HINT = ("if you trust the file, load it where its code exists and re-save the weights with "
               "torch.save(model.state_dict(), 'weights.pt'), then load that file")
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


