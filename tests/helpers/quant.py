"""Shared settings of the quantisation tests: a fast calibration and a quiet onnxruntime quantiser."""

from __future__ import annotations

import logging

import pytest

#: two 16-px calibration patches, held-out crops of at most 48 px: seconds, not minutes
FAST = {"patches": 2, "patch_size": 16, "eval_max_side": 48}


@pytest.fixture(autouse=True)
def quiet_quantiser():
    """onnxruntime's quantiser warns about pre-processing on the root logger; import this into a module."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)
