"""The exceptions srcompress raises on purpose.

The CLI catches ``SrCompressError`` only: it prints the message as one line on stderr and exits with
``exit_code`` (2 for bad input, 1 for a failed check). Anything else is an internal bug (exit 1, traceback
with ``SRCOMPRESS_DEBUG=1``).
"""

from __future__ import annotations


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name): for one-line error messages."""
    lines = str(e).strip().splitlines()
    return lines[0][:limit] if lines else type(e).__name__


class SrCompressError(Exception):
    """Base class: a message a user can act on."""

    exit_code = 2


class InputError(SrCompressError):
    """Bad user input: arguments, files, images, configuration."""


class CheckpointError(InputError):
    """A checkpoint that cannot be read or understood."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would need to run code (unpickle arbitrary objects) to load."""


class DataError(InputError):
    """Images or folders that cannot be used (missing, empty, too small, wrong mode)."""


class ConfigError(InputError):
    """Invalid hyper-parameters, recipe keys or option combinations."""


class PlainifyError(ConfigError):
    """The model cannot be converted to a plain chain (the message names the module or the family's reason)."""


class OutputExistsError(InputError):
    """The output exists and ``--force`` was not given, or the output would overwrite an input."""


class VerificationError(SrCompressError):
    """A numerical check failed (export mismatch, non-exact conversion)."""

    exit_code = 1


class BudgetExceededError(SrCompressError):
    """A benchmarked model is over its memory or latency budget."""

    exit_code = 1
