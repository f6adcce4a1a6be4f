"""One mapping from OS errors to clean messages, nothing partial left behind, and inputs are sacred."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sr_compress.errors import InputError, OutputExistsError
from sr_compress.fileio import (
    FileSystemError,
    atomic_write,
    atomic_write_text,
    check_output,
    clean_os_errors,
    input_conflict,
    os_error_message,
)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def tiny_ckpt(tmp_path):
    import torch

    from sr_compress.checkpoint import save_checkpoint
    from sr_compress.models import build_model, tiny_hparams

    torch.manual_seed(0)
    return save_checkpoint(build_model("edsr", **tiny_hparams("edsr")), tmp_path / "tiny.pt")


# -- OS errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("err, text", [
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    (FileNotFoundError(errno.ENOENT, "No such file"), "no such file or folder"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory"), "is a file, not a folder"),
    (FileExistsError(errno.EEXIST, "File exists"), "a file is in the way"),
    (OSError(errno.ENOSPC, "No space left on device"), "no space left"),
    (OSError(errno.ENAMETOOLONG, "File name too long"), "name too long"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
])
def test_each_os_error_is_one_line_naming_the_path(tmp_path, monkeypatch, err, text):
    out = tmp_path / "m.pt"

    def boom(src, dst):
        raise err

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(FileSystemError) as info:
        atomic_write_text(out, "x")
    msg = str(info.value)
    assert text in msg and str(out) in msg and "\n" not in msg
    assert isinstance(info.value, InputError)
    assert not out.exists() and _leftovers(tmp_path) == []  # nothing partial left behind


def test_disk_full_while_writing_leaves_nothing(tmp_path):
    def write(p: Path) -> None:
        p.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileSystemError, match="no space left"):
        atomic_write(tmp_path / "m.pt", write)
    assert list(tmp_path.iterdir()) == []


def test_parent_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileSystemError, match="is a file, not a folder"):
        atomic_write_text(tmp_path / "f" / "sub" / "m.pt", "x")
    assert (tmp_path / "f").read_text() == "x"


def test_name_too_long_is_clean(tmp_path):
    with pytest.raises(FileSystemError, match="name too long"):
        atomic_write_text(tmp_path / ("n" * 300 + ".pt"), "x")
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions (the simulated case above covers it)")
def test_read_only_folder_real(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(FileSystemError, match="permission denied"):
            atomic_write_text(ro / "m.pt", "x")
    finally:
        ro.chmod(0o700)


def test_clean_os_errors_leaves_unknown_errors_alone():
    with pytest.raises(FileSystemError, match="p: permission denied"):
        with clean_os_errors("p"):
            raise PermissionError(errno.EACCES, "denied")
    with pytest.raises(OSError) as info, clean_os_errors("p"):
        raise OSError(errno.ENOMEM, "out of memory")  # not a file-system problem: stays internal
    assert not isinstance(info.value, FileSystemError)
    assert os_error_message(OSError(errno.EROFS, "x", "/a/b")) == "/a/b: read-only file system"


def test_cli_maps_os_errors_to_one_line_exit_2(tmp_path, invoke, tiny_ckpt):
    (tmp_path / "f").write_text("x")
    code, _, err = invoke("slim", tiny_ckpt, "--rho", "0.5", "-o", tmp_path / "f" / "s.pt")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "is a file, not a folder" in err and "Traceback" not in err


def test_run_cli_maps_raw_os_errors(monkeypatch, invoke, tmp_path):
    """Any command: an OSError escaping the library (a folder created, a file read) is one line, exit 2."""
    import torch

    target = tmp_path / "x.pt"
    target.write_bytes(b"PK\x03\x04 a checkpoint that cannot be read")

    def boom(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(target))

    monkeypatch.setattr(torch, "load", boom)
    code, _, err = invoke("info", target)
    assert code == 2
    line = err.strip()
    assert "\n" not in line and line.startswith(f"error: {target}") and "ermission denied" in line


# -- inputs are sacred -----------------------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path):
    p = tmp_path / "m.pt"
    p.write_bytes(b"weights")
    return p


@pytest.mark.parametrize("force", [False, True])
def test_output_equal_to_an_input_is_refused(model_file, force):
    with pytest.raises(OutputExistsError, match="it is an input"):
        check_output(model_file, inputs=[model_file], force=force)
    rel = Path(os.path.relpath(model_file))
    with pytest.raises(OutputExistsError, match="it is an input"):
        check_output(model_file.parent / "." / "m.pt", inputs=[rel], force=force)


@pytest.mark.parametrize("force", [False, True])
def test_symlink_to_an_input_is_refused(tmp_path, model_file, force):
    link = tmp_path / "link.pt"
    link.symlink_to(model_file)
    with pytest.raises(OutputExistsError, match="it is an input"):
        check_output(link, inputs=[model_file], force=force)
    with pytest.raises(OutputExistsError, match="it is an input"):  # the input given through a link
        check_output(model_file, inputs=[link], force=force)


@pytest.mark.parametrize("force", [False, True])
def test_hard_link_to_an_input_is_refused(tmp_path, model_file, force):
    hard = tmp_path / "hard.pt"
    os.link(model_file, hard)
    with pytest.raises(OutputExistsError, match="hard link"):
        check_output(hard, inputs=[model_file], force=force)


@pytest.mark.parametrize("force", [False, True])
def test_dangling_symlink_pointing_at_a_future_input_path(tmp_path, force):
    """The output does not exist yet, but its path is a symlink to where an input is."""
    target = tmp_path / "in.pt"
    link = tmp_path / "out.pt"
    link.symlink_to(target)  # dangling for now
    target.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="it is an input"):
        check_output(link, inputs=[target], force=force)
    link.unlink()
    link.symlink_to(tmp_path / "later.pt")  # a dangling link to a path that is an input name
    with pytest.raises(OutputExistsError, match="it is an input"):
        check_output(link, inputs=[tmp_path / "later.pt"], force=force)


@pytest.mark.parametrize("force", [False, True])
def test_nothing_is_written_inside_an_input_folder(tmp_path, force):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "img.png").write_bytes(b"png")
    for out in (data / "img.png", data / "new.png", data / "sub" / "x.pt"):
        with pytest.raises(OutputExistsError, match="inside the input folder"):
            check_output(out, inputs=[data], force=force)
    link = tmp_path / "datalink"
    link.symlink_to(data, target_is_directory=True)
    with pytest.raises(OutputExistsError, match="inside the input folder"):
        check_output(link / "img.png", inputs=[data], force=force)
    assert (data / "img.png").read_bytes() == b"png"
    assert check_output(tmp_path / "data2" / "x.png", inputs=[data]) == tmp_path / "data2" / "x.png"


def test_atomic_write_never_replaces_an_input(model_file):
    with pytest.raises(OutputExistsError):
        atomic_write_text(model_file, "overwritten", inputs=[model_file], force=True)
    assert model_file.read_bytes() == b"weights"


def test_force_still_replaces_an_earlier_output(tmp_path, model_file):
    out = tmp_path / "o.pt"
    out.write_text("old")
    with pytest.raises(OutputExistsError, match="--force"):
        check_output(out, inputs=[model_file])
    atomic_write_text(out, "new", inputs=[model_file, None], force=True)
    assert out.read_text() == "new"
    assert input_conflict(out, [model_file, None]) is None


# -- third-party warnings go to the log -------------------------------------------------------------------

_NOISY = """
import sys, warnings
import sr_compress.ops.info as c
from sr_compress.cli import cli
from sr_compress.cli._common import run_cli
from sr_compress.errors import DataError

def noisy(*a, **k):
    warnings.warn("a third-party library complains", UserWarning)
    raise DataError("checkpoint not found: x.pt")

c.model_info = noisy
run_cli(cli, sys.argv[1:])
"""


@pytest.mark.parametrize("flag, env, shown", [([], {}, False), (["-v"], {}, True),
                                              ([], {"SRCOMPRESS_VERBOSE": "1"}, True)])
def test_third_party_warnings_stay_out_of_the_error_line(flag, env, shown):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _NOISY, *flag, "info", "x.pt"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env},
                       timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == "error: checkpoint not found: x.pt"
    assert ("a third-party library complains" in r.stderr) == shown
    if not shown:
        assert len(lines) == 1, r.stderr
