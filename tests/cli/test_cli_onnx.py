"""ONNX graphs on the command line: eval, upscale and info take any SR net as .onnx (flags where the graph does
not tell), finetune/train take one as --teacher, --teacher-cache / --no-teacher-cache."""

from __future__ import annotations

import torch
from helpers.cli import one_error_line
from helpers.models import tiny_model
from helpers.onnx import Range255, export_raw, png_folder

from sr_compress.checkpoint import load_checkpoint, save_checkpoint
from sr_compress.deploy.onnx import export_onnx

RUN = ["--steps", "1", "--batch-size", "2", "--patch-size", "16", "--ckpt-every", "0"]


def test_eval_upscale_info_of_foreign_graphs(tmp_path, invoke):
    data = png_folder(tmp_path / "data", size=(24, 24))
    foreign = export_raw(Range255(tiny_model()), tmp_path / "f.onnx")  # [0, 255]: found from the graph
    code, out, err = invoke("eval", foreign, "--data", data, "--json")
    assert code == 0 and "divides its input by 255" in out, err
    code, out, err = invoke("upscale", foreign, data / "0.png", "-o", tmp_path / "up.png", "--tile", "8")
    assert code == 0 and (tmp_path / "up.png").is_file(), err
    code, out, err = invoke("info", foreign, "--json")
    assert code == 0 and '"input_range": 255.0' in out, err

    bare = export_raw(tiny_model("plain"), tmp_path / "p.onnx")  # no range op, the probe undecided
    code, _, err = invoke("eval", bare, "--data", data)
    assert code == 2 and "give --input-range 1 or 255" in one_error_line(err)
    code, out, err = invoke("eval", bare, "--data", data, "--input-range", "1", "--json")
    assert code == 0 and "input range = [0, 1] (set by override)" in out, err
    code, _, err = invoke("eval", save_checkpoint(tiny_model(), tmp_path / "m.pt"), "--colour", "y")
    assert code == 2 and "colour applies to ONNX graphs only" in one_error_line(err)


def test_finetune_with_onnx_teachers(tmp_path, invoke):
    data = png_folder(tmp_path / "data")
    student = save_checkpoint(tiny_model("plain"), tmp_path / "s.pt")
    teacher = export_onnx(tiny_model(), tmp_path / "t.onnx", simplify=False, validate=False).path
    code, out, err = invoke("finetune", student, "--teacher", teacher, "--strategy", "kd", *RUN, "--data", data,
                            "-o", tmp_path / "o.pt")
    assert code == 0 and "stored once" not in out, err  # folder data: per batch (docs/training.md §5)
    code, _, err = invoke("finetune", student, "--teacher", teacher, "--strategy", "kd", *RUN, "--data", data,
                          "--teacher-cache", "-o", tmp_path / "c.pt")
    assert code == 2 and "teacher_cache on: the image-cache loader" in one_error_line(err)
    code, out, err = invoke("finetune", student, "--teacher", teacher, "--strategy", "ail", *RUN, "--data", data,
                            "--no-teacher-cache", "-o", tmp_path / "a.pt")
    assert code == 0 and "stored once" not in out, err
    assert load_checkpoint(tmp_path / "a.pt").model.provenance[-1]["params"]["teacher"]["path"] == str(teacher)
    code, _, err = invoke("finetune", student, "--teacher", teacher, "--strategy", "memsr", *RUN, "--data", data,
                          "-o", tmp_path / "m.pt")
    assert code == 2 and "needs the teacher's inner features" in one_error_line(err)

    torch.manual_seed(0)
    bare = export_raw(tiny_model("plain"), tmp_path / "bare.onnx")
    code, _, err = invoke("finetune", student, "--teacher", bare, "--strategy", "kd", *RUN, "--data", data,
                          "-o", tmp_path / "b.pt")
    assert code == 2 and "give --input-range" in one_error_line(err)
    code, out, err = invoke("finetune", student, "--teacher", bare, "--teacher-input-range", "1", "--strategy", "kd",
                            *RUN, "--data", data, "-o", tmp_path / "b.pt")
    assert code == 0, err
    y_teacher = export_onnx(tiny_model("fsrcnn", channels=1), tmp_path / "y.onnx", simplify=False,
                            validate=False).path
    code, _, err = invoke("train", "--arch", "plain", "--teacher", y_teacher, "--strategy", "kd", *RUN,
                          "--data", data, "-o", tmp_path / "y.pt")
    assert code == 2 and "must share a colour space" in one_error_line(err)
