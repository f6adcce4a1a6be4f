"""Generate docs/cli.md from the commands' own help (``python -m sr_compress.cli._docs > docs/cli.md``)."""

from __future__ import annotations

import click

from . import LazyGroup, cli

HEADER = """# CLI reference

Generated from the commands' `--help` by `python -m sr_compress.cli._docs > docs/cli.md`
(a test fails when this file is out of date).

Conventions shared by every command:
- bad input (missing or unreadable file, unknown name, bad value) prints **one line** on stderr starting with
  `error:` and exits **2**; a failed check (export mismatch, budget exceeded) exits **1**;
  `SRCOMPRESS_DEBUG=1` shows the traceback instead;
- outputs are written atomically, never over an input, and over an existing file only with `--force`;
- `--json` prints machine-readable output where a command prints a table; `--seed` wherever randomness enters.
"""


def cli_reference() -> str:
    root = click.Context(cli, info_name="srcompress", max_content_width=100, terminal_width=100,
                         help_option_names=["-h", "--help"])
    parts = [HEADER, "## srcompress", "", "```", cli.get_help(root), "```", ""]
    group: LazyGroup = cli  # type: ignore[assignment]
    for name in group.list_commands(root):
        cmd = group.get_command(root, name)
        ctx = click.Context(cmd, info_name=name, parent=root, max_content_width=100, terminal_width=100)
        parts += [f"## srcompress {name}", "", "```", cmd.get_help(ctx), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")
