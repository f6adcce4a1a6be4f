"""Fuzz: hostile checkpoints (our format and unknown/foreign-looking state dicts). Every generated file either
loads as a model or is refused with an SrCompressError — never another exception, never an allocation past
the memory limit, never more than a few seconds."""

from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path

import torch
from _fuzz_budget import budget, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from sr_compress.checkpoint import checkpoint_dict, load_checkpoint
from sr_compress.errors import SrCompressError
from sr_compress.models import build_model, count_params, list_models, tiny_hparams
from sr_compress.models.registry import MAX_PARAMS

HUGE = [10**9, -1, 0, 2**31, 2**63, -(2**63), 65537, 1e309, float("nan"), float("inf"), -0.0, 1e-300]
HOSTILE = st.one_of(
    st.sampled_from(HUGE),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.lists(st.one_of(st.integers(-4, 10**7), st.floats(allow_nan=True)), max_size=6),
    st.dictionaries(st.text(max_size=3), st.integers(-3, 10**6), max_size=3),
)
FOREIGN_KEYS = ["head.0.weight", "head.0.bias", "body.0.body.0.weight", "body.0.body.2.weight", "tail.0.0.weight",
                "tail.1.weight", "conv_first.weight", "conv_last.weight", "body.0.conv1.weight", "upconv1.weight",
                "input.weight", "output.weight", "residual_layer.0.conv.weight", "sub_mean.weight",
                "generator.conv_first.weight", "params", "module.head.0.weight", "state_dict"]


@functools.cache
def _base(arch: str) -> dict:
    torch.manual_seed(0)
    return checkpoint_dict(build_model(arch, **tiny_hparams(arch)))


@st.composite
def hostile_checkpoints(draw) -> tuple[str, object]:
    kind = draw(st.sampled_from(["hparam", "hparam", "hparam", "extra_hparam", "hparams_type", "state_shape",
                                 "state_drop", "state_type", "provenance", "arch", "foreign"]))
    if kind == "foreign":
        keys = draw(st.lists(st.sampled_from(FOREIGN_KEYS), min_size=1, max_size=6, unique=True))
        shapes = [draw(st.lists(st.integers(1, 6), max_size=4)) for _ in keys]
        return f"foreign {dict(zip(keys, shapes, strict=True))}", {k: torch.zeros(s) for k, s in
                                                                   zip(keys, shapes, strict=True)}
    arch = draw(st.sampled_from(list_models()))
    data = copy.deepcopy(_base(arch))
    hp, sd = data["hparams"], data["state_dict"]
    if kind == "hparam":
        key = draw(st.sampled_from(sorted(hp)))
        hp[key] = draw(HOSTILE)
        label = f"{arch} hparams[{key}] = {hp[key]!r}"
    elif kind == "extra_hparam":
        key = draw(st.sampled_from(["n_feats", "n_blocks", "scale", "channels", "img_range", "res_scale",
                                    "block_feats", "layers", "widths", "m", "d", "up_feats", "groups"]))
        hp[key] = draw(HOSTILE)
        label = f"{arch} hparams[{key}] := {hp[key]!r}"
    elif kind == "hparams_type":
        data["hparams"] = draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=4), st.none(),
                                         st.integers()))
        label = f"{arch} hparams = {data['hparams']!r}"
    elif kind == "state_shape":
        key = draw(st.sampled_from(sorted(sd)))
        sd[key] = torch.zeros(draw(st.lists(st.integers(0, 9), max_size=5)))
        label = f"{arch} state[{key}] shape {list(sd[key].shape)}"
    elif kind == "state_drop":
        key = draw(st.sampled_from(sorted(sd)))
        del sd[key]
        label = f"{arch} state without {key}"
    elif kind == "state_type":
        key = draw(st.sampled_from(sorted(sd)))
        sd[key] = draw(st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=3)))
        label = f"{arch} state[{key}] = {sd[key]!r}"
    elif kind == "provenance":
        depth = draw(st.integers(0, 60))
        width = draw(st.integers(1, 5))
        node: object = {"stage": "x", "v": draw(HOSTILE)}
        for _ in range(depth):
            node = [node] * width  # shared references: width**depth records when expanded
        data["provenance"] = node if draw(st.booleans()) else [node]
        label = f"{arch} provenance depth {depth} width {width}"
    else:  # arch
        data["arch"] = draw(st.one_of(st.text(max_size=6), st.integers(), st.none(), st.lists(st.text(), max_size=2)))
        label = f"arch = {data['arch']!r}"
    return label, data


@fuzz_settings(max_examples=300)
@given(case=hostile_checkpoints())
def test_fuzz_hostile_checkpoints_load_or_refuse_cleanly(case):
    label, data = case
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "hostile.pt"
        try:
            torch.save(data, p)
        except (RecursionError, RuntimeError, OverflowError):
            return  # torch itself cannot write it: no such file can exist
        with budget("checkpoints", label):
            try:
                loaded = load_checkpoint(p)
            except SrCompressError as e:
                msg = str(e)
                assert msg.strip() and len(msg) < 2000, label
                return
        assert count_params(loaded.model) <= MAX_PARAMS, label
