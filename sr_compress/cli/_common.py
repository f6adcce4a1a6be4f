"""What every command shares: one rich console, one way to fail, common options."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from ..errors import SrCompressError, first_line
from ..registry import Registry
from ._types import FINITE, POSITIVE

console = Console()  # stdout: results
err_console = Console(stderr=True)  # stderr: progress, warnings, errors


def debug() -> bool:
    return os.environ.get("SRCOMPRESS_DEBUG", "") not in ("", "0")


def split_verbose(args: list[str] | None) -> tuple[list[str], bool]:
    """``srcompress -v CMD …``: a leading ``-v``/``--verbose`` (or SRCOMPRESS_VERBOSE=1) shows third-party
    warnings; returns the arguments without it."""
    argv = list(sys.argv[1:] if args is None else args)
    shown = os.environ.get("SRCOMPRESS_VERBOSE", "") not in ("", "0")
    while argv and argv[0] in ("-v", "--verbose"):
        argv.pop(0)
        shown = True
    return argv, shown


class _WarningsToLog(logging.Filter):
    """Third-party warnings (torch, numpy, PIL, onnxruntime) are captured into the ``py.warnings`` logger;
    they reach stderr only with SRCOMPRESS_DEBUG=1 or -v, so a refusal stays one line."""

    def __init__(self, show: bool) -> None:
        super().__init__()
        self.show = show

    def filter(self, record: logging.LogRecord) -> bool:
        return self.show or record.name != "py.warnings"


def capture_warnings(show: bool) -> None:
    """Route ``warnings.warn`` through logging (``py.warnings``), shown on stderr only when ``show``."""
    logging.captureWarnings(True)
    root = logging.getLogger()
    for h in root.handlers:
        for f in [f for f in h.filters if isinstance(f, _WarningsToLog)]:
            h.removeFilter(f)
        h.addFilter(_WarningsToLog(show))
    logging.getLogger("py.warnings").setLevel(logging.WARNING if show else logging.ERROR + 10)


def run_cli(group: click.Group, args: list[str] | None = None) -> None:
    """Run the click group; map SrCompressError (and the OS errors of :mod:`sr_compress.fileio`) to one
    stderr line and its exit code, anything else to 1. Third-party warnings go to the log, not stderr."""
    from ..fileio import file_system_error, is_file_system_error

    logging.basicConfig(level=logging.DEBUG if debug() else logging.WARNING, format="%(levelname)s %(message)s")
    args, shown = split_verbose(args)
    capture_warnings(debug() or shown)
    try:
        rv = group.main(args=args, standalone_mode=False, prog_name="srcompress")
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:  # one line, like every other error
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except SrCompressError as e:
        if debug():
            raise
        click.echo("error: " + " ".join(str(e).split()), err=True)  # one line, whatever the message holds
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        if debug() or not is_file_system_error(e):
            raise_internal(e)
        click.echo(f"error: {file_system_error(e)}", err=True)  # permission, disk full, parent a file, …
        sys.exit(2)
    except Exception as e:  # an internal bug: say so, keep the traceback for SRCOMPRESS_DEBUG=1
        if debug():
            raise
        raise_internal(e)


def raise_internal(e: BaseException) -> None:
    """An internal bug: one line and exit 1, or the traceback with SRCOMPRESS_DEBUG=1."""
    if debug():
        raise e
    click.echo(f"internal error: {type(e).__name__}: {first_line(e)} (set SRCOMPRESS_DEBUG=1 for the traceback)",
               err=True)
    sys.exit(1)


def force_option(f: Callable) -> Callable:
    return click.option("--force", is_flag=True, help="Replace an existing output file.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")(f)


def seed_option(f: Callable) -> Callable:
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def model_options(f: Callable) -> Callable:
    """Overrides for values a foreign checkpoint does not store (they are guessed and reported otherwise)."""
    f = click.option("--res-scale", type=FINITE, default=None, help="Override the residual scaling (EDSR).")(f)
    f = click.option("--img-range", type=POSITIVE, default=None,
                     help="Override the internal value range (255 for EDSR-PyTorch/BasicSR/RFDN/RLFN, 1 for "
                          "MMagic).")(f)
    f = click.option("--scale", "--model-scale", "model_scale", type=click.IntRange(2, 4), default=None,
                     help="Override the model's scale (2, 3 or 4; e.g. for multi-scale VDSR weights, or FSRCNN "
                          "weights, which do not store it).")(f)
    return f


def onnx_options(f: Callable) -> Callable:
    """What an ONNX graph may not tell (it is detected and reported otherwise; docs/checkpoints.md)."""
    f = click.option("--colour", type=click.Choice(["rgb", "y"]), default=None,
                     help="ONNX graphs: the colour the input takes, where its channel axis is symbolic.")(f)
    f = click.option("--input-range", type=click.Choice(["1", "255"]), default=None,
                     help="ONNX graphs: the value range the input takes ([0, 1] or [0, 255]) where the graph "
                          "does not show it.")(f)
    return f


def overrides_from(opts: dict[str, Any]) -> dict[str, Any]:
    """The hparam overrides given by ``model_options`` and ``onnx_options`` (None = not given)."""
    rng = opts.pop("input_range", None)
    over = {"res_scale": opts.pop("res_scale", None), "img_range": opts.pop("img_range", None),
            "scale": opts.pop("model_scale", None), "input_range": float(rng) if rng is not None else None,
            "colour": opts.pop("colour", None)}
    return {k: v for k, v in over.items() if v is not None}


class RegistryName(click.ParamType):
    """A name from one of the registries, or from a tuple of names a library module defines
    (``"module:attribute"``, imported only when a command runs or shows its help). The help lists the names, so
    it cannot go stale; an unknown name is the registry's own error (one line, exit 2), or click's
    "Invalid value" for a tuple, as ``click.Choice`` says it."""

    name = "name"

    def __init__(self, where: str) -> None:
        self.where = where

    def source(self) -> Any:
        module, attr = self.where.split(":")
        return getattr(importlib.import_module(module), attr)

    def names(self) -> list[str]:
        src = self.source()
        return src.names() if isinstance(src, Registry) else list(src)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """The names, less private ones (a leading "_": test or plugin entries not meant for the help)."""
        return "[" + "|".join(n for n in self.names() if not n.startswith("_")) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        src = self.source()
        if isinstance(src, Registry):
            src.get(value)  # ConfigError listing the valid names
        elif value not in src:
            self.fail(f"{value!r} is not one of {', '.join(repr(n) for n in src)}.", param, ctx)
        return value


MODELS = RegistryName("sr_compress.models.registry:_MODELS")
STRATEGIES = RegistryName("sr_compress.train.strategies.base:_STRATEGIES")
TRAINING_PRESETS = RegistryName("sr_compress.train.presets:PRESETS")
RUNTIME_PRESETS = RegistryName("sr_compress.deploy.runners:ORT_PRESETS")
DEGRADATIONS = RegistryName("sr_compress.data.degrade:DEGRADATIONS")
OPTIMIZERS = RegistryName("sr_compress.train.trainer:OPTIMIZERS")
SCHEDULERS = RegistryName("sr_compress.train.trainer:SCHEDULERS")


def show_warnings(warnings: list[str]) -> None:
    for w in warnings:
        err_console.print(f"[yellow]warning[/] {w}")


class StageDefault(click.Option):
    """An option whose default is read from the operation that owns it (``default_from="module:DICT:key"``), when
    a command runs or shows its help — never written a second time in the CLI, and no heavy import before."""

    def __init__(self, *args: Any, default_from: str, **kwargs: Any) -> None:
        self.default_from = default_from
        kwargs.setdefault("show_default", True)
        super().__init__(*args, **kwargs)

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        module, attr, key = self.default_from.split(":")
        value = getattr(importlib.import_module(module), attr)[key]
        return "x".join(map(str, value)) if isinstance(value, tuple) and self.type.name in ("text", "WxH") else value


def stage_option(*decls: str, default_from: str, **kwargs: Any) -> Callable:
    """``click.option`` with its default taken from ``default_from`` (see :class:`StageDefault`)."""
    return click.option(*decls, cls=StageDefault, default_from=default_from, **kwargs)
