"""The operations layer: each operation checks paths, loads, runs the stage, saves and returns a typed outcome;
its defaults are the ones the CLI and the recipe stages use."""

from __future__ import annotations

import click
import pytest
from helpers.models import FAMILIES, tiny_checkpoint, tiny_model

from sr_compress.errors import ConfigError, OutputExistsError, PlainifyError
from sr_compress.metrics import count_params
from sr_compress.models import model_class
from sr_compress.ops import bench as bench_op
from sr_compress.ops import export as export_op
from sr_compress.ops import info as info_op
from sr_compress.ops import plainify as plainify_op
from sr_compress.ops import slim as slim_op
from sr_compress.ops import train as train_op
from sr_compress.ops import truncate as truncate_op
from sr_compress.ops.common import load_model


@pytest.mark.parametrize("arch", FAMILIES)
def test_info_of_every_family(tmp_path, arch):
    path = tiny_checkpoint(tmp_path / f"{arch}.pt", arch)
    info = info_op.model_info(path, size=(32, 24))
    assert info["arch"] == arch and info["format"] == "srcompress"
    assert info["params"] == count_params(tiny_model(arch)) and info["macs"] > 0


@pytest.mark.parametrize("arch", [a for a in FAMILIES if model_class(a).plainify_refusal])
def test_plainify_refuses_with_the_reason_the_family_declares(tmp_path, arch):
    path = tiny_checkpoint(tmp_path / f"{arch}.pt", arch)
    with pytest.raises(PlainifyError, match=f"cannot plainify {arch}: ") as e:
        plainify_op.plainify_file(path, tmp_path / "out.pt", exact_only=True)
    assert model_class(arch).plainify_refusal in str(e.value)
    assert not (tmp_path / "out.pt").exists()


def test_plainify_outcome_has_one_type_with_a_mode(tmp_path):
    path = tiny_checkpoint(tmp_path / "t.pt", "edsr")
    exact = plainify_op.plainify_file(path, tmp_path / "exact.pt", exact_only=True)
    assert exact.mode == "exact" and exact.bridges == [] and exact.extra == {} and exact.path.is_file()
    student = plainify_op.plainify_file(path, tmp_path / "s.pt", width=4, patches=2, patch_size=16,
                                        teacher_memory=False)
    assert student.mode == "winning" and len(student.bridges) == len(student.extra["bridges"]) > 0
    assert student.report.teacher_bound_bytes is None  # asked not to export the teacher
    assert load_model(student.path).extra["bridges"][0]["name"] == student.bridges[0].name


def test_slim_outcome_default_output_and_guarded_output(tmp_path):
    path = tiny_checkpoint(tmp_path / "t.pt", "edsr")
    out = slim_op.slim_checkpoint(path, rho=0.5)
    assert out.path == tmp_path / "t_slim0.5.pt" and out.path.is_file()
    assert out.report.params_after < out.report.params_before and out.loaded.model.arch == "edsr"
    with pytest.raises(OutputExistsError):
        slim_op.slim_checkpoint(path, rho=0.5)
    with pytest.raises(OutputExistsError, match="input"):
        slim_op.slim_checkpoint(path, rho=0.5, out=path, force=True)


def test_truncate_outcome_carries_the_warnings(tmp_path):
    path = tiny_checkpoint(tmp_path / "a.pt", "asrn")
    out = truncate_op.truncate_checkpoint(path, tmp_path / "k1.pt", blocks=1)
    assert out.path.is_file() and out.report.blocks_after == 1
    assert out.report.warnings and "deep supervision" in " ".join(out.report.warnings)


def test_export_check_only_writes_nothing(tmp_path):
    path = tiny_checkpoint(tmp_path / "p.pt", "plain")
    before = set(tmp_path.iterdir())
    out = export_op.export(path, write=False)
    assert out.report.path is None and out.report.max_err_random is not None
    assert set(tmp_path.iterdir()) == before


