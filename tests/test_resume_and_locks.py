"""Library pieces of issue 17's "resume, options and concurrency": data content keys, options that contradict a
checkpoint, and the output-folder lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sr_compress.errors import ConfigError, DataError
from sr_compress.fileio import LOCK_NAME, FolderLockedError, folder_key, folder_lock


def _data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "a.png").write_bytes(b"aaaa")
    (d / "b.png").write_bytes(b"bbbb")
    return d


def test_folder_key_changes_with_the_data(tmp_path):
    d = _data(tmp_path)
    k0 = folder_key(d)
    assert k0 == folder_key(d) and k0.startswith("files:2:")
    (d / ".hidden").write_text("x")
    assert folder_key(d) == k0  # hidden files do not count
    (d / "c.png").write_bytes(b"c")
    k1 = folder_key(d)
    assert k1 != k0
    (d / "c.png").unlink()
    assert folder_key(d) == k0
    (d / "a.png").write_bytes(b"aaaaa")  # resized
    assert folder_key(d) != k0
    os.utime(d / "b.png", ns=(1, 1))
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes(b"aaaa")
    assert folder_key(other) != k0
    assert folder_key(d, suffixes=[".jpg"]) == "files:0:" + __import__("hashlib").sha256(b"").hexdigest()
    with pytest.raises(DataError):
        folder_key(tmp_path / "missing")


def test_option_contradicting_the_checkpoint_is_refused():
    from sr_compress.checkpoint import check_agrees
    from sr_compress.models import build_model, tiny_hparams

    m = build_model("edsr", **tiny_hparams("edsr", 2))
    check_agrees(m, "M.pt", scale=None, channels=None)
    check_agrees(m, "M.pt", scale=2, channels=3)
    with pytest.raises(ConfigError, match=r"M.pt is a edsr with scale = 2; --scale 3 contradicts it"):
        check_agrees(m, "M.pt", scale=3)
    with pytest.raises(ConfigError, match="--n-feats"):
        check_agrees(m, "M.pt", n_feats=64)


def test_folder_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    out = tmp_path / "run"
    with folder_lock(out) as lock:
        assert lock == out / LOCK_NAME
        assert f"pid {os.getpid()}" in lock.read_text()
        with pytest.raises(FolderLockedError, match=rf"run folder {out} is in use by pid {os.getpid()}"):
            with folder_lock(out):
                pass
    with folder_lock(out):  # released on exit
        pass


def test_folder_lock_across_processes_and_wait(tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; from sr_compress.fileio import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(1.5)\n")
    env = {**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError, match=f"pid {p.pid}"):
            with folder_lock(out):
                pass
        t0 = time.perf_counter()
        with folder_lock(out, wait=True):  # waits until the other process is done
            assert time.perf_counter() - t0 > 0.2
    finally:
        p.wait(timeout=30)
