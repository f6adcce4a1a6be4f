"""What every command shares: one rich console, one way to fail, common options."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from ..errors import SrCompressError

console = Console()  # stdout: results
err_console = Console(stderr=True)  # stderr: progress, warnings, errors


def debug() -> bool:
    return os.environ.get("SRCOMPRESS_DEBUG", "") not in ("", "0")


def run_cli(group: click.Group, args: list[str] | None = None) -> None:
    """Run the click group; map SrCompressError to one stderr line and its exit code, anything else to 1."""
    logging.basicConfig(level=logging.DEBUG if debug() else logging.WARNING, format="%(levelname)s %(message)s")
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
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # an internal bug: say so, keep the traceback for SRCOMPRESS_DEBUG=1
        if debug():
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (set SRCOMPRESS_DEBUG=1 for the traceback)", err=True)
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
    f = click.option("--res-scale", type=float, default=None, help="Override the residual scaling (EDSR).")(f)
    f = click.option("--img-range", type=float, default=None,
                     help="Override the internal value range (255 for EDSR-PyTorch/BasicSR, 1 for MMagic).")(f)
    f = click.option("--scale", "--model-scale", "model_scale", type=click.IntRange(2, 4), default=None,
                     help="Override the model's scale (2, 3 or 4; e.g. for multi-scale VDSR weights).")(f)
    return f


def overrides_from(opts: dict[str, Any]) -> dict[str, Any]:
    """The hparam overrides given by ``model_options`` (None = not given)."""
    over = {"res_scale": opts.pop("res_scale", None), "img_range": opts.pop("img_range", None),
            "scale": opts.pop("model_scale", None)}
    return {k: v for k, v in over.items() if v is not None}