def test_train_needs_exactly_one_of_arch_and_init(tmp_path):
    config = train_op.train_config(settings={"steps": 1})
    for kw in ({}, {"arch": "edsr", "init": str(tmp_path / "x.pt")}):
        with pytest.raises(ConfigError, match="exactly one of --arch"):
            train_op.train(out=tmp_path / "o.pt", config=config, **kw)


def test_train_config_layers_seed_preset_settings():
    c = train_op.train_config(preset="ail-official", settings={"lr": 0.05, "steps": 110}, seed=3)
    assert c.seed == 3 and c.lr == 0.05 and c.optimizer == "sgd"
    assert train_op.train_config(settings={"seed": 5}, seed=3).seed == 5  # explicit settings win


def test_bench_settings_precedence_command_line_budgets_library():
    from sr_compress.deploy.report import BudgetDefaults

    s = bench_op.BenchSettings.resolve({"runs": 7, "size": None, "presets": ()},
                                       BudgetDefaults(size="64x32", runs=3, presets=["arena"]))
    assert (s.runs, s.size, s.presets, s.warmup) == (7, (64, 32), ("arena",), bench_op.LIBRARY["warmup"])
    assert s.command_line(["m.onnx"], memory=False) == ("srcompress bench m.onnx --device cpu --size 64x32 --runs 7 "
                                                        "--warmup 2 --rounds 1 --ort-preset arena --no-memory")


def test_bench_refuses_max_regression_without_baseline_before_measuring(tmp_path):
    with pytest.raises(ConfigError, match="give --baseline"):
        bench_op.bench([tmp_path / "missing.onnx"], max_regression={"latency_ms": 5})


def _cli_defaults(command: click.Command) -> dict:
    ctx = click.Context(command)
    return {p.name: p.get_default(ctx) for p in command.params}


def test_each_default_is_written_once_cli_and_recipes_read_the_operation():
    from sr_compress.cli.export_cmd import export
    from sr_compress.cli.plainify_cmd import plainify
    from sr_compress.cli.slim_cmd import slim
    from sr_compress.cli.train_cmd import train
    from sr_compress.recipes.stages import ExportParams, PlainifyParams, SlimParams, TrainParams

    p, d = _cli_defaults(plainify), plainify_op.DEFAULTS
    for key in ("scheme", "tail", "shift_coef", "round_to", "patches", "patch_size", "columns"):
        assert p[key] == d[key] == getattr(PlainifyParams("t"), key, d[key]), key
    assert p["size"] == PlainifyParams("t").size == "x".join(map(str, d["size"]))
    s = _cli_defaults(slim)
    assert (s["select"], s["init"], s["round_to"]) == (slim_op.DEFAULTS["select"], slim_op.DEFAULTS["init"],
                                                       SlimParams("m", 0.5).round_to)
    assert _cli_defaults(export)["opset"] == export_op.DEFAULTS["opset"] == ExportParams("m").opset
    t = _cli_defaults(train)
    assert t["scale"] == TrainParams().scale == train_op.TRAIN_DEFAULTS["scale"]
    assert t["strategy"] == TrainParams().strategy == train_op.TRAIN_DEFAULTS["strategy"]
    assert t["steps"] == train_op.COMMAND_DEFAULTS["steps"]


@pytest.mark.parametrize("arch", [a for a in FAMILIES if getattr(model_class(a), "global_context", None)])
def test_eval_table_runs_untileable_nets_on_whole_images(tmp_path, arch):
    """IMDN/RFDN/RLFN cannot be tiled exactly: the paper table runs them whole (was: a one-line refusal)."""
    from helpers.images import random_rgb, save_image

    from sr_compress.ops.evaluate import evaluate_sets

    folder = tmp_path / "hr"
    folder.mkdir()
    for i in range(2):
        save_image(folder / f"img{i}.png", random_rgb(48, 40, seed=i))
    ckpt = tiny_checkpoint(tmp_path / f"{arch}.pt", arch)
    bounded = evaluate_sets([ckpt], data=[folder], max_bytes=1e5).table
    whole = evaluate_sets([ckpt], data=[folder], max_bytes=None).table
    assert bounded.to_dict() == whole.to_dict()
