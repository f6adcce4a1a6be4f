"""The ``srcompress`` command line. Each command lives in its own module and is a thin wrapper over the library.

Commands are registered lazily (``_COMMANDS``: name → "module:attribute"), so ``srcompress --help`` does not
import torch and each command imports only what it needs.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

_COMMANDS = {
    "train": "train_cmd:train",
    "finetune": "finetune_cmd:finetune",
    "eval": "eval_cmd:eval_",
    "upscale": "upscale_cmd:upscale",
    "info": "info_cmd:info",
    "run": "run_cmd:run",
    "export": "export_cmd:export",
    "bench": "bench_cmd:bench",
    "slim": "slim_cmd:slim",
    "plainify": "plainify_cmd:plainify",
    "truncate": "truncate_cmd:truncate",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in _COMMANDS if importlib.util.find_spec(f"{__name__}.{_COMMANDS[n].split(':')[0]}"))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="srcompress")
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
