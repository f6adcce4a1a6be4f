"""Shared fixtures: tiny models, temporary checkpoints, the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = Path(os.environ.get("SRCOMPRESS_SHARED_DATA", SHARED / "data"))

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _image_cache(tmp_path_factory):
    """Trainings on data folders decode into a per-session image cache, never into ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SRCOMPRESS_CACHE", str(tmp_path_factory.mktemp("image_cache")))
    yield
    mp.undo()


@pytest.fixture
def tiny_ckpt(tmp_path):
    """A tiny EDSR ×2 checkpoint (seed 0) in the test's folder."""
    from helpers.models import tiny_checkpoint

    return tiny_checkpoint(tmp_path / "tiny.pt")


@pytest.fixture
def invoke():
    """Run the CLI in-process like a user would: returns (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from sr_compress.cli import cli
    from sr_compress.cli._common import run_cli

    def _invoke(*args):
        runner = CliRunner()
        with runner.isolation() as streams:
            out, err = streams[0], streams[1]
            try:
                run_cli(cli, [str(a) for a in args])
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            return code, out.getvalue().decode(), err.getvalue().decode()

    return _invoke


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest's hook signature
    """The fuzz suite's numbers (cases, worst time and memory per category), when it ran (tests/fuzz)."""
    import sys

    budget = sys.modules.get("_fuzz_budget")
    if budget is not None:
        budget.print_summary(terminalreporter)
