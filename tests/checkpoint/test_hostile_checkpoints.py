"""Validate before allocating: a checkpoint's arch/hparams are checked (types, ranges, implied tensors and
activations on the meta device) before a module is built."""

from __future__ import annotations

import resource
import time

import pytest
import torch

from sr_compress.checkpoint import checkpoint_dict, load_checkpoint
from sr_compress.errors import CheckpointError, ConfigError, InputError
from sr_compress.models import build_model, list_models, tiny_hparams
from sr_compress.models.registry import MAX_PARAMS, check_hparams, check_state_fits, plan_model


@pytest.fixture
def tiny_edsr():
    torch.manual_seed(0)
    return build_model("edsr", **tiny_hparams("edsr"))


def _save(tmp_path, data, name="m.pt"):
    p = tmp_path / name
    torch.save(data, p)
    return p


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("arch", list_models())
def test_every_family_plans_on_meta_without_allocating(arch):
    hp = tiny_hparams(arch)
    plan = plan_model(arch, hp)
    real = build_model(arch, **hp)
    assert plan.shapes == {k: tuple(v.shape) for k, v in real.state_dict().items()}
    assert plan.params == sum(p.numel() for p in real.parameters())
    assert plan.activation_per_px is not None and plan.activation_per_px > 0


@pytest.mark.parametrize("change, match", [
    ({"n_feats": 10**9}, "out of range"),
    ({"n_blocks": 10**9}, "out of range"),
    ({"n_feats": -8}, "out of range"),
    ({"n_feats": 0}, r"out of range \[1,"),
    ({"n_feats": 2.5}, "out of range|integer|must be"),
    ({"res_scale": float("nan")}, "finite"),
    ({"img_range": 0.0}, "must be > 0"),
    ({"img_range": -1.0}, "must be > 0"),
    ({"img_range": float("inf")}, "finite"),
    ({"rgb_mean": [float("nan")] * 3}, "finite"),
    ({"n_feats": "64"}, "edsr"),
    ({"block_feats": list(range(1, 100_000))}, "entries|too large"),
    ({"n_feats": 16384, "n_blocks": 64}, "parameters"),
])
def test_hostile_hparams_are_refused_before_allocation(tmp_path, tiny_edsr, change, match):
    data = checkpoint_dict(tiny_edsr)
    data["hparams"] = {**data["hparams"], **change}
    p = _save(tmp_path, data)
    before, t0 = _rss_mb(), time.perf_counter()
    with pytest.raises(InputError, match=match):
        load_checkpoint(p)
    assert time.perf_counter() - t0 < 5
    assert _rss_mb() - before < 200  # nothing big was allocated


def test_hparams_must_be_a_mapping_of_plain_data(tmp_path, tiny_edsr):
    data = checkpoint_dict(tiny_edsr)
    for hp in ([1, 2, 3], "edsr", None, {"n_feats": object()}):
        with pytest.raises(ConfigError):
            check_hparams("edsr", hp)
    data["hparams"] = [["n_feats", 8]]
    with pytest.raises(InputError, match="mapping"):
        load_checkpoint(_save(tmp_path, data))
    with pytest.raises(InputError, match="mapping"):
        load_checkpoint(_save(tmp_path, data, "o.pt"), overrides={"scale": 2})
    data["hparams"], data["arch"] = {}, ["edsr"]
    with pytest.raises(ConfigError, match="arch must be a name"):
        load_checkpoint(_save(tmp_path, data, "a.pt"))


def test_small_file_claiming_a_huge_model_fails_on_the_stored_shapes(tmp_path, tiny_edsr):
    """In range, but disagreeing with the stored tensors: refused by comparing shapes, not by allocating."""
    data = checkpoint_dict(tiny_edsr)
    data["hparams"] = {**data["hparams"], "n_feats": 256, "n_blocks": 32}  # 43 M params, implied only
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(_save(tmp_path, data))
    data = checkpoint_dict(tiny_edsr)
    data["state_dict"] = {**data["state_dict"], "head.weight": torch.zeros(8, 3, 5, 5)}
    with pytest.raises(CheckpointError, match=r"head.weight is \[8, 3, 5, 5\]"):
        load_checkpoint(_save(tmp_path, data, "s.pt"))
    data["state_dict"] = {**data["state_dict"], "head.weight": [1, 2]}
    with pytest.raises(CheckpointError, match="not a tensor"):
        load_checkpoint(_save(tmp_path, data, "t.pt"))
    data["state_dict"] = [1, 2]
    with pytest.raises(CheckpointError, match="mapping"):
        load_checkpoint(_save(tmp_path, data, "u.pt"))


def test_plan_bounds_parameters_and_activations():
    with pytest.raises(ConfigError, match="parameters"):
        plan_model("edsr", {"scale": 4, "n_feats": 8192, "n_blocks": 8})
    assert MAX_PARAMS == 1 << 28
    plan = plan_model("edsr", {"scale": 4, "n_feats": 256, "n_blocks": 32})  # EDSR-large is fine
    assert 40e6 < plan.params < 45e6
    with pytest.raises(CheckpointError, match="missing"):
        check_state_fits(plan, {}, "f.pt")


def test_nested_provenance_is_bounded(tmp_path, tiny_edsr):
    data = checkpoint_dict(tiny_edsr)
    nested: dict = {}
    cur = nested
    for _ in range(100):
        cur["ref"] = {}
        cur = cur["ref"]
    data["provenance"] = [nested]
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(_save(tmp_path, data))
    dag: list = [{"stage": "x"}]
    for _ in range(10):  # shared references: 10 pickled levels expand to 4^10 records
        dag = [dag, dag, dag, dag]
    data["provenance"] = dag
    with pytest.raises(CheckpointError, match="too large"):
        load_checkpoint(_save(tmp_path, data, "dag.pt"))
    data["provenance"] = [{"stage": "x"}] * 5000
    with pytest.raises(CheckpointError, match="5000 entries"):
        load_checkpoint(_save(tmp_path, data, "b.pt"))
    data["provenance"] = "not a list"
    with pytest.raises(CheckpointError, match="list of records"):
        load_checkpoint(_save(tmp_path, data, "c.pt"))
    assert time.perf_counter() - t0 < 5


def test_cli_info_on_a_hostile_checkpoint_is_one_line(tmp_path, tiny_edsr, invoke):
    data = checkpoint_dict(tiny_edsr)
    data["hparams"] = {**data["hparams"], "n_feats": 10**9}
    p = _save(tmp_path, data)
    code, _, err = invoke("info", p)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "n_feats" in err
