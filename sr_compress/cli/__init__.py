"""The ``srcompress`` command line. Each command lives in its own module and is a thin wrapper over the library.

Commands are found by file name (``<name>_cmd.py`` holds the click command ``<name>``) and imported lazily, so
``srcompress --help`` does not import torch and each command imports only what it needs.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from .. import __version__


def _command_modules() -> dict[str, str]:
    """Command name → module: every ``<name>_cmd.py`` in this package is the command ``<name>`` (found without
    importing it, so ``srcompress --help`` stays light; a new command is one new file, nothing to register)."""
    return {m.name[: -len("_cmd")]: m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd")}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_command_modules())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _command_modules().get(name)
        if module is None:
            return None
        found = [c for c in vars(importlib.import_module(f"{__name__}.{module}")).values()
                 if isinstance(c, click.Command) and c.name == name]
        return found[0] if found else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="srcompress")
@click.option("-v", "--verbose", is_flag=True, expose_value=False,
              help="Show third-party warnings (PyTorch, numpy, Pillow, onnxruntime); they go to the log otherwise.")
def cli() -> None:
    """Compress trained super-resolution networks into small, fast, memory-frugal students.

    \b
    Example:
      srcompress train --arch edsr --scale 2 -o teacher.pt
      srcompress eval teacher.pt
    """


def main() -> None:
    from ._common import run_cli

    run_cli(cli)
