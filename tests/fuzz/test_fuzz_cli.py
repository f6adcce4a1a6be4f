"""Fuzz: hostile arguments for every command. Each case is a working command line with exactly one hostile
change (a non-finite or non-numeric number, a bogus choice, an absurd size, a hostile or missing input file,
an output onto an input — with --force — or under a file). Every case must exit 2 with exactly one stderr line,
no traceback, within the time and memory budget, and leave every input byte-identical."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click
import pytest
from _fuzz_budget import budget, fuzz_settings
from _fuzz_workspace import make_workspace, snapshot
from hypothesis import given
from hypothesis import strategies as st

BAD_FLOATS = ["nan", "NaN", "inf", "-inf", "1e309", "-1e309", "abc", ""]
BAD_INTS = ["abc", "1.5", "nan", "", "0x10", "1e3"]
BAD_SIZES = ["100000x100000", "0x0", "-1x5", "axb", "1e9x1e9", "65537x1", "20000x20000", "x"]
HOSTILE_INPUTS = ["empty", "garbage", "hostile", "folder", "missing"]
COMMANDS = ["train", "finetune", "eval", "upscale", "info", "run", "export", "bench", "slim", "plainify",
            "truncate", "quantize"]


@pytest.fixture(scope="module")
def ws():
    d = Path(tempfile.mkdtemp(prefix="srfuzz_cli_"))
    w = make_workspace(d)
    w["recipe"] = d / "r.toml"
    w["recipe"].write_text('[[stage]]\nid = "e"\nkind = "eval"\nmodel = "m.pt"\ndata = "data"\ncrops = false\n')
    yield w
    shutil.rmtree(d, ignore_errors=True)


def base_argv(cmd: str, w: dict[str, Path]) -> tuple[list[str], str | None, str | None]:
    """A working command line for ``cmd``; the index names of its input-file argument and output option."""
    o, m, d = w["out"], str(w["model"]), str(w["data"])
    train = ["--steps", "1", "--batch-size", "1", "--patch-size", "8", "--data", d]
    table = {
        "train": (["train", "--arch", "edsr", "--hparam", "n_feats=4", "--hparam", "n_blocks=1", *train,
                   "-o", str(o / "t.pt")], None, "-o"),
        "finetune": (["finetune", m, "--strategy", "l1", *train, "-o", str(o / "f.pt")], m, "-o"),
        "eval": (["eval", m, "--data", d, "--crops", str(o / "c.png")], m, "--crops"),
        "upscale": (["upscale", m, str(w["image"]), "-o", str(o / "u.png")], m, "-o"),
        "info": (["info", m], m, None),
        "run": (["run", str(w["recipe"]), "--out", str(o / "run")], str(w["recipe"]), None),
        "export": (["export", m, "-o", str(o / "m.onnx"), "--no-simplify"], m, "-o"),
        "bench": (["bench", str(w["onnx"]), "--runs", "1", "--warmup", "0", "--no-memory"], str(w["onnx"]),
                  None),
        "slim": (["slim", m, "--rho", "0.5", "-o", str(o / "s.pt")], m, "-o"),
        "plainify": (["plainify", m, "--exact-only", "-o", str(o / "p.pt")], m, "-o"),
        "truncate": (["truncate", m, "-k", "1", "-o", str(o / "k.pt")], m, "-o"),
        "quantize": (["quantize", m, "-o", str(o / "q.onnx"), "--patches", "2", "--patch-size", "16"], m, "-o"),
    }
    return table[cmd]


def _options(cmd: str) -> list[click.Option]:
    from sr_compress.cli import cli

    command = cli.get_command(click.Context(cli), cmd)
    return [p for p in command.params if isinstance(p, click.Option) and not p.is_flag]


def _is_float(p: click.Option) -> bool:
    return isinstance(p.type, (click.types.FloatParamType, click.FloatRange)) or type(p.type).__name__ == "FiniteFloat"


def _is_int(p: click.Option) -> bool:
    return isinstance(p.type, (click.types.IntParamType, click.IntRange))


def _set(argv: list[str], opt: str, value: str) -> list[str]:
    """``argv`` with option ``opt`` set to ``value`` (replaced if present, appended otherwise)."""
    out = list(argv)
    if opt in out:
        out[out.index(opt) + 1] = value
        return out
    return [*out, opt, value]


@st.composite
def hostile_command_lines(draw, w: dict[str, Path]) -> tuple[str, list[str]]:
    """(label, argv) of one command line with exactly one hostile change."""
    cmd = draw(st.sampled_from(COMMANDS))
    argv, model, out_opt = base_argv(cmd, w)
    opts = _options(cmd)
    floats = [p for p in opts if _is_float(p)]
    ints = [p for p in opts if _is_int(p)]
    choices = [p for p in opts if isinstance(p.type, click.Choice)]
    sizes = [p for p in opts if p.name == "size"]
    kinds = ["input"] if model else []
    kinds += ["float"] * 2 if floats else []
    kinds += ["int"] if ints else []
    kinds += ["choice"] if choices else []
    kinds += ["size"] if sizes else []
    kinds += ["parent_is_file"] if out_opt else []
    kinds += ["onto_input"] if out_opt and model else []
    kinds += ["inside_data"] if out_opt and "--data" in argv else []
    kind = draw(st.sampled_from(kinds))
    if kind == "float":
        p = draw(st.sampled_from(floats))
        argv = _set(argv, p.opts[0], draw(st.sampled_from(BAD_FLOATS)))
    elif kind == "int":
        p = draw(st.sampled_from(ints))
        bounded = isinstance(p.type, click.IntRange) and p.type.max is not None
        over = [str(p.type.max + 1), str(10**12)] if bounded else []  # e.g. --batch-size 10^12
        argv = _set(argv, p.opts[0], draw(st.sampled_from(BAD_INTS + over)))
    elif kind == "choice":
        p = draw(st.sampled_from(choices))
        argv = _set(argv, p.opts[0], "__nope__")
    elif kind == "size":
        argv = _set(argv, "--size", draw(st.sampled_from(BAD_SIZES)))
    elif kind == "input":
        bad = draw(st.sampled_from(HOSTILE_INPUTS + (["onnx_garbage"] if cmd == "bench" else [])))
        if bad == "onnx_garbage":
            p = w["garbage"].with_suffix(".onnx")
            p.write_bytes(w["garbage"].read_bytes())
            path = str(p)
        else:
            path = str(w[bad])
        argv = [path if a == model else a for a in argv]
    elif kind == "onto_input":
        target = draw(st.sampled_from([model, str(w["image"])] if cmd == "upscale" else [model]))
        argv = [*_set(argv, out_opt, target), "--force"]
    elif kind == "parent_is_file":
        argv = _set(argv, out_opt, str(w["garbage"] / "x" / Path(argv[argv.index(out_opt) + 1]).name))
    else:  # inside_data
        argv = [*_set(argv, out_opt, str(w["data"] / draw(st.sampled_from(["img0.png", "new.png", "x.pt"])))),
                "--force"]
    return f"{kind}: {' '.join(a.replace(str(w['out'].parent), '$W') for a in argv)}", argv


@fuzz_settings(max_examples=400)
@given(data=st.data())
def test_fuzz_every_command_refuses_hostile_arguments_in_one_line(data, ws, invoke):
    label, argv = data.draw(hostile_command_lines(ws))
    root = ws["out"].parent
    before = snapshot(root, ws["out"])
    with budget("cli", label):
        code, _, err = invoke(*argv)
    assert code == 2, f"{label}: exit {code}: {err[-400:]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{label}: {err[-600:]}"
    assert "Traceback" not in err and "internal error" not in err, label
    assert snapshot(root, ws["out"]) == before, f"{label}: an input changed"
    for p in ws["out"].iterdir():  # a refused command leaves no output behind
        shutil.rmtree(p) if p.is_dir() else p.unlink()
