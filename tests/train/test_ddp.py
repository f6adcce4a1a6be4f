"""DDP under torchrun: two processes on half-batches reach the weights of one process on the whole batch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _torchrun import run_torchrun

from sr_compress.models import build_model, tiny_hparams

HELPER = Path(__file__).resolve().parents[1] / "_ddp_train.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                       reason="this torch build has no torch.distributed gloo backend"),
]


def _helper():
    spec = importlib.util.spec_from_file_location("_ddp_train", HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """One torchrun launch (2 CPU processes, gloo) training with the mean and then the sum reduction."""
    out = tmp_path_factory.mktemp("ddp")
    run_torchrun(HELPER, out)
    return out


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ddp_equals_single_process(ddp_run, reduction, tmp_path):
    helper = _helper()
    ddp = torch.load(ddp_run / reduction / "last.pt", weights_only=True)
    state = ddp["train_state"]
    assert state["world_size"] == 2 and state["step"] == helper.STEPS
    assert sorted(p.name for p in (ddp_run / reduction).iterdir()) == ["final.pt", "last.pt"]  # rank 0 only

    single = helper.run(str(tmp_path), reduction)
    start = helper.initial_model().state_dict()
    moved = max((v - start[k]).abs().max().item() for k, v in single.model.state_dict().items())
    assert moved > 1e-3  # the runs really trained
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][name], value, atol=1e-5, rtol=0, msg=name)
    # the reported loss is the whole global batch's (mean of means / sum of sums)
    assert state["last_loss"] == pytest.approx(single.last_loss, rel=1e-5)


def test_ddp_multi_depth_forward_equals_single_process(ddp_run, tmp_path):
    """The multi-output forward (ASRN + dsl_psd) through DistributedDataParallel: same weights as one process."""
    helper = _helper()
    ddp = torch.load(ddp_run / "dsl_psd" / "last.pt", weights_only=True)
    assert ddp["train_state"]["world_size"] == 2
    single = helper.run_multi_depth(str(tmp_path))
    torch.manual_seed(0)
    start = build_model("asrn", **tiny_hparams("asrn", helper.SCALE)).state_dict()
    assert (ddp["state_dict"]["body.0.fuse_in.weight"] - start["body.0.fuse_in.weight"]).abs().max() > 1e-3
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][name], value, atol=1e-5, rtol=0, msg=name)
    assert ddp["train_state"]["last_loss"] == pytest.approx(single.last_loss, rel=1e-5)
    assert {"l_routine", "l_dsl", "l_psd"} <= set(ddp["train_state"]["history"][-1])


def test_ddp_with_stored_teacher_outputs_equals_single_process(ddp_run, tmp_path):
    """KD reading the teacher cache under DDP: rank 0 built the entries once, the weights equal one process's."""
    helper = _helper()
    ddp = torch.load(ddp_run / "kd_cached" / "last.pt", weights_only=True)
    assert ddp["train_state"]["world_size"] == 2
    assert len(list((ddp_run / "kd_cached" / "teacher_cache").glob("*.npy"))) == 3
    single = helper.run_kd_cached(str(tmp_path))
    assert single.teacher_cache.built == 3
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][name], value, atol=1e-5, rtol=0, msg=name)
    assert ddp["train_state"]["last_loss"] == pytest.approx(single.last_loss, rel=1e-5)


def test_ddp_with_the_cached_loader_equals_single_process(ddp_run, tmp_path):
    """Image files → uint8 cache (built by both ranks at once) → prefetching loader → DDP: the weights of one
    process on the whole batch."""
    helper = _helper()
    ddp = torch.load(ddp_run / "cached" / "run" / "last.pt", weights_only=True)
    assert ddp["train_state"]["world_size"] == 2 and ddp["train_state"]["step"] == helper.STEPS
    assert len(list((ddp_run / "cached" / "cache").glob("*.npy"))) == 3
    single = helper.run_cached(str(tmp_path))
    start = helper.initial_model().state_dict()
    assert max((v - start[k]).abs().max().item() for k, v in single.model.state_dict().items()) > 1e-3
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][name], value, atol=1e-5, rtol=0, msg=name)
